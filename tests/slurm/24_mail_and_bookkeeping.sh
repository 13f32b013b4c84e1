#!/bin/bash
# Mail and bookkeeping options that real scripts carry: accepted, and they change nothing.
#SBATCH --job-name=bookkeeping
#SBATCH --mail-type=END,FAIL
#SBATCH --mail-user=researcher@example.org
#SBATCH --comment="ablation 7"
#SBATCH --no-requeue
#SBATCH --time=2

echo "ran with mail options"
#EXPECT state completed
#EXPECT file slurm-%j.out contains ran with mail options
