"""What the figures say, as text and colour: pure functions, testable without pixels.

:mod:`analysis.plot` draws; this module decides the words (axis labels, legend formulas, the
note on intervals), the colour of each arm and which facet gets panels. Numbers in labels are
:mod:`analysis.format`'s, in matplotlib's mathtext.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from analysis.fit import LogLinearFit
from analysis.format import math_number

if TYPE_CHECKING:
    from analysis.result import FormFit, ScalingAnalysis

PALETTE = (
    "tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple",
    "tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan",
)  # fmt: skip
SCORE_NAMES = {"accuracy": "accuracy", "pass_at_k": "pass@k", "maj_at_k": "maj@k"}
FORM_TEXTS = {
    "power": r"power law $E + A\,D^{-\alpha}$",
    "power_e0": r"power law $A\,D^{-\alpha}$",
    "log_linear": r"log-linear score $a + b\,\ln D$",
    "shared": r"power law $E + A\,D^{-\alpha}$ per arm; $m$ from a shared-exponent",
}
UNBOUNDED_LABEL = r"$m = \infty$, drawn at the top: the arm beats every baseline size"


def arm_colors(arms: Sequence[str]) -> dict[str, str]:
    """A colour per arm in the given order, so every figure of one analysis agrees."""
    return {arm: PALETTE[i % len(PALETTE)] for i, arm in enumerate(arms)}


def error_label(metric: str, eval_set: str, higher_is_better: bool) -> str:
    """The y axis: ``test error (1 - pass@k)`` for a score, the metric itself otherwise."""
    if not higher_is_better:
        return f"{eval_set} {metric}"
    return f"{eval_set} error (1 - {SCORE_NAMES.get(metric, metric)})"


def fit_label(arm: str, fit: FormFit, metric: str) -> str:
    """Legend text, e.g. ``sft: 0.12 + 3.4·D^-0.52`` rendered with mathtext; a log-linear fit
    is of the score, so it names the score."""
    curve = fit.fit
    if isinstance(curve, LogLinearFit):
        sign = "-" if curve.b < 0 else "+"
        line = rf"{math_number(curve.a)} {sign} {math_number(abs(curve.b))}\,\ln D"
        return f"{arm}: {SCORE_NAMES.get(metric, metric)} = ${line}$"
    power = rf"{math_number(curve.A)}\,D^{{-{math_number(curve.alpha)}}}"
    return f"{arm}: ${power if curve.E_fixed else rf'{math_number(curve.E)} + {power}'}$"


def facet_to_split(analysis: ScalingAnalysis, facet: str | None) -> str | None:
    """The facet that gets panels: the one asked for, or source by default; None when it would
    give a single panel."""
    name = facet or "source"
    values = {arm.facets.get(name) for arm in analysis.arms}
    return name if len(values) > 1 else None


def interval_note(analysis: ScalingAnalysis) -> str:
    """What the bars and bands are, for the subtitle."""
    if not analysis.resamples:
        return "no resamples, so no intervals"
    confidence = analysis.settings.confidence
    return f"{confidence:.0%} bootstrap intervals ({analysis.resamples} resamples)"


def error_axis(analysis: ScalingAnalysis) -> str:
    return error_label(analysis.metric, analysis.eval_set, analysis.higher_is_better)


def form_note(analysis: ScalingAnalysis) -> str:
    return f"{FORM_TEXTS[analysis.settings.form]} fit"
