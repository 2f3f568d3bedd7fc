"""The Slurm path in one place: what would be submitted (`render`, pure), the one module that
talks to the cluster (`cluster`), what was submitted and where each job stands (`records`), and
submitting, following and cancelling a plan (`follow`). Where the steps stand, for
`scaler status`, is scaler.status."""
