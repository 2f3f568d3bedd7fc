"""Where an experiment's steps stand, as `scaler plan` and `scaler status` print it.

One `step_states` serves both. A step's folder says whether it is done or its last attempt
failed, and its manifest whether a finished folder is still whole: one that fails the quick check
of scaler.manifest is `damaged` (nothing here moves it; `scaler run` and `scaler collect` set it
aside). For a step submitted to Slurm, its latest job says whether it is queued, running, or
ended without a result (failed, or cancelled), from one squeue and, for jobs that ended, one
sacct. `scaler plan` reads the folders only: it shows what a run would do, without asking the
cluster.

`scaler plan` prints the steps per stage, which are done, and the grid cells they serve; for a
step that would run, `--steps` also says why it is new: the config fields in which it differs
from the closest finished step of the same stage (or that no such step exists), and with the
estimate of scaler.cost_view, what the steps to run cost. `scaler status` prints per stage how
many steps are in each state, the estimate of the finished ones beside their measured wall time,
and the failures with their log tails; `--watch` shows the live progress display, read from the
files, until nothing runs or waits.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scaler.bulk import collector_paused
from scaler.errors import StepFailed
from scaler.fingerprint import fields_without_effect, output_fields
from scaler.finished_memo import finished_steps
from scaler.layout import Layout, read_json
from scaler.manifest import damaged_steps
from scaler.slurm.cancelled import WithArray, cancelled_with_array
from scaler.slurm.cluster import JobState, Slurm, missing_commands
from scaler.slurm.records import active, ended_states, job_failure, submitted_tasks
from scaler.stages import STAGES
from scaler.step_index import PlanView, read_index
from scaler.text import format_table

if TYPE_CHECKING:
    from scaler.cost_view import PlanCost, StepCosts
    from scaler.plan import Plan, Step
    from scaler.spec.schema import Spec

TO_RUN = "to run"
DAMAGED = "damaged"
ENDED_BADLY = frozenset({"failed", "cancelled"})
SHOWN_DAMAGED = 10


@dataclass(frozen=True)
class StepStates:
    states: dict[str, str]
    """Step name -> done, damaged, running, queued, failed, cancelled or to run."""
    failures: list[StepFailed]
    """The error of each failed step, in plan order."""
    damaged: dict[str, str]
    """Why each damaged step of the plan is (its folder no longer matches its manifest)."""
    with_array: WithArray | None = None
    """The cancelled steps Slurm cancelled with their array for a task they do not need."""
    wall_s: dict[str, float | None] | None = None
    """Step name -> the wall time of each whole finished folder, as `scaler status` read them."""


def step_states(plan: PlanView, layout: Layout, *, as_status: bool = True) -> StepStates:
    """Each step's state and the error of each failed one; see the module for how.

    `as_status`: as `scaler status` reads them, asking Slurm and checking each finished folder
    once (scaler.finished_memo); else as `scaler plan` does, from the
    folders alone, every one checked."""
    tasks = submitted_tasks(layout) if as_status else {}
    slurm = Slurm(layout.slurm_logs) if tasks and not missing_commands() else None
    queue = slurm.queue() if slurm else {}
    done, failed_dirs = layout.done_names(), layout.failed_names()
    finished = finished_steps(layout) if as_status else None
    damaged = finished.damaged if finished else damaged_steps(layout)
    # Over the names: step objects are made only for the steps said more of (a step index
    # makes them when asked, scaler.step_index).
    states: dict[str, str] = {}
    ended: list[int] = []
    for at, name in enumerate(plan.names):
        task = tasks.get(name)
        if name in damaged:
            states[name] = DAMAGED
        elif name in done:
            states[name] = "done"
        elif task and active(queue, task):
            states[name] = "running" if queue[task].state == "RUNNING" else "queued"
        elif task and slurm:
            ended.append(at)
            states[name] = "failed"  # until accounting says how it ended
        else:
            states[name] = "failed" if name in failed_dirs else TO_RUN
    names = plan.names
    how = ended_states(slurm, queue, [tasks[names[at]] for at in ended]) if slurm and ended else {}
    for at in ended:
        state = how.get(tasks[names[at]], JobState("UNKNOWN"))
        if state.state == "CANCELLED" and names[at] not in failed_dirs:
            states[names[at]] = "cancelled"
    failures, cancelled = [], []
    for at in (at for at, state in enumerate(states.values()) if state in ENDED_BADLY):
        step = plan.steps[at]
        if states[step.name] == "cancelled":
            cancelled.append(step)
            continue
        task = tasks.get(step.name, "")
        state = how.get(task, JobState("UNKNOWN"))
        failures.append(job_failure(step, layout, slurm, task, state))
    in_plan = {name: why for name, why in damaged.items() if name in states}
    with_array = cancelled_with_array(cancelled, layout, slurm, queue) if slurm else None
    wall_s = finished.wall_s if finished else None
    return StepStates(states, failures, in_plan, with_array, wall_s)


def damaged_lines(damaged: dict[str, str], shown: int = SHOWN_DAMAGED) -> list[str]:
    """What `scaler plan` and `scaler status` say about damaged steps: each with its reason,
    and what repairs them."""
    if not damaged:
        return []
    lines = [f"DAMAGED {name}: {why}" for name, why in list(damaged.items())[:shown]]
    if len(damaged) > shown:
        lines.append(f"... and {len(damaged) - shown} more damaged steps")
    lines.append(
        f"{len(damaged)} steps no longer match their manifests: `scaler run` moves them aside "
        "(.damaged-<step>/) and runs them again"
    )
    return lines


PLAN_COLUMNS = ("done", DAMAGED, TO_RUN, "failed")


def describe_plan(
    plan: Plan,
    layout: Layout,
    *,
    source: str,
    list_steps: bool = False,
    cost: PlanCost | None = None,
) -> str:
    """`scaler plan`'s text; with `cost` (scaler.cost_view.price), what the steps to run cost."""
    found = step_states(plan, layout, as_status=False)
    states = found.states
    counts = Counter(states.values())
    n_cells = max(plan.cells.values(), default=0)
    damaged = f", {counts[DAMAGED]} damaged" if counts[DAMAGED] else ""
    lines = [
        f"experiment {plan.experiment} ({source}): {len(plan.steps)} steps for {n_cells} grid "
        f"cells; {counts['done']} done, {counts[TO_RUN]} to run, {counts['failed']} failed"
        + damaged,
        f"results: {layout.root}",
        "",
    ]
    rows = []
    for stage, steps in plan.by_stage().items():
        stage_states = Counter(states[s.name] for s in steps)
        served = sorted({plan.cells[s.id] for s in steps})
        rows.append(
            [
                stage,
                len(steps),
                *(stage_states[column] for column in PLAN_COLUMNS),
                ",".join(map(str, served)),
                _resources(plan, stage),
            ]
        )
    lines.append(
        format_table(["stage", "steps", *PLAN_COLUMNS, "cells per step", "resources"], rows)
    )
    if cost is not None:
        from scaler.cost_view import plan_lines

        lines += ["", *plan_lines(plan, cost, states)]
    if found.damaged:
        lines += ["", *damaged_lines(found.damaged)]
    if list_steps:
        lines += ["", _step_listing(plan, layout, found, cost)]
    return "\n".join(lines)


SLURM_PLACES = ("partition", "account", "qos")


def _resources(plan: Plan, stage: str) -> str:
    r = plan.resources[stage]
    parts = [f"{r.cpus} cpu", f"{r.gpus} gpu", f"{r.mem_gb:g} GiB", f"{r.time_min} min"]
    parts += [f"{key} {value}" for key, value in vars(r).items() if key in SLURM_PLACES and value]
    return ", ".join(parts)


def _step_listing(plan: Plan, layout: Layout, found: StepStates, cost: PlanCost | None) -> str:
    finished = _finished_configs(layout, set(found.damaged))
    priced = ["FLOPs", "GPU-h"] if cost is not None else []
    rows = []
    for step in plan.steps:
        coords = " ".join(f"{k}={v}" for k, v in step.coords.items() if k not in ("world", "model"))
        state = found.states[step.name]
        if state == "done":
            why = ""
        elif state == DAMAGED:
            why = found.damaged[step.name]
        else:
            why = why_new(step, finished.get(step.stage, []))
        row = [step.name, state, plan.cells[step.id], coords, why]
        if cost is not None:
            from scaler.cost_view import step_cells

            row += step_cells(cost, step)
        rows.append(row)
    return format_table(["step", "state", "cells", "coordinates", "why new", *priced], rows)


def _finished_configs(layout: Layout, damaged: set[str]) -> dict[str, list[dict[str, Any]]]:
    # A damaged folder's config.json may be what is missing: only whole folders are compared.
    configs: dict[str, list[dict[str, Any]]] = {}
    for step_dir in layout.finished_dirs():
        if step_dir.name not in damaged:
            configs.setdefault(step_dir.parent.name, []).append(read_json(step_dir / "config.json"))
    return configs


def why_new(step: Step, finished: list[dict[str, Any]]) -> str:
    """The fields in which `step` differs from the closest finished step of its stage."""
    if not finished:
        return "no finished step of this stage"
    mine = _flatten(output_fields(step.config))
    no_effect = fields_without_effect(type(step.config)) or frozenset()
    best: list[str] | None = None
    for record in finished:
        theirs = _flatten({k: v for k, v in record["config"].items() if k not in no_effect})
        differing = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
        if best is None or len(differing) < len(best):
            best = differing
    if not best:
        return "an input changed"
    shown = ", ".join(best[:4]) + (f" (+{len(best) - 4})" if len(best) > 4 else "")
    return f"differs in {shown}"


def _flatten(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict):
            flat |= _flatten(item, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = item
    return flat


STATUS_COLUMNS = ("done", DAMAGED, "running", "queued", "failed", "cancelled", TO_RUN)
SHOWN_FAILURES = 10


def _label(state: str) -> str:
    # `scaler status` is about jobs: a step to run is, there, one not submitted (yet).
    return "not submitted" if state == TO_RUN else state


def experiment_status(layout: Layout) -> str:
    """`scaler status`: per stage, how many steps are in each state; failures with log tails."""
    with collector_paused():  # a large plan's steps, states and records (scaler.bulk)
        return _experiment_status(layout)


def _experiment_status(layout: Layout) -> str:
    from scaler.cost_view import measured_lines

    plan, cost = _saved_plan_and_cost(layout)
    found = step_states(plan, layout)
    per_stage = Counter(plan.stages)
    # states are in plan order
    counts = Counter(zip(plan.stages, found.states.values(), strict=True))
    rows = [
        [stage, per_stage[stage], *(counts[stage, column] for column in STATUS_COLUMNS)]
        for stage in STAGES
        if stage in per_stage
    ]
    totals = Counter(found.states.values())
    lines = [
        f"{plan.experiment}: {len(plan.steps)} steps; "
        + ", ".join(f"{totals[c]} {_label(c)}" for c in STATUS_COLUMNS if totals[c]),
        "",
        format_table(["stage", "steps", *map(_label, STATUS_COLUMNS)], rows),
    ]
    lines += ["", *measured_lines(plan, cost, layout, found.states, found.wall_s)]
    if found.with_array:  # told apart from steps cancelled by a user or for their own input
        lines += ["", found.with_array.line("`scaler run` submits them again")]
    if found.damaged:
        lines += ["", *damaged_lines(found.damaged)]
    for failure in found.failures[:SHOWN_FAILURES]:
        tail = "\n".join("  | " + line for line in failure.tail.splitlines())
        lines += ["", f"FAILED {failure.step_name}", f"  log: {failure.log_path}", tail]
    if len(found.failures) > SHOWN_FAILURES:
        lines.append(f"... and {len(found.failures) - SHOWN_FAILURES} more failed steps")
    return "\n".join(lines)


WATCH_INTERVAL_S = 2.0
"""How often `scaler status --watch` reads the files again (and asks Slurm, when it has jobs)."""


def watch_status(
    layout: Layout,
    *,
    live: bool | None = None,
    interval_s: float = WATCH_INTERVAL_S,
    say: Callable[[str], None] = print,
) -> None:
    """`scaler status --watch`: the progress display (scaler.run.progress_view), read from the
    files, until nothing of the experiment runs or is queued; then the status as without it.
    Without a terminal (or with `live=False`), one line each time the counts change."""
    from scaler.run import progress_view

    plan = _saved_plan(layout)
    durations = progress_view.Durations()
    live = progress_view.on_terminal() if live is None else live
    view = progress_view.LiveView() if live else None
    last = ""
    with view or nullcontext():
        while True:
            board = progress_view.board_from_files(plan, layout, durations, _on_slurm(layout))
            if view is not None:
                view.show(board)
            else:
                line = f"{board.title}: {board.summary()}"
                if line != last:
                    eta = f"; {progress_view.eta_text(board)}" if board.active else ""
                    say(time.strftime("%H:%M:%S ") + line + eta)
                    last = line
            if not board.active:
                break
            time.sleep(interval_s)
    say(experiment_status(layout))


def _on_slurm(layout: Layout) -> set[str]:
    """The steps whose Slurm jobs are pending or running (one squeue), if any were submitted."""
    if not submitted_tasks(layout) or missing_commands():
        return set()
    from scaler.slurm.records import queued_steps

    return set(queued_steps(layout, Slurm(layout.slurm_logs)))


def _saved_plan_and_cost(layout: Layout) -> tuple[PlanView, StepCosts]:
    """The latest run's plan and its estimate: from its step index, else by expanding and
    pricing the saved spec (an experiment run before the index existed). The spec's models are
    imported only for the second."""
    from scaler.cost_view import StepCosts

    spec_json = read_json(layout.spec_file)
    index = read_index(layout, spec_json)
    if index is not None:
        return index, StepCosts(index.rates, index.costs)
    from scaler.cost_view import price
    from scaler.spec.schema import Spec

    spec = Spec.model_validate(spec_json)
    plan = _saved_plan(layout, spec)
    return plan, price(spec, plan)


def _saved_spec(layout: Layout) -> Spec:
    from scaler.spec.schema import Spec

    return Spec.model_validate(read_json(layout.spec_file))


def _saved_plan(layout: Layout, spec: Spec | None = None) -> Plan:
    from scaler.plan import expand

    return expand(spec or _saved_spec(layout))
