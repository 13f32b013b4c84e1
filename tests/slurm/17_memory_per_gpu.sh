#!/bin/bash
# Memory per GPU and a GPU count without a node count.
#SBATCH --gpus=2
#SBATCH --mem-per-gpu=1G
#SBATCH --time=2

echo "gpus on node=$SLURM_GPUS_ON_NODE"
#EXPECT state completed
#EXPECT file slurm-%j.out contains gpus on node=2
