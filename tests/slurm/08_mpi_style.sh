#!/bin/bash
# MPI style: four tasks of one GPU each, wherever they fit; srun -n starts the ranks.
#SBATCH --ntasks=4
#SBATCH --gpus-per-task=1
#SBATCH --time=5

srun -n 4 --gpus-per-task=1 bash -c 'echo "rank $SLURM_PROCID of $SLURM_NTASKS gpus=$SLURM_GPUS_ON_NODE"' | sort
#EXPECT state completed
#EXPECT file slurm-%j.out contains rank 0 of 4 gpus=1
#EXPECT file slurm-%j.out contains rank 3 of 4 gpus=1
