#!/bin/bash

# Parameters
#SBATCH --account=lab
#SBATCH --array=0-1%2
#SBATCH --constraint=h100
#SBATCH --cpus-per-task=8
#SBATCH --dependency=afterok:41:40_3
#SBATCH --error=/results/small/logs/slurm/%A_%a_0_log.err
#SBATCH --exclude=node7
#SBATCH --gpus-per-node=2
#SBATCH --job-name=scaler-small-train
#SBATCH --kill-on-invalid-dep=yes
#SBATCH --mem=65536M
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=2
#SBATCH --open-mode=append
#SBATCH --output=/results/small/logs/slurm/%A_%a_0_log.out
#SBATCH --partition=gpu
#SBATCH --qos=high
#SBATCH --signal=USR2@120
#SBATCH --time=720
#SBATCH --wckey=submitit

# command
export SUBMITIT_EXECUTOR=slurm
srun --unbuffered --output /results/small/logs/slurm/%A_%a_%t_log.out --error /results/small/logs/slurm/%A_%a_%t_log.err --kill-on-bad-exit=1 RUN
