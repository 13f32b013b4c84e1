#!/bin/bash
# sbatch --wrap: a one-line command without a script file.
#EXPECT wrap echo "wrapped in $SLURM_JOB_ID"
#EXPECT state completed
#EXPECT file slurm-%j.out contains wrapped in
