"""Running steps: the job harness every step runs in (`job`), the executors that start jobs
(`executors`) and the scheduler that runs a plan with them (`local`)."""
