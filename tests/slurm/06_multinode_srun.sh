#!/bin/bash
# Two nodes, two tasks each; srun starts the four ranks, labelled.
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=2
#SBATCH --gres=gpu:2
#SBATCH --time=5

srun --label bash -c 'echo "proc=$SLURM_PROCID local=$SLURM_LOCALID node=$SLURM_NODEID of $SLURM_NNODES ntasks=$SLURM_NTASKS cuda=$CUDA_VISIBLE_DEVICES"'
#EXPECT state completed
#EXPECT file slurm-%j.out contains 0: proc=0 local=0 node=0 of 2 ntasks=4 cuda=0,1
#EXPECT file slurm-%j.out contains 1: proc=1 local=1 node=0 of 2 ntasks=4 cuda=0,1
#EXPECT file slurm-%j.out contains 2: proc=2 local=0 node=1 of 2 ntasks=4 cuda=0,1
#EXPECT file slurm-%j.out contains 3: proc=3 local=1 node=1 of 2 ntasks=4 cuda=0,1
