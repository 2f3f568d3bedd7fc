"""Effective data multipliers: how many times more data the baseline needs to match an arm.

Design
------
``m(D) = f_base^-1(f_arm(D)) / D`` in the chosen form f, from three sources:

* *curves*: the arm's and the baseline's own fits (:func:`effective_multiplier`), each
  resample of the arm paired with the same resample of its baseline (the two were redrawn on
  the same problems and seeds), so the interval is the pair's;
* *shared*: the joint fit's m (:mod:`analysis.shared_fit`), one number at every size;
* *single point*: an arm measured at one size, the baseline's curve inverted at its score.

A multiplier is flagged as extrapolated where D is outside the arm's fitted sizes or the
matching baseline size is outside the baseline's: the number then rests on a curve beyond its
data.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from analysis.bootstrap import ArmResamples, interval
from analysis.curve_params import LogLinearParams, PowerLawParams
from analysis.fit import LogLinearFit, PowerLawFit
from analysis.points import Points
from analysis.power_law import unwrap
from analysis.result import SHARED, SINGLE_POINT, ArmAnalysis, Multiplier, SharedFit, curve_form
from analysis.settings import AnalysisSettings, baseline_of
from scaler.errors import SpecError


class MultiplierEstimate(NamedTuple):
    """Effective data multiplier m(D) and whether computing it left the fitted ranges."""

    multiplier: Any
    extrapolated: Any


def effective_multiplier(
    base: PowerLawFit | LogLinearFit, arm: PowerLawFit | LogLinearFit, D: ArrayLike
) -> MultiplierEstimate:
    """``m(D) = base.inverse(arm.predict(D)) / D``: how much more baseline data matches the arm.

    ``extrapolated`` is True where the answer leaves a fitted range: the baseline size that
    matches the arm lies outside ``base.size_range`` (or does not exist: the arm beats the
    baseline's floor E), or D itself lies outside ``arm.size_range``. Scalars in, scalars out.
    """
    sizes = np.asarray(D, dtype=float)
    matching_base_size = np.asarray(base.inverse(arm.predict(sizes)), dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        multiplier = matching_base_size / sizes
    base_low, base_high = base.size_range
    arm_low, arm_high = arm.size_range
    outside_base = ~((matching_base_size >= base_low) & (matching_base_size <= base_high))
    outside_arm = ~((sizes >= arm_low) & (sizes <= arm_high))
    return MultiplierEstimate(unwrap(multiplier), unwrap(outside_base | outside_arm))


def multipliers_of(
    points: Points,
    arms: dict[str, ArmAnalysis],
    refits: dict[str, dict[str, PowerLawParams | LogLinearParams]],
    shared: list[SharedFit],
    draws: dict[str, ArmResamples],
    settings: AnalysisSettings,
    warnings: list[str],
) -> list[Multiplier]:
    fitted = {name for name, arm in arms.items() if arm.fits}
    if settings.baseline is not None and settings.baseline not in fitted:
        why = "it has a single size" if settings.baseline in arms else "no arm has that name"
        raise SpecError(
            "analysis",
            "baseline",
            f"{settings.baseline!r} is not a fitted arm ({why}); fitted arms: "
            f"{', '.join(sorted(fitted)) or 'none'}",
        )
    shared_by_arm = {fit.arm: fit for fit in shared}
    out = []
    for name, arm in arms.items():
        base_name = baseline_of(name, settings)
        if base_name == name:
            continue
        if base_name not in fitted:
            why = "has a single size" if base_name in arms else "is not among the arms"
            warnings.append(
                f"{name}: no multiplier: its baseline {base_name} {why}; name another with "
                "--baseline (or analysis.baseline)"
            )
            continue
        base = arms[base_name]
        if not arm.fits:
            out.append(_single_point(points, arm, base, refits, draws, settings))
        elif settings.form == SHARED:
            out += _shared_multipliers(arm, base, shared_by_arm.get(name), settings)
        else:
            out += _curve_multipliers(arm, base, refits, settings)
    return out


def _curve_multipliers(
    arm: ArmAnalysis,
    base: ArmAnalysis,
    refits: dict[str, dict[str, PowerLawParams | LogLinearParams]],
    settings: AnalysisSettings,
) -> list[Multiplier]:
    """m(D) = f_base^-1(f_arm(D)) / D from the two arms' own fits, at the asked sizes."""
    form = settings.form
    sizes = np.asarray(settings.sizes or arm.sizes, dtype=float)
    estimate = effective_multiplier(base.fits[form].fit, arm.fits[form].fit, sizes)
    values = np.atleast_1d(estimate.multiplier)
    flags = np.atleast_1d(estimate.extrapolated)
    lows = highs = unbounded = [None] * sizes.size
    if refits.get(arm.arm) and refits.get(base.arm):
        arm_refit, base_refit = refits[arm.arm][form], refits[base.arm][form]
        resampled = base_refit.inverse(arm_refit.predict(sizes)) / sizes
        low_arr, high_arr = interval(resampled, settings.confidence)
        lows, highs = low_arr.tolist(), high_arr.tolist()
        unbounded = (~np.isfinite(resampled)).mean(axis=0).tolist()
    return [
        Multiplier(
            arm=arm.arm,
            baseline=base.arm,
            size=float(size),
            value=float(values[i]),
            low=lows[i],
            high=highs[i],
            extrapolated=bool(flags[i]),
            unbounded_share=unbounded[i],
        )
        for i, size in enumerate(sizes)
    ]


def _single_point(
    points: Points,
    arm: ArmAnalysis,
    base: ArmAnalysis,
    refits: dict[str, dict[str, PowerLawParams | LogLinearParams]],
    draws: dict[str, ArmResamples],
    settings: AnalysisSettings,
) -> Multiplier:
    """m = f_base^-1(score) / D for an arm measured at one size D: the baseline data that
    reach the arm's mean score, per unit of the arm's data.

    Resample r inverts the baseline's refit r at the arm's resample r (the same problem draw),
    so the interval carries both the baseline curve's uncertainty and the point's own noise.
    The shared form has no curve of its own here: the baseline's power fit is inverted.
    """
    form = curve_form(settings.form)
    size = arm.sizes[0]
    error = float(np.mean([m.error for m in arm.means]))
    fit = base.fits[form].fit
    target = points.to_value(error) if form == "log_linear" else error
    matching = float(fit.inverse(target))
    low_size, high_size = fit.size_range
    low = high = unbounded = None
    if refits.get(base.arm) and arm.arm in draws:
        arm_errors = draws[arm.arm].errors.mean(axis=1)
        targets = points.to_value(arm_errors) if form == "log_linear" else arm_errors
        resampled = refits[base.arm][form].inverse(targets) / size
        low_value, high_value = interval(resampled, settings.confidence)
        low, high = float(low_value), float(high_value)
        unbounded = float((~np.isfinite(resampled)).mean())
    return Multiplier(
        arm=arm.arm,
        baseline=base.arm,
        size=float(size),
        value=matching / size,
        low=low,
        high=high,
        extrapolated=not (low_size <= matching <= high_size),
        unbounded_share=unbounded,
        method=SINGLE_POINT,
    )


def _shared_multipliers(
    arm: ArmAnalysis, base: ArmAnalysis, fit: SharedFit | None, settings: AnalysisSettings
) -> list[Multiplier]:
    """The shared fit's m at every asked size: one number, flagged where D or m*D leaves the
    sizes the arm or the baseline were measured at."""
    if fit is None:
        return []
    sizes = np.asarray(settings.sizes or arm.sizes, dtype=float)
    m = fit.params["m"]
    low, high = fit.intervals.get("m", (None, None))
    return [
        Multiplier(
            arm=arm.arm,
            baseline=base.arm,
            size=float(size),
            value=m,
            low=low,
            high=high,
            extrapolated=not (
                min(arm.sizes) <= size <= max(arm.sizes)
                and min(base.sizes) <= m * size <= max(base.sizes)
            ),
            unbounded_share=0.0 if low is not None else None,
        )
        for size in sizes
    ]
