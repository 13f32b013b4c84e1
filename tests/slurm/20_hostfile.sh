#!/bin/bash
# DeepSpeed and MPI launchers read a hostfile built from the node list.
#SBATCH --nodes=2
#SBATCH --gpus-per-node=4
#SBATCH --time=2

scontrol show hostnames "$SLURM_JOB_NODELIST" | sed "s/\$/ slots=$SLURM_GPUS_ON_NODE/" > hostfile
cat hostfile
#EXPECT state completed
#EXPECT file hostfile contains a1 slots=4
#EXPECT file hostfile contains a2 slots=4
