#!/bin/bash
# srun passes the script's environment by default; --export=NONE does not.
#SBATCH --time=2

export STAGE=finetune
srun bash -c 'echo "default: stage=${STAGE:-unset}"'
srun --export=NONE /bin/sh -c 'echo "none: stage=${STAGE:-unset} job=$SLURM_JOB_ID"'
srun --export=ALL,EXTRA=1 bash -c 'echo "all+extra: stage=$STAGE extra=$EXTRA"'
#EXPECT state completed
#EXPECT file slurm-%j.out contains default: stage=finetune
#EXPECT file slurm-%j.out contains none: stage=unset job=
#EXPECT file slurm-%j.out contains all+extra: stage=finetune extra=1
