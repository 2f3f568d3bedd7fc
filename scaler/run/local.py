"""Run the steps of a plan that are not done yet, in dependency order, here.

Executors are interchangeable: `inline` runs each StepJob in this process, `local` in its own
process through submitit, `warm` in worker processes that stay up (scaler.run.warm). An
executor has a number of slots (steps it runs at once) and `submit(job, resources)`, which
returns a handle with `done()` and `result()` (raising what the step raised); `execute`
schedules the whole DAG the same way with any of them.

Steps whose inputs are all finished are handed to the executor as soon as it has a free slot.
A failed step is reported with the tail of its error; the steps that need it are skipped and
everything else still runs. What is done is read from disk only (scaler.layout), so a run killed
at any moment and started again picks up where it stopped.
"""

from __future__ import annotations

import os
import signal
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from scaler.errors import RunStopped, StepFailed, Terminated
from scaler.layout import Layout
from scaler.plan import Plan, Step
from scaler.provenance import run_provenance
from scaler.run.job import StepJob, make_job, run_step
from scaler.run.lifeline import interrupts_held
from scaler.run.locks import this_process
from scaler.run.outcome import ERROR_TAIL_LINES, RunReport, done_line, ended_line, step_failure
from scaler.spec.schema import Resources


class Handle(Protocol):
    def done(self) -> bool: ...
    def result(self) -> Any: ...


class Executor(Protocol):
    slots: int

    def submit(self, job: StepJob, resources: Resources) -> Handle: ...


class _Finished:
    """The outcome of a step already run in this process."""

    def __init__(self, value: Any = None, error: BaseException | None = None):
        self.value, self.error = value, error

    def done(self) -> bool:
        return True

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


class InlineExecutor:
    """Runs each step in the calling process, one at a time: for tests and debugging."""

    slots = 1

    def submit(self, job: StepJob, resources: Resources) -> Handle:
        try:
            return _Finished(run_step(job))
        except Exception as error:  # noqa: BLE001 - reported by the scheduler with the step
            return _Finished(error=error)


class LocalExecutor:
    """submitit's local executor: each step in its own process, `parallel` at a time, tied to
    this run (scaler.run.lifeline) so that no job outlives it."""

    def __init__(self, log_dir: Path, parallel: int):
        import submitit

        self.slots = parallel
        self._executor = submitit.LocalExecutor(folder=log_dir)
        self._owner = this_process()
        self.started: list[Handle] = []
        """The jobs submitted and not known to be done, for `_cancel_running`."""

    def submit(self, job: StepJob, resources: Resources) -> Handle:
        self._executor.update_parameters(
            timeout_min=resources.time_min, gpus_per_node=resources.gpus
        )
        with interrupts_held():  # see there: the jobs never see the terminal's Ctrl-C
            handle = self._executor.submit(run_step, replace(job, owner=self._owner))
            # Known before a Ctrl-C held meanwhile is raised, so that it is cancelled too.
            self.started = [h for h in self.started if not h.done()] + [handle]
        return handle

    @staticmethod
    def cancel(handle: Any) -> None:
        # SIGTERM to submitit's controller, which forwards it to its task; there it raises
        # lifeline.Cancelled. (submitit's own cancel sends SIGINT, which these never see.)
        with suppress(ProcessLookupError, ValueError):
            os.kill(int(handle.job_id), signal.SIGTERM)


def make_executor(name: str, log_dir: Path, parallel: int) -> Executor:
    if name == "inline":
        return InlineExecutor()
    if name == "local":
        return LocalExecutor(log_dir, parallel)
    if name == "warm":
        from scaler.run.warm import WarmExecutor  # only when chosen, as submitit is

        return WarmExecutor(parallel)
    raise ValueError(f"unknown executor {name!r}; expected inline, local or warm")


def execute(
    plan: Plan,
    layout: Layout,
    executor: Executor,
    *,
    spec_hash: str = "",
    retries: int = 0,
    say: Callable[[str], None] = print,
    poll_seconds: float = 0.05,
    live: bool | None = None,
) -> RunReport:
    """Run every step of `plan` not done yet with `executor`; a failed step is tried `retries`
    more times, then reported and the steps that need it skipped. `live`: draw the progress
    display (scaler.run.progress_view) above the lines; None: when printing to a terminal."""
    # One function (about 75 lines): `finish` updates the scheduler's own state (ready,
    # waiting_on, attempts, report), which a class would only spread out.
    done = layout.done_names()
    todo = [step for step in plan.steps if step.name not in done]
    report = RunReport(already_done=len(plan.steps) - len(todo))
    if not todo:
        return report
    provenance = run_provenance() | {"spec_hash": spec_hash, "experiment": plan.experiment}
    waiting_on = {s.name: {i.name for _, i in s.inputs if i.name not in done} for s in todo}
    dependents: dict[str, list[Step]] = {}
    for step in todo:
        for _, needed in step.inputs:
            dependents.setdefault(needed.name, []).append(step)
    ready = deque(step for step in todo if not waiting_on[step.name])
    running: dict[str, tuple[Step, Handle, float]] = {}
    attempts: dict[str, int] = {}
    say(f"running {len(todo)} of {len(plan.steps)} steps ({report.already_done} done)")
    display = _Display(plan, layout, todo, executor.slots, on=_live(live, say))

    def finish(step: Step, handle: Handle, started: float) -> None:
        try:
            metrics = handle.result()
        except Exception as error:  # noqa: BLE001 - every failure is reported with its step
            attempts[step.name] = attempts.get(step.name, 0) + 1
            if attempts[step.name] <= retries:
                retry = f"retry {attempts[step.name]} of {retries}"
                say(f"  {step.name} failed: running it again ({retry})")
                ready.appendleft(step)
                return
            report.failed.append(_failure(step, layout, error))
            say(ended_line(report.progress(len(todo)), "FAILED", step))
            _skip_dependents(step, dependents, report, say)
            return
        report.ran.append(step.name)
        display.durations.add(step.stage, step.coords.get("size"), time.time() - started)
        say(done_line(report.progress(len(todo)), step, time.time() - started, metrics))
        for waiting in dependents.get(step.name, ()):
            waiting_on[waiting.name].discard(step.name)
            if not waiting_on[waiting.name]:
                # Depth first: finish a grid cell (train -> evaluate) before starting the next,
                # so partial runs already hold complete results.
                ready.appendleft(waiting)

    with display:
        try:
            while ready or running:
                while ready and len(running) < executor.slots:
                    step = ready.popleft()
                    job = make_job(step, plan, layout, provenance)
                    started = time.time()
                    handle = executor.submit(job, plan.resources[step.stage])
                    running[step.name] = (step, handle, started)
                finished = [name for name, (_, handle, _) in running.items() if handle.done()]
                for name in finished:
                    finish(*running.pop(name))
                display.tick(running, done, report)
                if not finished:
                    _wait_for_any(executor, running, poll_seconds)
        except KeyboardInterrupt as interrupt:
            raise _cancel_running(executor, running, interrupt, say) from None
        finally:
            # Worker pools (the warm executor) end here, their queues released; not at exit,
            # where multiprocessing's resource tracker would warn of them on stderr.
            getattr(executor, "shutdown", lambda: None)()
    return report


def _wait_for_any(executor: Executor, running: dict, seconds: float) -> None:
    # An executor that can be woken by a step's end (warm) is; the others are polled. Either
    # way at least every `seconds`: `done()` is also where time limits are enforced.
    wait = getattr(executor, "wait", None)
    if wait is None:
        time.sleep(seconds)
    else:
        wait([handle for _, handle, _ in running.values()], seconds)


def _live(live: bool | None, say: Callable[[str], None]) -> bool:
    # Automatic only when the lines go to stdout and stdout is a terminal: a caller that
    # collects the lines (tests, the library) gets them alone.
    if live is None:
        from scaler.run.progress_view import on_terminal

        return say is print and on_terminal()
    return live


class _Display:
    """The live progress display of one `execute` (scaler.run.progress_view), or, when off,
    nothing at all: the scheduler's lines are then the whole output."""

    def __init__(self, plan: Plan, layout: Layout, todo: list[Step], slots: int, *, on: bool):
        from scaler.run import progress_view

        self.plan, self.layout, self.slots = plan, layout, slots
        self.durations = progress_view.Durations()
        self._view = progress_view.LiveView() if on else None
        if on:  # the measured durations of the stages to run, read once
            self.durations.load(layout, {step.stage for step in todo})

    def __enter__(self) -> _Display:
        if self._view is not None:
            self._view.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._view is not None:
            self._view.__exit__(*exc)

    def tick(self, running: dict[str, tuple[Step, Handle, float]], done: set, report) -> None:
        if self._view is None or not self._view.due():
            return
        from scaler.run.progress_view import scheduler_board

        started = {name: (step, since) for name, (step, _, since) in running.items()}
        self._view.show(
            scheduler_board(
                self.plan,
                self.layout,
                self.durations,
                done=done,
                running=started,
                report=report,
                slots=self.slots,
            )  # fmt: skip
        )


CANCEL_WAIT_S = 15.0
"""How long cancelled jobs get to clean up before the run stops waiting for them."""


def _cancel_running(executor, running: dict, interrupt: KeyboardInterrupt, say) -> RunStopped:
    """Cancel the running steps and wait for their processes to end, so that none outlives the
    run; what they had written of their steps is removed by them (scaler.run.job)."""
    handles = [handle for _, handle, _ in running.values()]
    # A job submitted as the interrupt came is not in `running` yet; its executor knows it.
    handles += [h for h in getattr(executor, "started", []) if h not in handles and not h.done()]
    cancel = getattr(executor, "cancel", None)
    if cancel is not None:
        for handle in handles:
            cancel(handle)
    deadline = time.time() + CANCEL_WAIT_S
    while time.time() < deadline and not all(h.done() for h in handles):
        time.sleep(0.05)
    return RunStopped(isinstance(interrupt, Terminated), sorted(running))


def _skip_dependents(failed: Step, dependents: dict, report: RunReport, say) -> None:
    queue = deque(dependents.get(failed.name, ()))
    seen: set[str] = set()
    while queue:
        step = queue.popleft()
        if step.name in seen:
            continue
        seen.add(step.name)
        report.skipped.append(step.name)
        queue.extend(dependents.get(step.name, ()))
    if seen:
        say(f"  skipping {len(seen)} step(s) that need {failed.name}")


def _failure(step: Step, layout: Layout, error: BaseException) -> StepFailed:
    # Without an error.txt the job died before it could write one (killed, out of memory):
    # say what the executor knows.
    text = "\n".join(str(error).splitlines()[-ERROR_TAIL_LINES:])
    log = getattr(getattr(error, "paths", None), "stderr", None)
    return step_failure(
        step, layout, f"{type(error).__name__}: {text}", where=Path(log or layout.logs)
    )
