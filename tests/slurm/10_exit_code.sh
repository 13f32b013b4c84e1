#!/bin/bash
# A script that fails: its status is the job's exit code, and the job is FAILED.
#SBATCH --time=2

echo "about to fail"
exit 42
#EXPECT state failed
#EXPECT exit 42
#EXPECT file slurm-%j.out contains about to fail
