#!/bin/bash
# An array with a list of indexes and Slurm's default output name, slurm-%A_%a.out.
#SBATCH --array=1,3,5
#SBATCH --time=2

echo "index=$SLURM_ARRAY_TASK_ID"
#EXPECT elements 3
#EXPECT state completed
#EXPECT file slurm-%A_%a.out contains index=%a
