"""The shared-exponent form: an arm fitted jointly with its baseline.

Design
------
``err_base = E + A*D^-alpha`` and ``err_arm = E + A*(m*D)^-alpha``: E, A and alpha are shared
and m, the arm's effective data multiplier, is a parameter identified by both arms' points.
Every pair is fitted in one vectorised call (:func:`analysis.fit_many.fit_shared_many`), its
resamples in another, Huber's delta set from a least-squares fit as for the per-arm forms. An F
test of the shared curve against separate power curves says when the data reject sharing (the
arm's curve has another shape, so its multiplier changes with D).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from analysis.bootstrap import ArmResamples, interval
from analysis.curve_params import SharedParams
from analysis.diagnostics import refit_warnings
from analysis.fit_many import fit_shared_many
from analysis.points import Points
from analysis.power_law import LEAST_SQUARES_DELTA, LOG_M_BOUND, FloatArray, delta_from_residuals
from analysis.result import SHARED, SHARED_REJECTION_LEVEL, ArmAnalysis, SharedFit
from analysis.settings import AnalysisSettings, baseline_of


def shared_fits(
    points: Points,
    arms: dict[str, ArmAnalysis],
    draws: dict[str, ArmResamples],
    settings: AnalysisSettings,
) -> list[SharedFit]:
    """Every arm with a curve, fitted jointly with its baseline (when that has one too).

    Pairs with the same number of points are fitted in one vectorised call, their resamples in
    another: one call per pair would pay the optimiser's per-iteration overhead once each."""
    pairs = []
    for name, arm in arms.items():
        base_name = baseline_of(name, settings)
        if base_name != name and arm.fits and base_name in arms and arms[base_name].fits:
            pairs.append(_SharedPair.of(points, arm, arms[base_name], draws))
    fits: dict[str, SharedFit] = {}
    for n_points in sorted({pair.errors.size for pair in pairs}):
        group = [pair for pair in pairs if pair.errors.size == n_points]
        for pair, fit in zip(group, _fit_pairs(group, settings), strict=True):
            fits[pair.arm.arm] = fit
    return [fits[pair.arm.arm] for pair in pairs]


@dataclass(frozen=True)
class _SharedPair:
    """An arm and its baseline as one set of points: the baseline's first, then the arm's."""

    arm: ArmAnalysis
    base: ArmAnalysis
    sizes: FloatArray
    errors: FloatArray
    in_arm: FloatArray
    resampled: FloatArray | None
    """(resamples, points), in the same order; None without resamples."""

    @classmethod
    def of(
        cls, points: Points, arm: ArmAnalysis, base: ArmAnalysis, draws: dict[str, ArmResamples]
    ) -> _SharedPair:
        own, baseline = points.of_arm(arm.arm), points.of_arm(base.arm)
        resampled = None
        if arm.arm in draws and base.arm in draws:
            # The draws list each arm's models by size and seed; resample r of both arms redrew
            # the same problems and seed slots, so they pair.
            pair = (draws[base.arm], draws[arm.arm])
            resampled = np.concatenate([d.errors for d in pair], axis=1)
            sizes = np.concatenate([d.sizes for d in pair])
            errors = np.concatenate([_by_slot(baseline), _by_slot(own)])
        else:
            sizes = np.concatenate([baseline.size, own.size])
            errors = np.concatenate([baseline.error, own.error])
        in_arm = np.r_[np.zeros(len(baseline)), np.ones(len(own))]
        return cls(arm, base, sizes, errors, in_arm, resampled)


def _by_slot(points: Points) -> FloatArray:
    """An arm's errors in the order of its resample slots (size, then seed)."""
    return points.error[np.lexsort((points.seed, points.size))]


def _fit_pairs(pairs: list[_SharedPair], settings: AnalysisSettings) -> list[SharedFit]:
    sizes = np.stack([pair.sizes for pair in pairs])
    errors = np.stack([pair.errors for pair in pairs])
    in_arm = np.stack([pair.in_arm for pair in pairs])
    # Least squares first: its residuals set Huber's delta, as for the per-arm fits.
    least_squares = fit_shared_many(sizes, errors, in_arm, delta=LEAST_SQUARES_DELTA)
    deltas = delta_from_residuals(_shared_log_residuals(least_squares, sizes, errors, in_arm))
    point = fit_shared_many(sizes, errors, in_arm, start=least_squares, delta=deltas)
    intervals: list[dict[str, tuple[float, float]]] = [{} for _ in pairs]
    pair_warnings: list[list[str]] = [[] for _ in pairs]
    # The resamples are refitted when this is the form asked for: a second full bootstrap of
    # every arm would double the time of an analysis that reads the per-arm forms.
    if settings.form == SHARED and all(pair.resampled is not None for pair in pairs):
        resamples = pairs[0].resampled.shape[0]  # type: ignore[union-attr]
        refit = fit_shared_many(
            np.repeat(sizes, resamples, axis=0),
            np.concatenate([pair.resampled for pair in pairs]),
            np.repeat(in_arm, resamples, axis=0),
            start=_repeat(point, resamples),
            delta=np.repeat(deltas, resamples),
        )
        for i in range(len(pairs)):
            rows = slice(i * resamples, (i + 1) * resamples)
            for key in ("E", "A", "alpha", "m"):
                low, high = interval(getattr(refit, key)[rows], settings.confidence)
                intervals[i][key] = (float(low), float(high))
            pair_warnings[i] = refit_warnings(refit.converged[rows])
    return [
        _shared_fit(pair, point, i, float(deltas[i]), intervals[i], pair_warnings[i])
        for i, pair in enumerate(pairs)
    ]


def _repeat(params: SharedParams, times: int) -> SharedParams:
    return SharedParams(*(np.repeat(getattr(params, f.name), times) for f in fields(params)))


def _shared_fit(
    pair: _SharedPair,
    point: SharedParams,
    row: int,
    delta: float,
    intervals: dict[str, tuple[float, float]],
    warnings: list[str],
) -> SharedFit:
    params = {key: float(getattr(point, key)[row]) for key in ("E", "A", "alpha", "m")}
    f_statistic, p_value = _shared_rejection(
        _shared_log_residuals(point, pair.sizes, pair.errors, pair.in_arm)[row], pair
    )
    warnings = list(warnings)
    if p_value is not None and p_value < SHARED_REJECTION_LEVEL:
        warnings.append(
            f"the data reject a shared exponent and floor (F = {f_statistic:.3g}, "
            f"p = {p_value:.2g}): the arm's curve has another shape, so its multiplier changes "
            "with D; read the per-arm forms' m(D) instead"
        )
    m_low, m_high = intervals.get("m", (params["m"], params["m"]))
    if max(abs(math.log(v)) for v in (params["m"], m_low, m_high)) >= LOG_M_BOUND * (1 - 1e-6):
        warnings.append(
            f"m or its interval reaches its bound ({math.exp(LOG_M_BOUND):g}x either way): the "
            "data do not pin the multiplier down"
        )
    if not point.converged[row]:
        warnings.append("the optimiser stopped before converging")
    return SharedFit(
        arm=pair.arm.arm,
        baseline=pair.base.arm,
        params=params,
        intervals=intervals,
        loss=float(point.loss[row]),
        delta=delta,
        converged=bool(point.converged[row]),
        f_statistic=f_statistic,
        p_value=p_value,
        warnings=warnings,
    )


def _shared_log_residuals(
    fit: SharedParams, sizes: FloatArray, errors: FloatArray, in_arm: FloatArray
) -> FloatArray:
    """Log residuals of shared fits (one per row) at their points: (n_curves, n_points)."""
    return np.log(fit.predict(sizes, in_arm)) - np.log(errors)


def _shared_rejection(
    shared_residual: FloatArray, pair: _SharedPair
) -> tuple[float | None, float | None]:
    """F test of the shared curve (4 parameters) against separate power curves (6), on the
    sums of squared log residuals; None where too few points are left to test."""
    from scipy.stats import f as f_distribution

    n = pair.errors.size
    if n <= 6:
        return None, None
    shared_rss = float((shared_residual**2).sum())
    separate_rss = 0.0
    for analysis, mask in ((pair.base, pair.in_arm == 0), (pair.arm, pair.in_arm > 0)):
        fit = analysis.fits["power"].fit
        residual = np.log(fit.predict(pair.sizes[mask])) - np.log(pair.errors[mask])
        separate_rss += float((residual**2).sum())
    if separate_rss <= 0:
        return None, None
    # The separate fits minimise a Huber loss, not these sums, so they may even fit them worse:
    # the F statistic is then 0, no evidence against sharing.
    statistic = max(shared_rss - separate_rss, 0.0) / 2 / (separate_rss / (n - 6))
    return float(statistic), float(f_distribution.sf(statistic, 2, n - 6))
