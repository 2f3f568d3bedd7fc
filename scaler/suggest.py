"""`scaler suggest`: the additions to an experiment's grid that narrow a target's interval most
per hour of compute, each with its cost and the spec overrides that run it.

    scaler suggest demo --target multiplier:rft@400 -n 5
    scaler run specs/demo.yaml --suggested          # runs the first suggestion
    scaler suggest demo --target exponent:sft --until 0.1 --budget 2

The candidates are what a spec can say: a new size (geometric steps below, between and above
the grid's sizes; every arm of the grid gets it, with the grid's seeds), one or two more seeds
at every size, a seed more at one size (`extra_seeds`), and more eval problems where the fitted
eval set has more than `stages.evaluate.problems` takes (twice and four times as many, as far as
it has: every model is evaluated again on the first that many, or with
`stages.evaluate.shard_size` only on the new shards; analysis keeps one evaluation per model,
the one on the most problems). A larger sample k is not offered: what more samples do to an RFT
arm's curve is not something its fit predicts.

Each is priced from what is known: the steps it adds (the saved spec with the overrides,
expanded, less the steps already finished), each step's wall time from the finished steps of
its stage (their FLOPs per second where the stage's steps are priced in FLOPs, else their mean
wall time), else the FLOPs estimate at the spec's GPU rate; times the GPUs it holds, or its
CPUs for a CPU step. Each is forecast by analysis.forecast (simulation from the current fit's
bootstrap), and ranked by the width it removes per hour. The ranking is saved beside the
results (`suggested.json`): `scaler run SPEC --suggested [K]` runs suggestion K (1: the first),
and the next `suggest` sets the width it predicted beside the width measured since.

`--until WIDTH` loops: suggest, run the first suggestion within what is left of `--budget`,
collect, and again, until the target's interval is narrower than WIDTH (a multiplier's as the
ratio high/low, an exponent's as high - low), the budget is spent, or no candidate narrows it;
it says which.
"""

from __future__ import annotations

import math
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scaler.errors import SpecError
from scaler.layout import Layout, read_json, write_json

if TYPE_CHECKING:
    from analysis.forecast import Addition, Target
    from analysis.points import Points
    from scaler.spec.schema import Spec

SUGGESTED = "suggested.json"
SOURCE = "command line"


@dataclass(frozen=True)
class Suggestion:
    addition: Addition
    overrides: list[str]
    hours: float
    predicted: float
    """Forecast width, in the forecast's units (log for a multiplier)."""
    error: float
    """The forecast's standard error over its simulations."""


@dataclass(frozen=True)
class Suggestions:
    target: Target
    width: float
    """Today's width, as the forecasts measure it."""
    value: tuple[float, ...]
    """The target now and its 90% interval (analysis.forecast.estimate)."""
    unit: str
    ranked: list[Suggestion]
    skipped: list[str]
    """Candidates not offered, with why (a size the world cannot give, over the budget)."""
    warnings: list[str]
    points: int
    """Models the forecasts were made from."""
    evaluations: int
    """Their outcomes: models x eval problems (what grows with more of either)."""


def parse_target(text: str | None, points: Points, settings: Any, sizes: list[int]) -> Target:
    """`multiplier:ARM@SIZE`, `multiplier:ARM` (at the grid's largest size) or `exponent:ARM`;
    without one, the multiplier of the first arm that has a baseline, at the largest size."""
    from analysis.forecast import Target
    from analysis.settings import baseline_of

    arms = points.arms
    if text is None:
        with_base = [arm for arm in arms if baseline_of(arm, settings) != arm]
        if not with_base:
            raise SpecError(SOURCE, "--target", "no arm has a baseline: give exponent:ARM")
        return Target(with_base[0], baseline_of(with_base[0], settings), float(max(sizes)))
    kind, _, rest = text.partition(":")
    arm, _, at = rest.partition("@")
    if arm not in arms:
        raise SpecError(SOURCE, "--target", f"no arm {arm!r}; the arms are {', '.join(arms)}")
    if kind == "exponent" and not at:
        return Target(arm)
    if kind == "multiplier":
        baseline = baseline_of(arm, settings)
        if baseline == arm or baseline not in arms:
            raise SpecError(SOURCE, "--target", f"{arm} has no baseline among the arms")
        try:
            size = float(at) if at else float(max(sizes))
        except ValueError:
            size = -1.0
        if not size > 0:
            raise SpecError(SOURCE, "--target", f"expected a size > 0 after @, got {at!r}")
        return Target(arm, baseline, size)
    raise SpecError(
        SOURCE, "--target", f"expected multiplier:ARM@SIZE or exponent:ARM, got {text!r}"
    )


def candidates(spec: Spec) -> list[tuple[Addition, list[str]]]:
    """What a next run could add, each with the spec overrides that add it."""
    from analysis.forecast import Addition

    sizes = sorted(spec.sizes)
    new_sizes = {sizes[0] // 2} | {2 * sizes[-1], 4 * sizes[-1]}
    new_sizes |= {round(math.sqrt(a * b)) for a, b in zip(sizes, sizes[1:], strict=False)}
    out = []
    for size in sorted(s for s in new_sizes if s >= 1 and s not in sizes):
        out.append((Addition(sizes=(float(size),)), [_list("sizes", sorted([*sizes, size]))]))
    for more in (1, 2):
        seeds = [*spec.seeds, *_new_seeds(spec, more)]
        out.append((Addition(more_seeds=more), [_list("seeds", seeds)]))
    for size in sizes:
        out.append((Addition(seeds_at=(float(size),)), [_seed_more_at(spec, size)]))
    for problems in _more_eval_problems(spec):
        override = f"stages.evaluate.problems={problems}"
        out.append((Addition(eval_problems=problems), [override]))
    return out


def _more_eval_problems(spec: Spec) -> list[int]:
    """Twice and four times the fitted eval set's problems evaluated now, as far as it has."""
    eval_set = spec.analysis.eval_set or spec.eval_sets[0]
    size = spec.eval_set_size(eval_set)
    if size is None:  # a real world's file, not counted without stages.evaluate.problems
        return []
    now = min(spec.stages.evaluate.problems or size, size)
    return sorted({min(factor * now, size) for factor in (2, 4)} - {now})


def _warnings(points: Points, target: Target) -> list[str]:
    """What makes these forecasts weak, said before them."""
    import numpy as np

    own = points.select(np.isin(points.arm, target.arms))
    sizes = list(zip(own.arm.tolist(), own.size.tolist(), strict=True))
    if all(sizes.count(cell) < 2 for cell in sizes):
        return [
            "no size has two seeds: the seed-to-seed spread is taken from the fit's residuals "
            "(nothing, with three sizes or fewer), so forecasts of more seeds count the eval "
            "problems' noise alone; a second seed first measures it"
        ]
    return []


def _new_seeds(spec: Spec, count: int) -> list[int]:
    """`count` seeds that no cell of the grid has yet."""
    used = max([*spec.seeds, *(seed for more in spec.extra_seeds for seed in more.seeds)])
    return list(range(used + 1, used + 1 + count))


def _seed_more_at(spec: Spec, size: int) -> str:
    """The `extra_seeds` override that adds a new seed at `size`, keeping the others."""
    extra = {more.size: list(more.seeds) for more in spec.extra_seeds}
    extra[size] = [*extra.get(size, []), *_new_seeds(spec, 1)]
    items = ", ".join(f"{{size: {at}, seeds: [{', '.join(map(str, seeds))}]}}"
                      for at, seeds in sorted(extra.items()))  # fmt: skip
    return f"extra_seeds=[{items}]"


def shown_overrides(overrides: list[str]) -> str:
    """Overrides as a shell takes them: one with a space in it quoted."""
    return " ".join(shlex.quote(item) if " " in item else item for item in overrides)


def _list(key: str, values: list[int]) -> str:
    return f"{key}=[{','.join(map(str, values))}]"


def suggest(
    layout: Layout, target_text: str | None, *, budget_hours: float | None, n: int
) -> Suggestions:
    """Rank the candidates for the experiment at `layout` (see the module)."""
    from analysis.experiment import Experiment
    from analysis.forecast import Forecaster, estimate

    spec = saved_spec(layout)
    with Experiment(layout) as experiment:
        settings = experiment.settings()
        points = experiment.points()
    target = parse_target(target_text, points, settings, spec.sizes)
    forecaster = Forecaster(points, target)  # today's width and simulations, made once
    width = forecaster.width
    value = estimate(points, target)
    prices = _Prices(spec, layout)
    ranked, skipped = [], []
    for addition, overrides in candidates(spec):
        hours = prices.of(overrides)
        if isinstance(hours, str):
            skipped.append(f"{addition}: {hours}")
            continue
        if budget_hours is not None and hours > budget_hours:
            skipped.append(f"{addition}: {hours:.3g} h, over the budget of {budget_hours:g} h")
            continue
        predicted, error = forecaster.expected(addition)
        ranked.append(Suggestion(addition, overrides, hours, predicted, error))
    ranked.sort(key=lambda s: -(width - s.predicted) / max(s.hours, 1e-9))
    unit = "GPU-h" if prices.on_gpus else "CPU-h"
    found = Suggestions(
        target,
        width,
        value,
        unit,
        ranked[:n],
        skipped,
        _warnings(points, target),
        len(points),
        len(points) * (points.eval_size or 1),
    )
    _save(layout, found)
    return found


def saved_spec(layout: Layout, overrides: list[str] | None = None) -> Spec:
    """The experiment's saved spec (spec.json is YAML too), with `overrides`, loaded and checked
    as `scaler run` loads a spec file."""
    from scaler.spec.load import load_spec

    return load_spec(layout.spec_file, overrides or [])


class _Prices:
    """Hours of the steps an override set adds, from the finished steps (see the module)."""

    def __init__(self, spec: Spec, layout: Layout) -> None:
        from scaler.cost_view import price
        from scaler.finished_memo import wall_seconds
        from scaler.plan import expand

        self.spec, self.layout = spec, layout
        self.done = layout.done_names()
        plan = expand(spec)
        cost = price(spec, plan)
        self.on_gpus = any(r.gpus for r in plan.resources.values())
        walls: dict[str, list[tuple[float | None, float]]] = {}
        for step in plan.steps:
            if step.name in self.done:
                wall = wall_seconds(layout.step_dir(step.stage, step.name))
                if wall is not None:
                    walls.setdefault(step.stage, []).append((cost.steps[step.id].flops, wall))
        self.walls = walls

    def of(self, overrides: list[str]) -> float | str:
        """The candidate's hours, or why it cannot run (the spec refuses the overrides)."""
        from scaler.cost_view import price
        from scaler.plan import expand

        try:
            spec = saved_spec(self.layout, overrides)
        except SpecError as error:
            return str(error).splitlines()[0]
        plan = expand(spec)
        cost = price(spec, plan)
        hours = 0.0
        for step in plan.steps:
            if step.name in self.done:
                continue
            seconds = self._seconds(step.stage, cost.steps[step.id].flops, cost.figures)
            resources = plan.resources[step.stage]
            devices = resources.gpus * resources.nodes or resources.cpus
            hours += seconds * devices / 3600
        return hours

    def _seconds(self, stage: str, flops: float | None, figures: Any) -> float:
        measured = self.walls.get(stage, [])
        priced = [(f, w) for f, w in measured if f]
        if flops and priced:
            return flops * sum(w for _, w in priced) / sum(f for f, _ in priced)
        if measured:
            return sum(w for _, w in measured) / len(measured)
        if flops:
            return flops / (figures.gpu_flops * figures.utilisation)
        return 0.0


def _save(layout: Layout, found: Suggestions) -> None:
    write_json(
        layout.root / SUGGESTED,
        {
            "target": str(found.target),
            "width": found.width,
            "points": found.points,
            "evaluations": found.evaluations,
            "made": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "suggestions": [
                {
                    "addition": str(s.addition),
                    "overrides": s.overrides,
                    "hours": s.hours,
                    "predicted": s.predicted,
                }  # fmt: skip
                for s in found.ranked
            ],
        },
    )


def suggested_overrides(layout: Layout, rank: int) -> list[str]:
    """The overrides of suggestion `rank` (1: the first) that `suggest` saved last."""
    try:
        saved = read_json(layout.root / SUGGESTED)
    except (OSError, ValueError):
        raise SpecError(
            SOURCE,
            "--suggested",
            f"no suggestions saved for {layout.root.name}; run "
            f"`scaler suggest {layout.root.name}` first",  # fmt: skip
        ) from None
    listed = saved.get("suggestions", [])
    if not 1 <= rank <= len(listed):
        raise SpecError(SOURCE, "--suggested", f"expected 1 to {len(listed)}, got {rank}")
    return list(listed[rank - 1]["overrides"])


def _suggestion_run(suggestions: list[dict[str, Any]], spec: dict[str, Any]) -> dict | None:
    """The saved suggestion whose overrides the saved spec now has (the one `run --suggested K`
    ran, or a person by hand); None if none is."""
    from omegaconf import OmegaConf

    saved = OmegaConf.create(spec)
    for suggestion in suggestions:
        overrides = OmegaConf.from_dotlist(suggestion["overrides"])
        if OmegaConf.merge(saved, overrides) == saved:
            return suggestion
    return None


def shown_width(target: Target, width: float) -> str:
    """A width as people read it: a multiplier's as the ratio high/low, an exponent's as is."""
    from analysis.forecast import MULTIPLIER

    if target.kind == MULTIPLIER:
        return f"x{math.exp(width):.3g}"
    return f"{width:.3g}"


def narrower_than(target: Target, width: float, limit: float) -> bool:
    from analysis.forecast import MULTIPLIER

    shown = math.exp(width) if target.kind == MULTIPLIER else width
    return shown < limit


def describe(found: Suggestions, layout: Layout, previous: dict[str, Any] | None) -> str:
    from scaler.text import format_table

    target = found.target
    value, low, high = found.value
    lines = [
        f"target: {target}: {value:.3g} [{low:.3g}, {high:.3g}] now; the width of its interval: "
        f"{shown_width(target, found.width)} "
        + ("(high/low)" if target.baseline else "(high - low)")
    ]
    grew = previous is not None and previous.get("evaluations", 0) < found.evaluations
    if previous and grew and previous.get("target") == str(target):
        ran = _suggestion_run(previous.get("suggestions", []), read_json(layout.spec_file))
        if ran is not None:
            lines.append(
                f"last suggestion run ({ran['addition']}) predicted "
                f"{shown_width(target, ran['predicted'])}; measured since: "
                f"{shown_width(target, found.width)}"
            )
    rows = [
        [i, str(s.addition), f"{s.hours:.3g}", shown_width(target, s.predicted),
         f"{(found.width - s.predicted) / max(s.hours, 1e-9):.3g}", shown_overrides(s.overrides)]
        for i, s in enumerate(found.ranked, 1)
    ]  # fmt: skip
    lines += ["", format_table(
        ["#", "addition", found.unit, "width after", "narrowing per hour", "overrides"], rows
    )]  # fmt: skip
    if found.skipped:
        lines += ["", "not offered:", *(f"  {why}" for why in found.skipped)]
    lines += [f"warning: {warning}" for warning in found.warnings]
    lines += ["", f"run one: scaler run SPEC --suggested [#] (saved in {layout.root / SUGGESTED})"]
    return "\n".join(lines)


def until(
    layout: Layout,
    target_text: str | None,
    limit: float,
    *,
    budget_hours: float | None,
    run: Callable[[list[str]], None],
    say: Callable[[str], None] = print,
) -> str:
    """The `--until` loop (see the module); `run` runs the saved spec with some overrides.
    Returns what ended it."""
    spent = 0.0
    while True:
        left = None if budget_hours is None else budget_hours - spent
        found = suggest(layout, target_text, budget_hours=left, n=1)
        target = found.target
        say(f"{target}: width {shown_width(target, found.width)} after {spent:.3g} h")
        if narrower_than(target, found.width, limit):
            return f"reached: the width is {shown_width(target, found.width)}, under {limit:g}"
        best = found.ranked[0] if found.ranked else None
        if best is None or best.predicted >= found.width:
            why = "the budget is spent" if found.skipped and left is not None else "none narrows"
            return f"stopped: {why}; width {shown_width(target, found.width)} after {spent:.3g} h"
        say(f"running {best.addition} ({best.hours:.3g} h): {shown_overrides(best.overrides)}")
        run(best.overrides)
        spent += best.hours
        target_text = target.spelled


def previous_suggestions(layout: Layout) -> dict[str, Any] | None:
    try:
        return read_json(layout.root / SUGGESTED)
    except (OSError, ValueError):
        return None
