#!/bin/bash
# The usual multi-node PyTorch launch: one torchrun per node through srun, the first node as
# the rendezvous host (the echo stands in for torchrun, which the test machines lack).
#SBATCH --job-name=llm-pretrain
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --time=00:05:00

export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export MASTER_PORT=29500
srun bash -c 'echo "torchrun --nnodes=$SLURM_NNODES --node_rank=$SLURM_NODEID --nproc_per_node=$SLURM_GPUS_ON_NODE --rdzv_endpoint=$MASTER_ADDR:$MASTER_PORT train.py"' | sort
#EXPECT state completed
#EXPECT file slurm-%j.out contains torchrun --nnodes=2 --node_rank=0 --nproc_per_node=4 --rdzv_endpoint=a1:29500 train.py
#EXPECT file slurm-%j.out contains torchrun --nnodes=2 --node_rank=1 --nproc_per_node=4 --rdzv_endpoint=a1:29500 train.py
