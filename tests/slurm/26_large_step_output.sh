#!/bin/bash
# A step that writes more at once than an agent ships in one sync (256 KiB a stream) and exits at
# once: srun still prints all of it, up to the last line.
#SBATCH --time=5

srun bash -c 'head -c 700000 /dev/zero | tr "\0" "x"; echo; echo "last line of rank $SLURM_PROCID"' | tail -c 40
srun bash -c 'head -c 700000 /dev/zero | tr "\0" "y"; echo' | wc -c
#EXPECT state completed
#EXPECT file slurm-%j.out contains last line of rank 0
#EXPECT file slurm-%j.out contains 700001
