"""Where an experiment's steps stand, as `scaler plan` and `scaler status` print it.

One `step_states` serves both. A step's folder says whether it is done or its last attempt
failed; for a step submitted to Slurm, its latest job says whether it is queued, running, or
ended without a result (failed, or cancelled), from one squeue and, for jobs that ended, one
sacct. `scaler plan` reads the folders only: it shows what a run would do, without asking the
cluster.

`scaler plan` prints the steps per stage, which are done, and the grid cells they serve; for a
step that would run, `--steps` also says why it is new: the config fields in which it differs
from the closest finished step of the same stage (or that no such step exists). `scaler status`
prints per stage how many steps are in each state, and the failures with their log tails.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from scaler.errors import StepFailed
from scaler.fingerprint import fields_without_effect, output_fields
from scaler.layout import Layout, read_json
from scaler.plan import Plan, Step
from scaler.slurm.cluster import JobState, Slurm, missing_commands
from scaler.slurm.records import active, ended_states, job_failure, submitted_tasks
from scaler.text import format_table

TO_RUN = "to run"


@dataclass(frozen=True)
class StepStates:
    states: dict[str, str]
    """Step name -> done, running, queued, failed, cancelled or to run."""
    failures: list[StepFailed]
    """The error of each failed step, in plan order."""


def step_states(plan: Plan, layout: Layout, *, ask_slurm: bool = True) -> StepStates:
    """Each step's state and the error of each failed one; see the module for how."""
    tasks = submitted_tasks(layout) if ask_slurm else {}
    slurm = Slurm(layout.slurm_logs) if tasks and not missing_commands() else None
    queue = slurm.queue() if slurm else {}
    done, failed_dirs = layout.done_names(), layout.failed_names()
    states: dict[str, str] = {}
    ended: list[Step] = []
    for step in plan.steps:
        task = tasks.get(step.name)
        if step.name in done:
            states[step.name] = "done"
        elif task and active(queue, task):
            states[step.name] = "running" if queue[task].state == "RUNNING" else "queued"
        elif task and slurm:
            ended.append(step)
        else:
            states[step.name] = "failed" if step.name in failed_dirs else TO_RUN
    how = ended_states(slurm, queue, [tasks[s.name] for s in ended]) if slurm and ended else {}
    ended_names = {step.name for step in ended}
    failures = []
    for step in plan.steps:
        task = tasks.get(step.name, "")
        state = how.get(task, JobState("UNKNOWN"))
        if step.name in ended_names:
            cancelled = state.state == "CANCELLED" and step.name not in failed_dirs
            states[step.name] = "cancelled" if cancelled else "failed"
        if states[step.name] == "failed":
            failures.append(job_failure(step, layout, slurm, task, state))
    return StepStates(states, failures)


def describe_plan(plan: Plan, layout: Layout, *, source: str, list_steps: bool = False) -> str:
    states = step_states(plan, layout, ask_slurm=False).states
    counts = {
        state: sum(1 for s in states.values() if s == state)
        for state in ("done", "to run", "failed")
    }
    n_cells = max(plan.cells.values(), default=0)
    lines = [
        f"experiment {plan.experiment} ({source}): {len(plan.steps)} steps for {n_cells} grid "
        f"cells; {counts['done']} done, {counts['to run']} to run, {counts['failed']} failed",
        f"results: {layout.root}",
        "",
    ]
    rows = []
    for stage, steps in plan.by_stage().items():
        stage_states = [states[s.name] for s in steps]
        served = sorted({plan.cells[s.id] for s in steps})
        rows.append(
            [
                stage,
                len(steps),
                stage_states.count("done"),
                stage_states.count("to run"),
                stage_states.count("failed"),
                ",".join(map(str, served)),
                _resources(plan, stage),
            ]
        )
    lines.append(
        format_table(
            ["stage", "steps", "done", "to run", "failed", "cells per step", "resources"], rows
        )
    )
    if list_steps:
        lines += ["", _step_listing(plan, layout, states)]
    return "\n".join(lines)


SLURM_PLACES = ("partition", "account", "qos")


def _resources(plan: Plan, stage: str) -> str:
    r = plan.resources[stage]
    parts = [f"{r.cpus} cpu", f"{r.gpus} gpu", f"{r.mem_gb:g} GiB", f"{r.time_min} min"]
    parts += [f"{key} {value}" for key, value in vars(r).items() if key in SLURM_PLACES and value]
    return ", ".join(parts)


def _step_listing(plan: Plan, layout: Layout, states: dict[str, str]) -> str:
    finished = _finished_configs(layout)
    rows = []
    for step in plan.steps:
        coords = " ".join(f"{k}={v}" for k, v in step.coords.items() if k not in ("world", "model"))
        why = "" if states[step.name] == "done" else why_new(step, finished.get(step.stage, []))
        rows.append([step.name, states[step.name], plan.cells[step.id], coords, why])
    return format_table(["step", "state", "cells", "coordinates", "why new"], rows)


def _finished_configs(layout: Layout) -> dict[str, list[dict[str, Any]]]:
    configs: dict[str, list[dict[str, Any]]] = {}
    for step_dir in layout.finished_dirs():
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


STATUS_COLUMNS = ("done", "running", "queued", "failed", "cancelled", TO_RUN)
SHOWN_FAILURES = 10


def _label(state: str) -> str:
    # `scaler status` is about jobs: a step to run is, there, one not submitted (yet).
    return "not submitted" if state == TO_RUN else state


def experiment_status(layout: Layout) -> str:
    """`scaler status`: per stage, how many steps are in each state; failures with log tails."""
    from scaler.plan import expand
    from scaler.spec.schema import Spec

    plan = expand(Spec.model_validate(read_json(layout.spec_file)))
    found = step_states(plan, layout)
    rows = []
    for stage, steps in plan.by_stage().items():
        counts = Counter(found.states[step.name] for step in steps)
        rows.append([stage, len(steps), *(counts[column] for column in STATUS_COLUMNS)])
    totals = Counter(found.states.values())
    lines = [
        f"{plan.experiment}: {len(plan.steps)} steps; "
        + ", ".join(f"{totals[c]} {_label(c)}" for c in STATUS_COLUMNS if totals[c]),
        "",
        format_table(["stage", "steps", *map(_label, STATUS_COLUMNS)], rows),
    ]
    for failure in found.failures[:SHOWN_FAILURES]:
        tail = "\n".join("  | " + line for line in failure.tail.splitlines())
        lines += ["", f"FAILED {failure.step_name}", f"  log: {failure.log_path}", tail]
    if len(found.failures) > SHOWN_FAILURES:
        lines.append(f"... and {len(found.failures) - SHOWN_FAILURES} more failed steps")
    return "\n".join(lines)
