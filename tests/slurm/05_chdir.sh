#!/bin/bash
# --chdir: the job runs (and writes its default output) in another directory.
#SBATCH --chdir=..
#SBATCH --time=2

echo "in $(basename "$(pwd)")" > 05_chdir/where.txt
echo "chdir done"
#EXPECT state completed
#EXPECT file where.txt contains in work
#EXPECT file ../slurm-%j.out contains chdir done
