#!/bin/bash
# sbatch script.sh ARGS: the script gets its arguments.
#SBATCH --time=2

echo "argc=$# first=$1 second=$2"
#EXPECT args --config "base model.yaml"
#EXPECT state completed
#EXPECT file slurm-%j.out contains argc=2 first=--config second=base model.yaml
