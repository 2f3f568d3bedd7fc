"""Running a plan on Slurm: submit the DAG, follow it, cancel it.

Submitting groups the steps into one job array per stage and resources (scaler.slurm.render),
each array depending on the arrays its inputs are in, and records each sbatch call
(scaler.slurm.records) so a step is never submitted twice while the scheduler holds it. A plan
larger than the room in the queue goes in waves (scaler.slurm.waves): a submission takes the
whole arrays that fit now and leaves the rest waiting; the follower submits them as room
appears, each wave under the submission lock and from the records as they are then, so a step
that another run submitted meanwhile is not submitted again. `scaler run --detach` leaves no
process behind: it says that `scaler run` again submits the next wave.

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
from dataclasses import dataclass, field, replace

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
from scaler.slurm.waves import Limits, Room, capacity, room, this_wave
from scaler.spec.schema import ExecutorSettings, Spec
from scaler.step_index import save_spec

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
    waiting: dict[str, str | None] = field(default_factory=dict)
    """Steps left for a later wave -> the task of their latest earlier submission (None: never
    submitted): no room in the queue for their array, or an input not yet done or queued."""
    next_tasks: int = 0
    """Tasks of the first array left waiting: the room the next wave needs (0: none left)."""
    room: Room | None = None
    """The room in the queue this submission saw, before it."""
    limits: Limits | None = None


def submit_plan(
    plan: Plan,
    layout: Layout,
    slurm: Slurm,
    settings: ExecutorSettings,
    *,
    spec_hash: str = "",
    spec: Spec | None = None,
    only: set[str] | None = None,
    unless_cancelled_since: float | None = None,
) -> Submitted:
    """Submit the steps of `plan` (or of `only`) that are neither done nor queued, as many as
    the queue has room for now (scaler.slurm.waves): the rest is `Submitted.waiting`, for the
    follower or a later `scaler run`. Refusals (a changed spec under queued steps, resources
    sbatch refuses) come before anything is written. Nothing is submitted when `scaler cancel`
    ran after `unless_cancelled_since` (it cancels under the same lock)."""
    if only is None:  # a new submission: ask sbatch about each stage's resources first
        todo = _to_submit(plan, layout, slurm, only).todo
        for stage in {step.stage: None for step in todo}:
            slurm.check(resource_parameters(plan.resources[stage], stage), f"resources.{stage}")
    used = plan.resources.values()
    limits = slurm.limits({r.account for r in used}, {r.qos for r in used})
    with submission_lock(layout):
        if unless_cancelled_since is not None and cancelled_since(layout, unless_cancelled_since):
            return Submitted()
        # Again under the lock: another run may have submitted some of these meanwhile.
        found = _to_submit(plan, layout, slurm, only)
        array_size = min(
            settings.max_array_size or limits.max_array_size,
            limits.max_array_size,
            capacity(limits, settings.max_jobs),
        )
        arrays = group_arrays(found.todo, found.queued, plan.resources, array_size)
        held, queued = slurm.held() if arrays else (0, [])
        now = room(
            limits, held=held, queued=queued, ours=len(found.queued), max_jobs=settings.max_jobs
        )
        wave = this_wave(arrays, now.tasks)
        going = [step for array in wave for step in array.steps]
        with_array = cancelled_with_array(going, layout, slurm, found.queue) if going else None
        if spec is not None:  # what `scaler status` reads
            save_spec(layout, spec, plan)
        provenance = run_provenance() | {"spec_hash": spec_hash, "experiment": plan.experiment}
        left = [step for array in arrays[len(wave) :] for step in array.steps] + found.blocked
        result = Submitted(
            queued=found.queued,
            with_array=with_array,
            waiting={step.name: found.tasks.get(step.name) for step in left},
            next_tasks=len(arrays[len(wave)].steps) if len(arrays) > len(wave) else 0,
            room=now,
            limits=limits,
        )
        job_ids: list[str] = []
        for array in wave:
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


@dataclass
class _ToSubmit:
    todo: list[Step]
    """Steps to submit now: neither done nor queued, each input done, queued or among them."""
    blocked: list[Step]
    """Steps of `only` with an input that is none of these (it ended, and is not yet judged or
    submitted again): held back, since submitting them would run them without it."""
    queued: dict[str, str]
    queue: dict[str, JobState]
    tasks: dict[str, str]
    """Step -> the task of its latest submission."""


def _to_submit(plan: Plan, layout: Layout, slurm: Slurm, only: set[str] | None) -> _ToSubmit:
    """The steps to submit and to hold back, the steps already queued, and the queue they were
    read from; refuses to orphan queued steps."""
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
    ready = layout.done_names() | queued.keys()
    todo: list[Step] = []
    blocked: list[Step] = []
    for step in plan.steps:  # every step after its inputs
        if step.name in ready or (only is not None and step.name not in only):
            continue
        if all(needed.name in ready for _, needed in step.inputs):
            todo.append(step)
            ready.add(step.name)
        else:
            blocked.append(step)
    return _ToSubmit(todo, blocked, queued, queue, tasks)


def describe_submission(submitted: Submitted) -> str:
    queued = len(submitted.queued)
    also = f"; {queued:,} steps were already queued or running" if queued else ""
    waiting = _waiting_line(submitted)
    if not submitted.arrays:
        if waiting:
            return f"submitted nothing now: {waiting}{also}"
        return f"nothing new to submit: {queued:,} steps are already queued or running"
    jobs = ", ".join(
        f"{stage} {job}" + (f" ({tasks:,} tasks)" if tasks > 1 else "")
        for stage, job, tasks in submitted.arrays
    )
    steps = sum(tasks for _, _, tasks in submitted.arrays)
    line = f"submitted {steps:,} steps in {len(submitted.arrays)} jobs: {jobs}{also}"
    return line + (f"; {waiting}" if waiting else "")


def _waiting_line(submitted: Submitted) -> str:
    if not submitted.waiting:
        return ""
    if not submitted.next_tasks:  # held back for an input that ended and is to run again
        return f"{len(submitted.waiting):,} steps wait for their inputs"
    why = f" (room now: {submitted.room.bound})" if submitted.room else ""
    return f"{len(submitted.waiting):,} steps wait for room in the queue{why}"


# ---------------------------------------------------------------------------- following


def follow(
    plan: Plan,
    layout: Layout,
    slurm: Slurm,
    settings: ExecutorSettings,
    *,
    spec_hash: str = "",
    first: Submitted | None = None,
    say: Callable[[str], None] = print,
) -> RunReport:
    """Wait until every step of `plan` is done or has failed for good; resubmit what may run,
    and submit the steps the `first` submission left waiting, wave by wave as room appears."""
    follower = _Follower(plan, layout, slurm, settings, say, first or Submitted())
    started = time.time()
    while follower.watching:
        time.sleep(settings.poll_s)
        if cancelled_since(layout, started):
            say(f"stopped: scaler cancel {plan.experiment} was run")
            follower.report.skipped += follower.watching
            break
        again = follower.look()
        wave = follower.wave(again)
        if wave:
            submitted = submit_plan(
                plan,
                layout,
                slurm,
                settings,
                spec_hash=spec_hash,
                only=wave,
                unless_cancelled_since=started,
            )
            follower.took(submitted, wave)
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
        first: Submitted,
    ) -> None:
        self.layout, self.slurm, self.settings, self.say = layout, slurm, settings, say
        self.steps = {step.name: step for step in plan.steps}
        done = layout.done_names()
        self.report = RunReport(already_done=len(done & self.steps.keys()))
        self.watching = [name for name in self.steps if name not in done]
        """Steps neither done nor given up, in plan order."""
        self.waiting = dict(first.waiting)
        """Watched steps not (again) submitted yet -> the task they had when left waiting: no
        room in the queue, or an input to wait for. A new task means someone submitted it."""
        self.next_tasks, self.limits = first.next_tasks, first.limits
        self.ours = 0
        """This experiment's queued and running tasks at the last look."""
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
        self.waiting = {
            name: task
            for name, task in self.waiting.items()
            if name not in done and tasks.get(name) == task
        }
        ended = [
            name
            for name in self.watching
            if name not in self.waiting and not active(queue, tasks.get(name))
        ]
        again = self._judge(ended, tasks, queue) if ended else set()
        for name in self.watching:  # plan order: a step's inputs are skipped before it
            needs = [needed.name for _, needed in self.steps[name].inputs]
            if name in self.waiting and any(needed in self.given_up for needed in needs):
                self.report.skipped.append(name)
                self.given_up.add(name)
                del self.waiting[name]
        self.watching = [name for name in self.watching if name not in self.given_up]
        self.ours = sum(active(queue, tasks.get(name)) for name in self.watching)
        counts = _queue_counts(self.watching, tasks, queue, len(self.waiting))
        if counts and counts != self.last_counts:
            self.say(f"  {counts}")
            self.last_counts = counts
        return again

    def wave(self, again: set[str]) -> set[str]:
        """The steps to hand to submit_plan now: those to submit again, and the waiting ones
        when the queue has room for the next of their arrays (one squeue to know)."""
        if not self.waiting or (not again and not self._room_for_next()):
            return again
        return again | self.waiting.keys()

    def _room_for_next(self) -> bool:
        if not self.next_tasks or self.limits is None:  # not known: let submit_plan see
            return True
        held, queued = self.slurm.held()
        now = room(
            self.limits, held=held, queued=queued, ours=self.ours, max_jobs=self.settings.max_jobs
        )
        return now.tasks >= self.next_tasks

    def took(self, submitted: Submitted, wave: set[str]) -> None:
        """Keep what a submission of `wave` left waiting; say what went in."""
        kept = {name: task for name, task in self.waiting.items() if name not in wave}
        self.waiting = kept | submitted.waiting
        self.next_tasks, self.limits = submitted.next_tasks, submitted.limits
        if submitted.arrays:
            shown = replace(submitted, queued={}, waiting=self.waiting)
            self.say(f"  next wave: {describe_submission(shown)}")

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
            verdict = _verdict(step, state, self.attempts, self.settings.retries, self.given_up)
            if verdict == "again":
                again.add(name)
                if self.attempts[name]:
                    retry = f"retry {self.attempts[name]} of {self.settings.retries}"
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


def _queue_counts(watching: list[str], tasks: dict[str, str], queue: dict, waiting: int) -> str:
    states = Counter(
        "running" if queue[tasks[name]].state == "RUNNING" else "queued"
        for name in watching
        if active(queue, tasks.get(name))
    )
    counts = [f"{count:,} {state}" for state, count in sorted(states.items())]
    return ", ".join(counts + ([f"{waiting:,} waiting for room"] if waiting else []))


# ---------------------------------------------------------------------------- cancel


def cancel_experiment(layout: Layout, slurm: Slurm) -> tuple[int, list[str]]:
    """Cancel every queued or running job of the experiment: (steps, job ids). Under the
    submission lock, so a follower's next wave goes in before it (and is cancelled) or not at
    all."""
    with submission_lock(layout):
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
    submitted = submit_plan(plan, layout, slurm, settings, spec_hash=spec_hash, spec=spec)
    say(describe_submission(submitted))
    if submitted.with_array:
        say(submitted.with_array.line("are submitted again"))
    if detach:
        if submitted.waiting:
            # Nothing stays behind to submit them: a process left on the login node would
            # outlive its terminal unseen, or die with it (docs/slurm.md, "Waves").
            say(
                "the next wave is not submitted by itself: `scaler run` again with this spec "
                "submits it once room appears (or run without --detach to follow and submit "
                "each wave as room appears)"
            )
        say(f"see progress: scaler status {plan.experiment}; stop: scaler cancel {plan.experiment}")
        return None
    try:
        return follow(plan, layout, slurm, settings, spec_hash=spec_hash, first=submitted, say=say)
    except KeyboardInterrupt:
        say(f"stopped following; the jobs stay queued (scaler status {plan.experiment})")
        raise
