#!/bin/bash
# An option allot lacks is refused with its line, never silently dropped.
#SBATCH --time=2
#SBATCH --constraint=a100

echo never
#EXPECT rejected 25_unknown_option.sh:4: unknown #SBATCH option '--constraint'
