#!/bin/bash
# --dependency=singleton: one job of this name and user at a time.
#SBATCH --job-name=nightly-eval
#SBATCH --dependency=singleton
#SBATCH --time=2

echo "singleton ran"
#EXPECT state completed
#EXPECT file slurm-%j.out contains singleton ran
