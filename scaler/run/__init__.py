"""Running steps: the job harness every step runs in (`job`), the inline and local executors
and the scheduler that runs a plan with them (`local`), what a run comes to, told the same way
for local and Slurm runs (`outcome`), and `scaler run` as one call (`experiment`)."""
