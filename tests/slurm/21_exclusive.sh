#!/bin/bash
# --exclusive with a whole node's GPUs: the node is the job's alone.
#SBATCH --exclusive
#SBATCH --nodes=1
#SBATCH --gpus-per-node=4
#SBATCH --time=2

echo "exclusive gpus=$SLURM_GPUS_ON_NODE"
#EXPECT state completed
#EXPECT file slurm-%j.out contains exclusive gpus=4
