"""Running a plan on Slurm: submit the whole DAG at once, follow it, cancel it.

Submitting groups the steps into one job array per stage and resources (scaler.slurm.render),
each array depending on the arrays its inputs are in, and records each sbatch call
(scaler.slurm.records) so a step is never submitted twice while the scheduler holds it.

Following: steps that end without a result are told apart by their final state (from squeue,
or sacct for jobs that ended more than MinJobAge ago). A failure (FAILED,
TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, ...) is submitted again up to `executor.retries` times; a
step Slurm cancelled before it ran because a job it waited on failed (`kill-on-invalid-dep`) is
submitted again when its inputs are done or coming again, and skipped when one failed for good;
a step someone cancelled is reported, not retried. Every submission, the follower's and a
re-run's, says which of its steps were cancelled with their array for a job they did not need
(scaler.slurm.cancelled). Where the steps stand without following them is
`scaler status` (scaler.status).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from scaler.errors import ScalerError, SubmissionError
from scaler.layout import Layout, read_json
from scaler.plan import Plan, Step
from scaler.provenance import run_provenance
from scaler.run.job import make_job
from scaler.run.outcome import RunReport, done_line, ended_line
from scaler.slurm.cancelled import WithArray, cancelled_with_array
from scaler.slurm.cluster import JobState, Slurm, missing_commands
from scaler.slurm.records import (
    active,
    append_record,
    cancelled_since,
    ended_states,
    job_failure,
    mark_cancelled,
    queued_steps,
    submission_lock,
    submitted_tasks,
)
from scaler.slurm.render import (
    corresponding_ids,
    dependency_ids,
    group_arrays,
    resource_parameters,
    sbatch_parameters,
)
from scaler.spec.schema import ExecutorSettings, Spec

SACCT_GRACE_S = 60.0
"""How long a finished task may be missing from sacct (slurmdbd lags) before it counts as lost."""


# ---------------------------------------------------------------------------- submission


@dataclass
class Submitted:
    arrays: list[tuple[str, str, int]] = field(default_factory=list)
    """(stage, job id, tasks) per sbatch call."""
    queued: dict[str, str] = field(default_factory=dict)
    """Steps that were already queued or running, left as they were."""
    with_array: WithArray | None = None
    """Steps submitted again because they were cancelled with their array for nothing."""


def submit_plan(
    plan: Plan,
    layout: Layout,
    slurm: Slurm,
    settings: ExecutorSettings,
    *,
    spec_hash: str = "",
    spec_json: dict | None = None,
    only: set[str] | None = None,
) -> Submitted:
    """Submit every step of `plan` (or of `only`) that is neither done nor queued. Refusals
    (a changed spec under queued steps, resources sbatch refuses, a plan over MaxJobCount) come
    before anything is written."""
    todo, _, _ = _to_submit(plan, layout, slurm, only)
    max_array_size, max_jobs = slurm.limits()
    if len(todo) >= max_jobs:
        raise SubmissionError(
            f"{len(todo)} steps to submit, but this cluster holds at most {max_jobs} jobs "
            f"(MaxJobCount; every array task counts): run a part of the grid first"
        )
    if only is None:  # a new submission: ask sbatch about each stage's resources first
        for stage in {step.stage: None for step in todo}:
            slurm.check(resource_parameters(plan.resources[stage]), f"resources.{stage}")
    with submission_lock(layout):
        # Again under the lock: another run may have submitted some of these meanwhile.
        todo, queued, queue = _to_submit(plan, layout, slurm, only)
        with_array = cancelled_with_array(todo, layout, slurm, queue) if todo else None
        array_size = min(settings.max_array_size or max_array_size, max_array_size)
        arrays = group_arrays(todo, queued, plan.resources, array_size)
        if spec_json is not None:  # what `scaler status` expands
            layout.write_spec(spec_json)
        provenance = run_provenance() | {"spec_hash": spec_hash, "experiment": plan.experiment}
        result = Submitted(queued=queued, with_array=with_array)
        job_ids: list[str] = []
        for array in arrays:
            after = dependency_ids(array, job_ids)
            parameters = sbatch_parameters(
                array,
                plan.experiment,
                settings.array_parallelism,
                after,
                corresponding_ids(array, job_ids),
            )
            jobs = [make_job(step, plan, layout, provenance) for step in array.steps]
            try:
                tasks = slurm.submit(parameters, jobs)
            except SubmissionError as error:
                if not job_ids:
                    raise
                raise ScalerError(
                    f"{error}; the {len(job_ids)} jobs submitted before it stay queued, and "
                    f"`scaler run` again submits the rest"
                ) from None
            append_record(layout, array.stage, [step.name for step in array.steps], tasks, after)
            job_ids.append(tasks[0].split("_")[0])
            result.arrays.append((array.stage, job_ids[-1], len(tasks)))
        return result


def _to_submit(
    plan: Plan, layout: Layout, slurm: Slurm, only: set[str] | None
) -> tuple[list[Step], dict[str, str], dict[str, JobState]]:
    """The steps to submit, the steps already queued, and the queue they were read from;
    refuses to orphan queued steps."""
    tasks = submitted_tasks(layout)
    queue = slurm.queue() if tasks else {}
    queued = {step: task for step, task in tasks.items() if active(queue, task)}
    orphans = sorted(queued.keys() - {step.name for step in plan.steps})
    if orphans:
        raise SubmissionError(
            f"{len(orphans)} queued or running steps of {plan.experiment} are not in this "
            f"spec (e.g. {orphans[0]}): the spec changed under them. Wait for them "
            f"(scaler status {plan.experiment}) or cancel them (scaler cancel "
            f"{plan.experiment}) first"
        )
    done = layout.done_names()
    todo = [
        step
        for step in plan.steps
        if step.name not in done and step.name not in queued and (only is None or step.name in only)
    ]
    return todo, queued, queue


def describe_submission(submitted: Submitted) -> str:
    queued = len(submitted.queued)
    if not submitted.arrays:
        return f"nothing new to submit: {queued} steps are already queued or running"
    jobs = ", ".join(
        f"{stage} {job}" + (f" ({tasks} tasks)" if tasks > 1 else "")
        for stage, job, tasks in submitted.arrays
    )
    steps = sum(tasks for _, _, tasks in submitted.arrays)
    also = f"; {queued} steps were already queued or running" if queued else ""
    return f"submitted {steps} steps in {len(submitted.arrays)} jobs: {jobs}{also}"


# ---------------------------------------------------------------------------- following


def follow(
    plan: Plan,
    layout: Layout,
    slurm: Slurm,
    settings: ExecutorSettings,
    *,
    spec_hash: str = "",
    say: Callable[[str], None] = print,
) -> RunReport:
    """Wait until every step of `plan` is done or has failed for good; resubmit what may run."""
    follower = _Follower(plan, layout, slurm, settings, say)
    started = time.time()
    while follower.watching:
        time.sleep(settings.poll_s)
        if cancelled_since(layout, started):
            say(f"stopped: scaler cancel {plan.experiment} was run")
            follower.report.skipped += follower.watching
            break
        again = follower.look()
        if again:
            submitted = submit_plan(plan, layout, slurm, settings, spec_hash=spec_hash, only=again)
            if submitted.with_array:
                say("  " + submitted.with_array.line("are submitted again"))
    if follower.report.skipped:
        say(f"  {len(follower.report.skipped)} step(s) not run: an input failed or was cancelled")
    return follower.report


class _Follower:
    """What one `scaler run` knows while it follows its jobs."""

    def __init__(
        self,
        plan: Plan,
        layout: Layout,
        slurm: Slurm,
        settings: ExecutorSettings,
        say: Callable[[str], None],
    ) -> None:
        self.layout, self.slurm, self.retries, self.say = layout, slurm, settings.retries, say
        self.steps = {step.name: step for step in plan.steps}
        done = layout.done_names()
        self.report = RunReport(already_done=len(done & self.steps.keys()))
        self.watching = [name for name in self.steps if name not in done]
        """Steps neither done nor given up, in plan order."""
        self.total = len(self.watching)
        self.attempts: Counter[str] = Counter()
        self.given_up: set[str] = set()
        self.missing_since: dict[str, float] = {}
        self.last_counts = ""

    def look(self) -> set[str]:
        """One look at the queue and the folders; returns the steps to submit again."""
        tasks = submitted_tasks(self.layout)
        queue = self.slurm.queue()  # before the folders: a step not queued now is done or ended
        done = self.layout.done_names()
        for name in [name for name in self.watching if name in done]:
            self.report.ran.append(name)
            self.say(self._done_line(self.steps[name]))
        self.watching = [name for name in self.watching if name not in done]
        ended = [name for name in self.watching if not active(queue, tasks.get(name))]
        again = self._judge(ended, tasks, queue) if ended else set()
        self.watching = [name for name in self.watching if name not in self.given_up]
        counts = _queue_counts(self.watching, tasks, queue)
        if counts and counts != self.last_counts:
            self.say(f"  {counts}")
            self.last_counts = counts
        return again

    def _judge(self, ended: list[str], tasks: dict[str, str], queue: dict) -> set[str]:
        states = ended_states(self.slurm, queue, [tasks[name] for name in ended if name in tasks])
        again: set[str] = set()
        for name in ended:  # plan order: inputs are judged before the steps that need them
            step, task = self.steps[name], tasks.get(name, "")
            state = states.get(task)
            if state is None:  # accounting may lag behind for a moment
                first_missing = self.missing_since.setdefault(name, time.time())
                if time.time() - first_missing < SACCT_GRACE_S:
                    continue
                state = JobState("LOST", "in neither squeue nor sacct")
            self.missing_since.pop(name, None)
            verdict = _verdict(step, state, self.attempts, self.retries, self.given_up)
            if verdict == "again":
                again.add(name)
                if self.attempts[name]:
                    retry = f"retry {self.attempts[name]} of {self.retries}"
                    self.say(f"  {name} {state.state}: submitting it again ({retry})")
                continue
            self.given_up.add(name)
            if verdict == "skipped":
                self.report.skipped.append(name)
                continue
            self.report.failed.append(job_failure(step, self.layout, self.slurm, task, state))
            progress = self.report.progress(self.total)
            self.say(ended_line(progress, verdict.upper(), step, state.state))
        return again

    def _done_line(self, step: Step) -> str:
        folder = self.layout.step_dir(step.stage, step.name)
        wall = read_json(folder / "provenance.json").get("wall_s", 0.0)
        metrics = read_json(folder / "result.json")["metrics"]
        return done_line(self.report.progress(self.total), step, wall, metrics)


def _verdict(
    step: Step, state: JobState, attempts: Counter[str], retries: int, given_up: set[str]
) -> str:
    """What to do with a step whose job ended without a result: again, failed, cancelled,
    or skipped."""
    if state.killed_for_dependency:
        # Cancelled before it ran, by kill-on-invalid-dep: an input of its array failed. It
        # runs again unless one of its own inputs failed for good.
        inputs = [needed.name for _, needed in step.inputs]
        return "skipped" if any(name in given_up for name in inputs) else "again"
    if state.state == "CANCELLED":
        return "cancelled"
    attempts[step.name] += 1
    return "again" if attempts[step.name] <= retries else "failed"


def _queue_counts(watching: list[str], tasks: dict[str, str], queue: dict) -> str:
    states = Counter(
        "running" if queue[tasks[name]].state == "RUNNING" else "queued"
        for name in watching
        if active(queue, tasks.get(name))
    )
    return ", ".join(f"{count} {state}" for state, count in sorted(states.items()))


# ---------------------------------------------------------------------------- cancel


def cancel_experiment(layout: Layout, slurm: Slurm) -> tuple[int, list[str]]:
    """Cancel every queued or running job of the experiment: (steps, job ids)."""
    mark_cancelled(layout)
    queued = queued_steps(layout, slurm)
    jobs = sorted({task.split("_")[0] for task in queued.values()}, key=int)
    slurm.cancel(jobs)
    return len(queued), jobs


# ---------------------------------------------------------------------------- scaler run


def run_on_slurm(
    plan: Plan,
    layout: Layout,
    spec: Spec,
    spec_hash: str,
    *,
    detach: bool,
    say: Callable[[str], None] = print,
) -> RunReport | None:
    """`scaler run --executor slurm`: submit, then follow unless `detach` (then None)."""
    missing = missing_commands()
    if missing:
        raise SubmissionError(
            f"no Slurm here ({', '.join(missing)} not on PATH); use the local executor "
            "(executor.name: local)"
        )
    settings = spec.executor
    slurm = Slurm(layout.slurm_logs, settings.max_timeouts)
    submitted = submit_plan(
        plan, layout, slurm, settings, spec_hash=spec_hash, spec_json=spec.model_dump(mode="json")
    )
    say(describe_submission(submitted))
    if submitted.with_array:
        say(submitted.with_array.line("are submitted again"))
    if detach:
        say(f"see progress: scaler status {plan.experiment}; stop: scaler cancel {plan.experiment}")
        return None
    try:
        return follow(plan, layout, slurm, settings, spec_hash=spec_hash, say=say)
    except KeyboardInterrupt:
        say(f"stopped following; the jobs stay queued (scaler status {plan.experiment})")
        raise
