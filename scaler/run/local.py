"""Run the steps of a plan that are not done yet, in dependency order.

Steps whose inputs are all finished are handed to the executor as soon as it has a free slot.
A failed step is reported with the tail of its error; the steps that need it are skipped and
everything else still runs. What is done is read from disk only (scaler.layout), so a run killed
at any moment and started again picks up where it stopped.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scaler.errors import StepFailed
from scaler.layout import Layout
from scaler.plan import Plan, Step
from scaler.provenance import run_provenance
from scaler.run.executors import Executor, Handle
from scaler.run.job import StepJob
from scaler.stages import STAGES

ERROR_TAIL_LINES = 12


@dataclass
class RunReport:
    already_done: int = 0
    ran: list[str] = field(default_factory=list)
    failed: list[StepFailed] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Steps not run because an input failed."""


def make_job(step: Step, plan: Plan, layout: Layout, provenance: dict) -> StepJob:
    stage = STAGES[step.stage]
    return StepJob(
        name=step.name,
        stage=step.stage,
        step_id=step.id,
        module=stage.module,
        version=stage.version,
        config=step.config.model_dump(mode="json"),
        inputs={role: str(layout.step_dir(i.stage, i.name)) for role, i in step.inputs},
        coords=step.coords,
        out_dir=str(layout.step_dir(step.stage, step.name)),
        cpus=plan.resources[step.stage].cpus,
        provenance=provenance,
        work_dir=str(layout.work_dir(step.stage, step.name)),
    )


def execute(
    plan: Plan,
    layout: Layout,
    executor: Executor,
    *,
    spec_hash: str = "",
    retries: int = 0,
    say: Callable[[str], None] = print,
    poll_seconds: float = 0.05,
) -> RunReport:
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
            say(f"[{_count(report, todo)}] FAILED {step.name} {coords_text(step)}")
            _skip_dependents(step, dependents, report, say)
            return
        report.ran.append(step.name)
        say(
            f"[{_count(report, todo)}] done {step.name} {coords_text(step)} "
            f"{time.time() - started:.1f}s{headline(metrics)}"
        )
        for waiting in dependents.get(step.name, ()):
            waiting_on[waiting.name].discard(step.name)
            if not waiting_on[waiting.name]:
                # Depth first: finish a grid cell (train -> evaluate) before starting the next,
                # so partial runs already hold complete results.
                ready.appendleft(waiting)

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
            if not finished:
                time.sleep(poll_seconds)
    except KeyboardInterrupt:
        for _, handle, _ in running.values():
            cancel = getattr(handle, "cancel", None)
            if cancel is not None:
                cancel(check=False)
        raise
    return report


def _count(report: RunReport, todo: list[Step]) -> str:
    width = len(str(len(todo)))
    return f"{len(report.ran) + len(report.failed) + len(report.skipped):>{width}}/{len(todo)}"


def coords_text(step: Step) -> str:
    shown = {k: v for k, v in step.coords.items() if k not in ("world", "model")}
    return "(" + " ".join(f"{k}={v}" for k, v in shown.items()) + ")" if shown else ""


def headline(metrics: dict) -> str:
    for key in ("accuracy", "best_val_accuracy", "n_train"):
        if isinstance(metrics, dict) and isinstance(metrics.get(key), (int, float)):
            return f" {key}={metrics[key]:.4g}"
    return ""


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
    error_file = layout.failed_dir(step.stage, step.name) / "error.txt"
    if error_file.is_file():
        tail = "\n".join(error_file.read_text().splitlines()[-ERROR_TAIL_LINES:])
        return StepFailed(step.name, str(error_file), tail)
    # The job died before it could write its error (killed, out of memory): say what we know.
    text = "\n".join(str(error).splitlines()[-ERROR_TAIL_LINES:])
    log = getattr(getattr(error, "paths", None), "stderr", None)
    return StepFailed(step.name, str(log or Path(layout.logs)), f"{type(error).__name__}: {text}")
