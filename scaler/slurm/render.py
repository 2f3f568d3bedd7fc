"""What a Slurm submission would be, computed without touching the cluster.

Pure functions from "these steps must run, these are already queued" to job arrays and their
sbatch parameters; scaler/slurm/cluster.py hands them to submitit, and golden tests pin them.

Grouping. Steps go out as one job array per (level, stage, resources), split at the cluster's
largest array. A step's level is 0 when none of its inputs is submitted with it, else one more
than its highest input: an array then only ever waits on arrays of lower levels, never on
itself, even when one stage appears at several depths of the DAG (train, sample from it,
train again). In a grid, where every stage sits at one depth, this is one array per (stage,
resources).

Dependencies. An array waits (`afterok`) on exactly the jobs holding its steps' inputs: a whole
earlier array when it needs every task of it, else the single tasks (`<job>_<task>`), and the
tasks of earlier submissions still queued or running. `kill-on-invalid-dep` turns a failed
input into a cancelled dependent instead of a job pending forever.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from scaler.plan import Step
from scaler.spec.schema import Resources


@dataclass(frozen=True)
class NeedsArray:
    """Tasks of an array submitted earlier in the same submission (`tasks=None`: all)."""

    array: int
    tasks: tuple[int, ...] | None


@dataclass(frozen=True)
class ArrayJob:
    """One sbatch call: steps of one stage with the same resources, one task each."""

    stage: str
    resources: Resources
    steps: tuple[Step, ...]
    needs_arrays: tuple[NeedsArray, ...] = ()
    needs_jobs: tuple[str, ...] = ()
    """Ids of jobs (or `<job>_<task>`) queued by earlier submissions."""


def group_arrays(
    todo: Iterable[Step],
    queued: Mapping[str, str],
    resources: Mapping[str, Resources],
    max_array_size: int,
) -> list[ArrayJob]:
    """The arrays that submit `todo` (dependencies first), given `queued`: step name -> the job
    (`<job>` or `<job>_<task>`) already queued or running for it. Inputs in neither are done."""
    todo = list(todo)
    level: dict[str, int] = {}
    for step in todo:  # a plan lists every step after its inputs
        level[step.name] = max(
            (level[i.name] + 1 for _, i in step.inputs if i.name in level), default=0
        )
    groups: dict[tuple[int, str, str], list[Step]] = {}
    for step in todo:
        key = (level[step.name], step.stage, resources[step.stage].model_dump_json())
        groups.setdefault(key, []).append(step)

    chunks = [
        (steps[0].stage, steps[start : start + max_array_size])
        for _, steps in sorted(groups.items(), key=lambda item: item[0][0])
        for start in range(0, len(steps), max_array_size)
    ]
    position = {
        step.name: (index, task)
        for index, (_, steps) in enumerate(chunks)
        for task, step in enumerate(steps)
    }
    return [
        _with_dependencies(stage, resources[stage], steps, chunks, position, queued)
        for stage, steps in chunks
    ]


def _with_dependencies(
    stage: str,
    resources: Resources,
    steps: list[Step],
    chunks: list[tuple[str, list[Step]]],
    position: dict[str, tuple[int, int]],
    queued: Mapping[str, str],
) -> ArrayJob:
    tasks_needed: dict[int, set[int]] = {}
    jobs_needed: set[str] = set()
    for step in steps:
        for _, needed in step.inputs:
            if needed.name in position:
                array, task = position[needed.name]
                tasks_needed.setdefault(array, set()).add(task)
            elif needed.name in queued:
                jobs_needed.add(queued[needed.name])
    needs_arrays = tuple(
        NeedsArray(array, None if len(tasks) == len(chunks[array][1]) else tuple(sorted(tasks)))
        for array, tasks in sorted(tasks_needed.items())
    )
    return ArrayJob(stage, resources, tuple(steps), needs_arrays, tuple(sorted(jobs_needed)))


def dependency_ids(array: ArrayJob, submitted: list[str]) -> list[str]:
    """The job ids `array` waits on, once the arrays before it were given ids `submitted`."""
    ids = list(array.needs_jobs)
    for need in array.needs_arrays:
        job = submitted[need.array]
        ids += [job] if need.tasks is None else [f"{job}_{task}" for task in need.tasks]
    return ids


def sbatch_parameters(
    array: ArrayJob, experiment: str, array_parallelism: int, after: list[str]
) -> dict[str, Any]:
    """submitit SlurmExecutor parameters for `array`, waiting on the jobs `after`."""
    r = array.resources
    extra: dict[str, Any] = dict(r.sbatch)
    if after:
        extra |= {"dependency": "afterok:" + ":".join(after), "kill-on-invalid-dep": "yes"}
    optional = {
        "partition": r.partition,
        "account": r.account,
        "qos": r.qos,
        "gpus_per_node": r.gpus or None,
    }
    return {
        "job_name": job_name(experiment, array.stage),
        "time": r.time_min,
        "cpus_per_task": r.cpus,
        "mem": _megabytes(r.mem_gb),
        "signal_delay_s": r.signal_delay_s,
        "array_parallelism": array_parallelism,
        **{key: value for key, value in optional.items() if value is not None},
        "additional_parameters": extra,
    }


def resource_parameters(resources: Resources) -> dict[str, Any]:
    """The parameters that depend on resources only: what `sbatch --test-only` can check."""
    array = ArrayJob("check", resources, ())
    parameters = sbatch_parameters(array, "check", 1, [])
    del parameters["job_name"], parameters["array_parallelism"]
    return parameters


def _megabytes(gigabytes: float) -> str:
    return f"{round(gigabytes * 1024)}M"


def job_name(experiment: str, stage: str) -> str:
    return f"scaler-{experiment}-{stage}"
