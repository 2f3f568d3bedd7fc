"""The Slurm path in one place: what would be submitted (`render`, pure), the one module that
talks to the cluster (`cluster`), and submitting, following and cancelling a plan (`follow`)."""
