"""What scaler remembers of its Slurm jobs, and what the scheduler says of them now.

Every sbatch call is appended to `slurm/jobs.jsonl` (its stage, its steps and their task ids:
`<job>` or `<job>_<index>`, and the jobs it waits on with `afterok`) right after the call,
under the experiment's submit lock, so a re-run, `scaler status` and `scaler cancel` know which
job holds which step; a step's latest line wins. A step is *queued* while the scheduler (one
`squeue` per look) still holds its latest task. `scaler cancel` touches `slurm/cancelled`, so a
`scaler run` following the jobs stops. What is done is still read from the step folders only
(scaler.layout).
"""

from __future__ import annotations

import fcntl
import json
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scaler.errors import StepFailed
from scaler.layout import Layout
from scaler.run.outcome import step_failure
from scaler.slurm.cluster import JobState, Slurm
from scaler.step_index import StepRef


def read_records(layout: Layout) -> list[dict[str, Any]]:
    """Every sbatch call of the experiment, oldest first."""
    path = layout.slurm_jobs
    if not path.is_file():
        return []
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def submitted_tasks(layout: Layout) -> dict[str, str]:
    """Step name -> the task (`<job>` or `<job>_<index>`) of its latest submission."""
    tasks: dict[str, str] = {}
    for record in read_records(layout):
        tasks.update(zip(record["steps"], record["tasks"], strict=True))
    return tasks


def append_record(
    layout: Layout, stage: str, steps: list[str], tasks: list[str], after: Sequence[str] = ()
) -> None:
    """Record one sbatch call: its steps, their tasks, and the jobs it waits on (`afterok`)."""
    record = {"at": time.time(), "stage": stage, "steps": steps, "tasks": tasks}
    record["after"] = list(after)
    with open(layout.slurm_jobs, "a") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()


@contextmanager
def submission_lock(layout: Layout) -> Iterator[None]:
    """One submitter per experiment at a time, so two runs never submit the same step."""
    layout.slurm.mkdir(parents=True, exist_ok=True)
    with open(layout.submit_lock, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def queued_steps(layout: Layout, slurm: Slurm) -> dict[str, str]:
    """Step name -> task, for the steps the scheduler still holds (pending or running)."""
    tasks = submitted_tasks(layout)
    if not tasks:
        return {}
    queue = slurm.queue()
    return {step: task for step, task in tasks.items() if active(queue, task)}


def active(queue: dict[str, JobState], task: str | None) -> bool:
    """Whether the scheduler still holds `task`: it may yet run, or is running."""
    return task in queue and queue[task].active


def ended_states(slurm: Slurm, queue: dict[str, JobState], tasks: list[str]) -> dict[str, JobState]:
    """How each of these ended tasks ended: from the queue when slurmctld still remembers it,
    else from accounting (one sacct call). A task in neither is left out."""
    states = {task: queue[task] for task in tasks if task in queue}
    older = [task for task in tasks if task not in queue]
    return states | (slurm.accounting(older) if older else {})


def job_failure(
    step: StepRef, layout: Layout, slurm: Slurm | None, task: str, state: JobState
) -> StepFailed:
    """The error of a step whose job `task` ended as `state` without a result: its traceback,
    else its job's log, else `job 12_3 ended TIMEOUT (reason)`."""
    log = _first_failed_rank_log(slurm, task) if slurm and task else None
    reason = f" ({state.reason})" if state.reason not in ("", "None") else ""
    ended = f"job {task} ended {state.state}{reason}"
    return step_failure(step, layout, ended, where=log or layout.slurm, log=log)


SRUN_TASK_FAILED = re.compile(r"^srun: error: [^:]+: tasks? (\d+)", re.MULTILINE)
"""srun's line in the job's log for a task that ended badly (`task 1: Killed`), first first."""


def _first_failed_rank_log(slurm: Slurm, task: str) -> Path:
    """The log of the rank srun saw fail first (a step of several processes), else rank 0's."""
    log = slurm.stderr_path(task)
    try:
        failed = SRUN_TASK_FAILED.search(log.read_text(errors="replace"))
    except OSError:
        return log
    rank = int(failed.group(1)) if failed else 0
    return slurm.stderr_path(task, rank) if rank else log


def mark_cancelled(layout: Layout) -> None:
    layout.slurm.mkdir(parents=True, exist_ok=True)
    layout.cancel_marker.write_text(f"{time.time()}\n")


def cancelled_since(layout: Layout, started: float) -> bool:
    marker = layout.cancel_marker
    return marker.is_file() and marker.stat().st_mtime >= started
