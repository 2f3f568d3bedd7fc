"""A scaling analysis as printable tables: what `scaler fit` shows.

Every figure passes through :mod:`analysis.format`, so it reads as it does in the report.
"""

from __future__ import annotations

import math

from analysis.format import estimate, number, percent, size
from analysis.result import FORM_FORMULAS, SHARED_REJECTION_LEVEL, SINGLE_POINT, ScalingAnalysis

# The terminal table every scaler command prints, so `scaler fit` reads like the others.
from scaler.text import format_table

METRIC_LABELS = {"accuracy": "accuracy", "pass_at_k": "pass@k", "maj_at_k": "maj@k"}


def render_text(result: ScalingAnalysis) -> str:
    settings = result.settings
    label = METRIC_LABELS.get(result.metric, result.metric)
    if result.resamples:
        uncertainty = (
            f"{settings.confidence:.0%} intervals from {result.resamples} bootstrap resamples "
            "(eval problems and seeds), each refitted"
        )
    else:
        uncertainty = "no intervals"
    lines = [
        f"{label} on {settings.eval_set} ({result.data}): {result.n_points} models, "
        f"{len(result.arms)} arms ({len(result.fitted_arms)} with a curve); {uncertainty}",
        "",
        f"mean {label} per size [interval]:",
        _means_table(result),
        "",
        "fits [interval] (quality: R^2 of the errors, RMS log residual, hold-out error of the "
        "largest size from a fit without it):",
        _fits_table(result),
    ]
    if result.shared:
        lines += [
            "",
            f"shared-exponent fits ({FORM_FORMULAS['shared']}; F test against separate power "
            f"curves, p < {SHARED_REJECTION_LEVEL:g} rejects the shared exponent):",
            _shared_table(result),
        ]
    if result.multipliers:
        lines += [
            "",
            f"effective data multiplier m(D) = f_base^-1(f_arm(D)) / D, form {settings.form} "
            f"({FORM_FORMULAS[settings.form]}); * needs a curve beyond its fitted sizes; "
            "(1) an arm at a single size, the baseline's curve inverted at its score:",
            _multipliers_table(result),
        ]
    lines += [f"warning: {w}" for w in result.warnings]
    return "\n".join(lines)


def _means_table(result: ScalingAnalysis) -> str:
    rows = []
    for arm in result.arms:
        for mean in arm.means:
            score = estimate(*result.score_of(mean))
            rows.append([arm.arm, size(mean.size), mean.seeds, score])
    label = METRIC_LABELS.get(result.metric, result.metric)
    return format_table(["arm", "size", "seeds", label], rows)


def _fits_table(result: ScalingAnalysis) -> str:
    rows = []
    for arm in result.arms:
        for form, fit in arm.fits.items():
            params = "  ".join(
                f"{name}={estimate(value, *fit.intervals.get(name, (math.nan, math.nan)))}"
                for name, value in fit.params.items()
            )
            quality = fit.quality
            rows.append(
                [
                    arm.arm,
                    form,
                    params,
                    number(quality["r_squared"]),
                    number(quality["rmse_log"]),
                    percent(quality["holdout_error"], signed=True),
                ]
            )
    return format_table(["arm", "form", "parameters", "R^2", "rms log", "hold-out"], rows)


def _multipliers_table(result: ScalingAnalysis) -> str:
    sizes = sorted({m.size for m in result.multipliers})
    by_arm: dict[tuple[str, str], dict[float, str]] = {}
    for m in result.multipliers:
        cell = estimate(m.value, m.low, m.high) + ("*" if m.extrapolated else "")
        cell += " (1)" if m.method == SINGLE_POINT else ""
        by_arm.setdefault((m.arm, m.baseline), {})[m.size] = cell
    rows = [
        [arm, baseline, *(cells.get(d, "") for d in sizes)]
        for (arm, baseline), cells in by_arm.items()
    ]
    return format_table(["arm", "baseline", *(f"D={size(d)}" for d in sizes)], rows)


def _shared_table(result: ScalingAnalysis) -> str:
    rows = []
    for fit in result.shared:
        params = "  ".join(
            f"{name}={estimate(value, *fit.intervals.get(name, (math.nan, math.nan)))}"
            for name, value in fit.params.items()
        )
        rows.append([fit.arm, fit.baseline, params, number(fit.f_statistic), number(fit.p_value)])
    return format_table(["arm", "baseline", "parameters", "F", "p"], rows)
