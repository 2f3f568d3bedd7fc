"""What `scaler plan` prints: the steps per stage, which are done, and the grid cells they serve.

For a step that would run, `--steps` also says why it is new: the config fields in which it
differs from the closest finished step of the same stage (or that no such step exists).
"""

from __future__ import annotations

from typing import Any

from scaler.fingerprint import fields_without_effect, output_fields
from scaler.layout import Layout
from scaler.plan import Plan, Step
from scaler.run.job import read_json
from scaler.text import format_table


def step_states(plan: Plan, layout: Layout) -> dict[str, str]:
    done, failed = layout.done_names(), layout.failed_names()
    return {
        step.name: "done" if step.name in done else "failed" if step.name in failed else "to run"
        for step in plan.steps
    }


def describe_plan(plan: Plan, layout: Layout, *, source: str, list_steps: bool = False) -> str:
    states = step_states(plan, layout)
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
