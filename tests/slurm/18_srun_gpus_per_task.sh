#!/bin/bash
# One rank per GPU: srun --ntasks-per-node with --gpus-per-task gives each rank its own GPUs.
#SBATCH --nodes=2
#SBATCH --gpus-per-node=4
#SBATCH --time=5

srun --ntasks-per-node=2 --gpus-per-task=2 bash -c 'echo "rank=$RANK local_rank=$LOCAL_RANK world=$WORLD_SIZE cuda=$CUDA_VISIBLE_DEVICES"' | sort
#EXPECT state completed
#EXPECT file slurm-%j.out contains rank=0 local_rank=0 world=4 cuda=0,1
#EXPECT file slurm-%j.out contains rank=1 local_rank=1 world=4 cuda=2,3
#EXPECT file slurm-%j.out contains rank=2 local_rank=0 world=4 cuda=0,1
#EXPECT file slurm-%j.out contains rank=3 local_rank=1 world=4 cuda=2,3
