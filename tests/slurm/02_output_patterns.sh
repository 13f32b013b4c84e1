#!/bin/bash
# Separate output and error files named after the job, in a logs/ directory.
#SBATCH -J patterns
#SBATCH -o logs/%x-%j.out
#SBATCH -e logs/%x-%j.err
#SBATCH -t 5

echo "to stdout from $SLURM_JOB_ID"
echo "to stderr" >&2
#EXPECT state completed
#EXPECT file logs/%x-%j.out contains to stdout from
#EXPECT file logs/%x-%j.out lacks to stderr
#EXPECT file logs/%x-%j.err contains to stderr
