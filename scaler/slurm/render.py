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
input into a cancelled dependent instead of a job pending forever, but Slurm cancels a whole
array at once: one failed train task would cancel every evaluation after it. So where an array
maps task to task onto an earlier one (task i needs task i and nothing else of it: a grid's
evaluations of its models), it waits with `aftercorr` instead, and a failure cancels only the
task that needed it. The steps of such an array are put in the order of the tasks they need,
so both split into the same chunks. Where no such map exists (a step needing several tasks, or
several steps one task), the follower says which steps were cancelled for nothing and submits
them again (scaler.slurm.cancelled). Splitting arrays per task instead would turn one sbatch
call per (stage, resources) into one per step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scaler.stages import STAGES, Stage

if TYPE_CHECKING:
    from scaler.plan import Step
    from scaler.spec.schema import Resources

ONE_PROCESS = Stage("", "", 0)
"""How an array of a name that is no stage (in tests of the grouping) is submitted."""


@dataclass(frozen=True)
class NeedsArray:
    """Tasks of an array submitted earlier in the same submission (`tasks=None`: all)."""

    array: int
    tasks: tuple[int, ...] | None
    corresponding: bool = False
    """Task i waits on task i of `array` only (`aftercorr`)."""


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
    for steps in groups.values():
        _in_order_of_their_inputs(steps, groups.values())

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


def _in_order_of_their_inputs(steps: list[Step], groups: Iterable[list[Step]]) -> None:
    """Sort `steps` in the order of the steps they need in another group, when each needs
    exactly one of that group and no two need the same one: then task i of their arrays needs
    task i of that group's arrays, and they can wait with `aftercorr`."""
    if len(steps) < 2:
        return
    for other in groups:
        index = {step.name: i for i, step in enumerate(other)}
        needed = [[index[i.name] for _, i in step.inputs if i.name in index] for step in steps]
        if all(len(n) == 1 for n in needed) and len({n[0] for n in needed}) == len(steps):
            order = {step.name: n[0] for step, n in zip(steps, needed, strict=True)}
            steps.sort(key=lambda step: order[step.name])
            return


def _with_dependencies(
    stage: str,
    resources: Resources,
    steps: list[Step],
    chunks: list[tuple[str, list[Step]]],
    position: dict[str, tuple[int, int]],
    queued: Mapping[str, str],
) -> ArrayJob:
    tasks_needed: dict[int, set[int]] = {}
    corresponding: dict[int, bool] = {}
    users: dict[int, int] = {}
    jobs_needed: set[str] = set()
    for own_task, step in enumerate(steps):
        of_array: dict[int, list[int]] = {}
        for _, needed in step.inputs:
            if needed.name in position:
                array, task = position[needed.name]
                of_array.setdefault(array, []).append(task)
            elif needed.name in queued:
                jobs_needed.add(queued[needed.name])
        for array, tasks in of_array.items():
            tasks_needed.setdefault(array, set()).update(tasks)
            corresponding[array] = corresponding.get(array, True) and tasks == [own_task]
            users[array] = users.get(array, 0) + 1
    needs_arrays = tuple(
        NeedsArray(array, None, corresponding=True)
        # Only between arrays: a single task is not an array, and waiting on all of a
        # one-task job is the same as waiting on its one task.
        if corresponding[array] and users[array] == len(steps) > 1 and len(chunks[array][1]) > 1
        else NeedsArray(
            array, None if len(tasks) == len(chunks[array][1]) else tuple(sorted(tasks))
        )
        for array, tasks in sorted(tasks_needed.items())
    )
    return ArrayJob(stage, resources, tuple(steps), needs_arrays, tuple(sorted(jobs_needed)))


def dependency_ids(array: ArrayJob, submitted: list[str]) -> list[str]:
    """The job ids `array` waits on (`afterok`), once the arrays before it were given ids
    `submitted`; the arrays it waits on task by task are `corresponding_ids`."""
    ids = list(array.needs_jobs)
    for need in array.needs_arrays:
        job = submitted[need.array]
        if need.corresponding:
            continue
        ids += [job] if need.tasks is None else [f"{job}_{task}" for task in need.tasks]
    return ids


def corresponding_ids(array: ArrayJob, submitted: list[str]) -> list[str]:
    """The arrays `array` waits on task by task (`aftercorr`)."""
    return [submitted[need.array] for need in array.needs_arrays if need.corresponding]


def sbatch_parameters(
    array: ArrayJob,
    experiment: str,
    array_parallelism: int,
    after: list[str],
    corresponding: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    """submitit SlurmExecutor parameters for `array`, waiting on the jobs `after` and, task by
    task, on the arrays `corresponding`."""
    r = array.resources
    stage = STAGES.get(array.stage, ONE_PROCESS)
    per_node = stage.processes_per_node(r)
    extra: dict[str, Any] = dict(r.sbatch)
    waits = [
        f"{kind}:{':'.join(ids)}"
        for kind, ids in (("afterok", after), ("aftercorr", corresponding))
        if ids
    ]
    if waits:  # comma: every one of them must hold
        extra |= {"dependency": ",".join(waits), "kill-on-invalid-dep": "yes"}
    optional = {
        "partition": r.partition,
        "account": r.account,
        "qos": r.qos,
        "gpus_per_node": r.gpus or None,
        # One task per rank; left out for a one-process step, as sbatch's defaults are that.
        "nodes": r.nodes if r.nodes > 1 else None,
        "ntasks_per_node": per_node if stage.world_size(r) > 1 else None,
    }
    # One rank failing ends the others at once rather than leaving them in a collective.
    ranks = {"srun_args": ["--kill-on-bad-exit=1"]} if stage.world_size(r) > 1 else {}
    return {
        "job_name": job_name(experiment, array.stage),
        "time": r.time_min,
        "cpus_per_task": r.cpus,
        "mem": _megabytes(r.mem_gb),
        "signal_delay_s": r.signal_delay_s,
        "array_parallelism": array_parallelism,
        **{key: value for key, value in optional.items() if value is not None},
        **ranks,
        "additional_parameters": extra,
    }


def resource_parameters(resources: Resources, stage: str) -> dict[str, Any]:
    """The parameters that depend on a stage's resources only (its tasks per rank among them):
    what `sbatch --test-only` can check."""
    array = ArrayJob(stage, resources, ())
    parameters = sbatch_parameters(array, "check", 1, [])
    del parameters["job_name"], parameters["array_parallelism"]
    return parameters


def _megabytes(gigabytes: float) -> str:
    return f"{round(gigabytes * 1024)}M"


def job_name(experiment: str, stage: str) -> str:
    return f"scaler-{experiment}-{stage}"
