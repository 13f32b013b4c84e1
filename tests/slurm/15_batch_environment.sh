#!/bin/bash
# The SLURM_* variables a batch script reads, as sbatch sets them.
#SBATCH --job-name=envcheck
#SBATCH --account=lab
#SBATCH --partition=gpu
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --cpus-per-task=2
#SBATCH --gpus-per-node=2
#SBATCH --time=5

echo "name=$SLURM_JOB_NAME account=$SLURM_JOB_ACCOUNT partition=$SLURM_JOB_PARTITION"
echo "nnodes=$SLURM_NNODES ntasks=$SLURM_NTASKS per_node=$SLURM_NTASKS_PER_NODE cpus=$SLURM_CPUS_PER_TASK"
echo "nodelist=$SLURM_JOB_NODELIST procid=$SLURM_PROCID gpus=$SLURM_GPUS_ON_NODE id_matches=$([ "$SLURM_JOB_ID" = "$SLURM_JOBID" ] && echo yes)"
#EXPECT state completed
#EXPECT file slurm-%j.out contains name=envcheck account=lab partition=gpu
#EXPECT file slurm-%j.out contains nnodes=2 ntasks=8 per_node=4 cpus=2
#EXPECT file slurm-%j.out contains nodelist=a[1-2] procid=0 gpus=2 id_matches=yes
