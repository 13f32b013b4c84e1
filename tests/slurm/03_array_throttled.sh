#!/bin/bash
# A parameter sweep: six elements, at most two at a time, one output file each.
#SBATCH --job-name=sweep
#SBATCH --array=0-5%2
#SBATCH --output=sweep-%A_%a.out
#SBATCH --gpus=1
#SBATCH --time=5

LRS=(1e-2 3e-3 1e-3 3e-4 1e-4 3e-5)
echo "element $SLURM_ARRAY_TASK_ID of $SLURM_ARRAY_JOB_ID lr=${LRS[$SLURM_ARRAY_TASK_ID]}"
#EXPECT elements 6
#EXPECT state completed
#EXPECT file sweep-%A_%a.out contains element %a of %A lr=
