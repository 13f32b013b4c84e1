#!/bin/bash
#SBATCH --job-name=ddp
#SBATCH --nodes=2 --ntasks-per-node=8
#SBATCH --gpus-per-task=1
#SBATCH --time=01:30:00
#SBATCH --array=0-9%2
#SBATCH --dependency=afterok:4
#SBATCH -o slurm-%A_%a.out
#SBATCH --mem=64G --cpus-per-task=8
srun python train.py
