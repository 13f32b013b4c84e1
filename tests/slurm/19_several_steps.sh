#!/bin/bash
# Several steps in one allocation: a one-node preparation step, then the whole job.
#SBATCH --nodes=2
#SBATCH --gpus-per-node=1
#SBATCH --time=5

srun -N 1 -n 1 bash -c 'echo "prepare: step=$SLURM_STEP_ID nodes=$SLURM_STEP_NUM_NODES"'
srun -N 2 bash -c 'echo "train: step=$SLURM_STEP_ID nodes=$SLURM_STEP_NUM_NODES list=$SLURM_STEP_NODELIST"' | sort -u
#EXPECT state completed
#EXPECT file slurm-%j.out contains prepare: step=0 nodes=1
#EXPECT file slurm-%j.out contains train: step=1 nodes=2 list=a[1-2]
