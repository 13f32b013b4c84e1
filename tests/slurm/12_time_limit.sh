#!/bin/bash
# A job that outlives its time limit (three seconds, as MM:SS) is killed: TIMEOUT.
#SBATCH --time=0:03

echo "starting a long run"
sleep 120
#EXPECT state timeout
#EXPECT file slurm-%j.out contains starting a long run
