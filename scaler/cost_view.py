"""The estimate as people read it: `scaler plan`'s cost of the steps to run, and `scaler status`
(and the report) setting the estimate of finished steps beside their measured wall time.

`price` is the one call that gathers the figures (scaler.cost_figures: it reads the head of a
real world's training file) and prices every step (scaler.cost). The rest formats. Done steps
are cost spent, not cost to come: the plan's table prices what is left, and the measured table
is of what is done. Every figure passes through analysis.format.number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from analysis.format import number
from scaler.finished_memo import wall_seconds
from scaler.layout import Layout
from scaler.stages import grouped_by_stage
from scaler.step_cost import MODEL_STAGES, Rates, StepCost
from scaler.step_index import PlanView, StepRef
from scaler.text import format_table

if TYPE_CHECKING:  # `scaler status` imports this module: estimating is imported when asked
    from scaler.cost_figures import Figures
    from scaler.plan import Plan, Step
    from scaler.spec.schema import Spec

DONE = "done"
NONE = "–"


@dataclass(frozen=True)
class StepCosts:
    """Each step's estimated cost and the rates that turn it into hours: what `scaler status`
    reads from a step index (scaler.step_index), without the figures it was priced from."""

    figures: Rates
    steps: Mapping[str, StepCost]
    """Step id -> its estimated cost."""

    def of(self, steps: Iterable[StepRef]) -> StageCost:
        return StageCost([self.steps[step.id] for step in steps], self.figures)


@dataclass(frozen=True)
class PlanCost(StepCosts):
    """The estimate of a plan with the figures it was priced from (for `scaler plan`'s notes)."""

    figures: Figures


def price(spec: Spec, plan: Plan) -> PlanCost:
    """The estimated cost of every step of `plan` (its spec's figures)."""
    from scaler.cost import estimate
    from scaler.cost_figures import figures_of

    figures = figures_of(spec)
    return PlanCost(figures, estimate(plan, figures))


@dataclass(frozen=True)
class StageCost:
    """The sum of some steps' costs; FLOPs and GPU-hours None where no step has them."""

    costs: list[StepCost]
    figures: Rates

    @property
    def flops(self) -> float | None:
        known = [cost.flops for cost in self.costs if cost.flops is not None]
        return sum(known) if known else None

    @property
    def gpu_hours(self) -> float | None:
        hours = [h for cost in self.costs if (h := cost.gpu_hours(self.figures)) is not None]
        return sum(hours) if hours else None

    @property
    def longest_hours(self) -> float | None:
        hours = [h for cost in self.costs if (h := cost.wall_hours(self.figures)) is not None]
        return max(hours) if hours else None

    @property
    def missing(self) -> set[str]:
        return {cost.missing for cost in self.costs if cost.missing}


def plan_lines(plan: Plan, cost: PlanCost, states: dict[str, str]) -> list[str]:
    """`scaler plan`'s cost section: per stage and in all, what the steps to run cost."""
    rows, left, unpriced = [], [], []
    limits = []
    for stage, steps in plan.by_stage().items():
        to_run = [step for step in steps if states[step.name] != DONE]
        stage_cost = cost.of(to_run)
        left += to_run
        if stage_cost.missing:
            unpriced.append(stage)
        resources = plan.resources[stage]
        longest = stage_cost.longest_hours
        if longest is not None and longest * 60 > resources.time_min:
            limits.append(
                f"{stage}: its longest step needs about {hours(longest)} on its GPUs, more "
                f"than resources.{stage}.time_min ({resources.time_min} min)"
            )
        rows.append(
            [
                stage,
                len(to_run),
                len(steps) - len(to_run),
                _flops_cell(stage, stage_cost),
                _device(plan, stage),
                _cell(stage_cost.gpu_hours),
                hours(longest) if longest is not None else NONE,
            ]
        )
    total = cost.of(left)
    rows.append(["total", len(left), len(plan.steps) - len(left), _flops_cell("", total), "",
                 _cell(total.gpu_hours), ""])  # fmt: skip
    table = format_table(
        ["stage", "to run", DONE, "FLOPs to run", "on", "GPU-h to run", "longest step"], rows
    )
    lines = ["cost of the steps to run (estimated; done steps are not counted):", table]
    lines += _footnotes(cost.figures)
    if unpriced:
        fields = ", ".join(_missing_fields(cost))
        lines.append(f"not priced: {', '.join(unpriced)}: give {fields} (docs/specs.md, `cost`)")
    lines += [f"time limit: {line}" for line in limits]
    return lines


def step_cells(cost: PlanCost, step: Step) -> list[str]:
    """`scaler plan --steps`: a step's FLOPs and GPU-hours."""
    one = cost.of([step])
    return [_flops_cell(step.stage, one), _cell(one.gpu_hours)]


def measured_lines(
    plan: PlanView,
    cost: StepCosts,
    layout: Layout,
    states: dict[str, str],
    wall_s: Mapping[str, float | None] | None = None,
) -> list[str]:
    """`scaler status`'s view of finished steps: per stage, the estimate beside what they took
    (provenance.json's wall_s, times the GPUs they held). `wall_s`: step name -> its wall time,
    where known already (scaler.finished_memo); else each finished folder's is read. `states`:
    every step's, in plan order (step_states)."""
    rows = []
    # The finished steps only are made (a step index makes each when asked).
    done_at = (at for at, state in enumerate(states.values()) if state == DONE)
    finished = grouped_by_stage(plan.steps[at] for at in done_at)  # states are in plan order
    for stage, done in finished.items():
        walls = [
            wall_s.get(step.name) if wall_s is not None
            else wall_seconds(layout.step_dir(step.stage, step.name))
            for step in done
        ]  # fmt: skip
        timed = [(step, wall) for step, wall in zip(done, walls, strict=True) if wall is not None]
        if not timed:
            continue
        stage_cost = cost.of(step for step, _ in timed)
        wall = sum(seconds for _, seconds in timed)
        devices = sum(seconds * max(cost.steps[step.id].gpus, 1) for step, seconds in timed)
        gpus = plan.resources[stage].gpus * plan.resources[stage].nodes
        measured_gpu_hours = devices / 3600 if gpus else None
        estimated = stage_cost.gpu_hours
        ratio = measured_gpu_hours / estimated if measured_gpu_hours and estimated else None
        flops = stage_cost.flops if stage in MODEL_STAGES else None
        rows.append(
            [
                stage,
                len(timed),
                _flops_cell(stage, stage_cost),
                _cell(estimated),
                duration(wall),
                _cell(measured_gpu_hours),
                _cell(ratio),
                _cell(flops / devices if flops and devices else None),
            ]
        )
    title = "estimate against measured, finished steps:"
    if not rows:
        return [title, "no finished step with a measured wall time yet"]
    columns = ["stage", DONE, "FLOPs", "GPU-h est.", "wall", "GPU-h measured", "measured/est.",
               "FLOP/s achieved"]  # fmt: skip
    return [
        title,
        format_table(columns, rows),
        "wall: the steps' wall times added up (provenance.json wall_s); GPU-h measured: wall x "
        "GPUs held; FLOP/s achieved: estimated FLOPs over measured device time (a GPU, or a "
        f"CPU step); against a peak of {number(cost.figures.gpu_flops)} per GPU",
    ]


def _footnotes(figures: Figures) -> list[str]:
    lines = [
        "FLOPs: 6·P·tokens to train, 2·P·tokens to sample, roll out and evaluate (scaler/cost.py)",
        f"GPU-hours: at {number(figures.gpu_flops)} FLOP/s per GPU x {number(figures.utilisation)}"
        " utilisation (cost.gpu_flops, cost.utilisation); a stage without GPUs in FLOPs only",
    ]
    params = [
        f"{number(count)} ({figures.params_field[model]})"
        for model, count in figures.params.items()
        if count is not None
    ]
    tokens = [
        f"{name} {number(value)}"
        for name, value in (
            ("prompt", figures.prompt_tokens),
            ("solution", figures.solution_tokens),
        )
        if value is not None
    ]
    figures_line = ", ".join(params) and f"P: {', '.join(params)}"
    if tokens:
        figures_line += ("; " if figures_line else "") + f"tokens: {', '.join(tokens)}"
    if figures_line:
        lines.append(figures_line)
    if figures.counted:
        lines.append(f"counted: {figures.counted}")
    return lines


def _missing_fields(cost: PlanCost) -> list[str]:
    """Every figure the spec leaves out, not only the first each step stopped at: the token
    lengths and parameter counts every model stage needs."""
    figures = cost.figures
    fields = [
        field for model, field in figures.params_field.items() if figures.params[model] is None
    ]
    for field, value in (
        ("cost.prompt_tokens", figures.prompt_tokens),
        ("cost.solution_tokens", figures.solution_tokens),
    ):
        if value is None:
            fields.append(field)
    found = {step.missing for step in cost.steps.values() if step.missing}
    return fields + sorted(found - set(fields))


def _device(plan: PlanView, stage: str) -> str:
    resources = plan.resources[stage]
    if not resources.gpus:
        return "cpu"
    nodes = f" x {resources.nodes} nodes" if resources.nodes > 1 else ""
    return f"{resources.gpus} gpu{'s' if resources.gpus > 1 else ''}{nodes}"


def _flops_cell(stage: str, stage_cost: StageCost) -> str:
    if stage and stage not in MODEL_STAGES:
        return NONE  # no model runs: CPU work the estimate does not price
    flops = stage_cost.flops
    if stage_cost.missing:
        return "?" if flops is None else f"{number(flops)} + ?"
    return NONE if flops is None else number(flops)


def _cell(value: float | None) -> str:
    return NONE if value is None else number(value)


def hours(value: float) -> str:
    return duration(value * 3600)


def duration(seconds: float) -> str:
    """Seconds, minutes or hours, whichever reads best."""
    if seconds < 90:
        return f"{number(seconds, 2)} s"
    if seconds < 90 * 60:
        return f"{number(seconds / 60, 2)} min"
    return f"{number(seconds / 3600)} h"
