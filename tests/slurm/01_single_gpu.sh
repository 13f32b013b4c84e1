#!/bin/bash
# One GPU for a small training run, the most common job on a university cluster.
#SBATCH --job-name=resnet50
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=00:10:00

echo "job=$SLURM_JOB_NAME gpus=$SLURM_GPUS_ON_NODE cuda=$CUDA_VISIBLE_DEVICES cpus=$SLURM_CPUS_PER_TASK"
echo "cwd matches submit dir: $([ "$(pwd)" = "$SLURM_SUBMIT_DIR" ] && echo yes || echo no)"
#EXPECT state completed
#EXPECT exit 0
#EXPECT file slurm-%j.out contains job=resnet50 gpus=1 cuda=0 cpus=4
#EXPECT file slurm-%j.out contains cwd matches submit dir: yes
