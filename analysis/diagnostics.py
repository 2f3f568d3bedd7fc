"""Plain-language reasons to distrust a fit, and the thresholds behind them.

Every warning says what is wrong and what to read instead (docs/analysis.md lists them). They
are computed from a finished fit and its points only, so the single fits, the analysis and the
tests share one wording.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from analysis.curve_params import LogLinearParams, PowerLawParams
from analysis.fit import LogLinearFit, PowerLawFit
from analysis.points import Points
from analysis.power_law import ALPHA_BOUNDS, FloatArray, smallest_mean_error

# fit_warnings calls E "at its bound" when it is below this share of the smallest observed error:
# the floor then changes no prediction in the data range and is not identified.
E_NEGLIGIBLE_SHARE = 0.01
# Share of resample fits that may stop unconverged before the analysis says so.
UNCONVERGED_SHARE = 0.01
# A form "does not describe the points" when it explains less than half of their variance, or
# when a fit without the largest size misses that size's mean by more than half. With seeds of
# ordinary spread on a curve that moves with D, a right form stays well inside both.
MIN_R_SQUARED = 0.5
MAX_HOLDOUT_ERROR = 0.5


def fit_warnings(fit: PowerLawFit, sizes: ArrayLike, errors: ArrayLike) -> list[str]:
    """Plain-language reasons to distrust ``fit``; an empty list when none apply."""
    size_arr = np.asarray(sizes, dtype=float).ravel()
    err_arr = np.asarray(errors, dtype=float).ravel()
    warnings = []
    warnings += identifiability_warnings(fit.n_params, size_arr)
    warnings += floor_warnings(fit, size_arr, err_arr) + exponent_warnings(fit)
    warnings += monotonicity_warnings(size_arr, err_arr)
    if not fit.converged:
        warnings.append("the optimiser stopped before converging")
    return warnings


def identifiability_warnings(n_params: int, sizes: FloatArray) -> list[str]:
    """Too few distinct sizes for a form with ``n_params`` parameters."""
    n_sizes = int(np.unique(sizes).size)
    if n_sizes < n_params:
        return [
            f"only {n_sizes} distinct sizes for {n_params} parameters: the fit is under-determined"
        ]
    if n_sizes == n_params:
        return [
            f"{n_sizes} distinct sizes for {n_params} parameters: the curve passes through "
            "the data and nothing checks its form"
        ]
    return []


def floor_warnings(fit: PowerLawFit, sizes: FloatArray, errors: FloatArray) -> list[str]:
    """E at either end of its range: ~0 (no floor in the data) or at the lowest mean error."""
    if fit.E_fixed or errors.size == 0:
        return []
    smallest = float(errors.min())
    if fit.E < E_NEGLIGIBLE_SHARE * smallest:
        return [
            f"E is at its bound (~0: {fit.E:.2g} against a smallest error of {smallest:.2g}): "
            "the data show no floor, so E is not identified; prefer the E = 0 fit"
        ]
    ceiling = float(smallest_mean_error(sizes, errors))
    if fit.E >= ceiling * (1 - 1e-6):
        return [
            f"E is at its upper bound, the lowest mean error observed ({ceiling:.3g}): the "
            "curve levels off at the data's best point, so the floor and every multiplier "
            "near it are guesses"
        ]
    return []


def exponent_warnings(fit: PowerLawFit) -> list[str]:
    """alpha pressed against either end of its range: the optimum lies outside it."""
    low, high = ALPHA_BOUNDS
    if fit.alpha <= low * (1 + 1e-6):
        return [f"alpha is at its lower bound ({low:g}): the error barely falls with D"]
    if fit.alpha >= high * (1 - 1e-6):
        return [
            f"alpha is at its upper bound ({high:g}): the error falls faster than any power "
            "law allowed here (a jump between sizes, not a scaling law)"
        ]
    return []


def monotonicity_warnings(sizes: FloatArray, errors: FloatArray) -> list[str]:
    """Flag the seed mean rising with D by more than the seeds' standard error allows.

    The tolerance keeps ordinary seed noise on a flat tail from raising alarms; with one seed
    per size any rise counts.
    """
    unique_sizes, means, standard_errors = _seed_means(sizes, errors)
    rises = []
    for i in range(len(unique_sizes) - 1):
        rise = means[i + 1] - means[i]
        tolerance = math.hypot(standard_errors[i], standard_errors[i + 1])
        if rise > tolerance:
            rises.append(
                f"D={unique_sizes[i]:g} -> {unique_sizes[i + 1]:g} "
                f"({means[i]:.3g} -> {means[i + 1]:.3g})"
            )
    if not rises:
        return []
    return ["the seed-mean error rises with D: " + "; ".join(rises)]


def _seed_means(sizes: FloatArray, errors: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per distinct size (ascending): mean error and its standard error over seeds."""
    unique_sizes, inverse = np.unique(sizes, return_inverse=True)
    counts = np.bincount(inverse).astype(float)
    means = np.bincount(inverse, weights=errors) / counts
    squared_deviation = np.bincount(inverse, weights=(errors - means[inverse]) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = np.where(counts > 1, squared_deviation / (counts - 1), 0.0)
    return unique_sizes, means, np.sqrt(variance / counts)


def form_warnings(
    fit: PowerLawFit | LogLinearFit,
    own: Points,
    refit: PowerLawParams | LogLinearParams | None,
) -> list[str]:
    if isinstance(fit, LogLinearFit):
        return identifiability_warnings(2, own.size)
    warnings = identifiability_warnings(fit.n_params, own.size)
    warnings += floor_warnings(fit, own.size, own.error) + exponent_warnings(fit)
    if not fit.converged:
        warnings.append("the optimiser stopped before converging")
    if isinstance(refit, PowerLawParams):
        warnings += refit_warnings(refit.converged)
    return warnings


def refit_warnings(converged: np.ndarray) -> list[str]:
    unconverged = 1.0 - float(converged.mean())
    if unconverged > UNCONVERGED_SHARE:
        return [f"{unconverged:.1%} of the resample refits stopped before converging"]
    return []


def quality_warnings(quality: dict[str, float | None]) -> list[str]:
    """The form does not describe the points: see MIN_R_SQUARED and MAX_HOLDOUT_ERROR."""
    warnings = []
    r_squared, holdout = quality["r_squared"], quality["holdout_error"]
    if r_squared is not None and r_squared < MIN_R_SQUARED:
        warnings.append(
            f"the form explains little of the points (R^2 = {r_squared:.2f} < {MIN_R_SQUARED}): "
            "its parameters and multipliers describe the form, not the data"
        )
    if holdout is not None and abs(holdout) > MAX_HOLDOUT_ERROR:
        warnings.append(
            f"a fit without the largest size misses it by {holdout:+.0%} (beyond "
            f"{MAX_HOLDOUT_ERROR:.0%}): the form does not predict the data, so do not trust "
            "what it extrapolates"
        )
    return warnings


def score_warnings(own: Points) -> list[str]:
    """Scores at the metric's ends, where an error in log space measures the floor, not the arm."""
    at_floor = own.error <= own.error_floor
    if own.higher_is_better and at_floor.all():
        return [
            "every score is perfect: errors are fitted as 0.5 / eval problems, so the curve "
            "and its multipliers say nothing about the arm"
        ]
    if own.higher_is_better and (own.error >= 1).all():
        return ["every score is 0: there is no curve to fit, only the floor of the metric"]
    if own.higher_is_better and at_floor.any():
        return [
            f"{int(at_floor.sum())} of {len(own)} scores are perfect and fitted as "
            "0.5 / eval problems: near them the curve is set by that convention"
        ]
    return []
