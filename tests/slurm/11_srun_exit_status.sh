#!/bin/bash
# srun returns the highest exit status of its tasks; under set -e that fails the job.
#SBATCH --nodes=2
#SBATCH --gpus-per-node=1
#SBATCH --time=5

srun bash -c 'exit $SLURM_PROCID'
echo "srun said $?"
set -e
srun -n 1 false
echo "not reached"
#EXPECT state failed
#EXPECT exit 1
#EXPECT file slurm-%j.out contains srun said 1
#EXPECT file slurm-%j.out lacks not reached
