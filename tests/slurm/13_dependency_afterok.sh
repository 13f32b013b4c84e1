#!/bin/bash
# Submitted with --dependency=afterany on the job before it: it starts once that one ended.
#SBATCH --time=2

echo "ran after the previous job"
#EXPECT sbatch --dependency=afterany:{prev}
#EXPECT after-prev
#EXPECT state completed
#EXPECT file slurm-%j.out contains ran after the previous job
