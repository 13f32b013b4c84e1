#!/bin/bash
# --exclusive asking for part of a node cannot hold the node alone: refused at submit, saying
# what to ask for instead.
#SBATCH --exclusive
#SBATCH --gpus-per-node=2
#SBATCH --nodes=1

echo never
#EXPECT rejected --gpus-per-node=4
