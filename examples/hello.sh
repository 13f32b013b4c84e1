#!/bin/bash
# A first batch script, as on any Slurm cluster: `sbatch examples/hello.sh`, then `squeue` and
# `sacct`; the output lands in slurm-<id>.out where sbatch ran (and in `allot logs <id>`).
#SBATCH --job-name=hello
#SBATCH --gpus=2
#SBATCH --time=00:05:00

echo "hello from job $SLURM_JOB_ID on $(hostname), GPUs $CUDA_VISIBLE_DEVICES"
srun --ntasks=2 --gpus-per-task=1 --label bash -c 'echo "rank $SLURM_PROCID has GPU $CUDA_VISIBLE_DEVICES"'
