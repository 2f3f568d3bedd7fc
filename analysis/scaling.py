"""A scaling analysis: every arm's fits, bootstrap intervals and effective data multipliers.

Design
------
:func:`analyse` takes :class:`~analysis.points.Points` and the spec's
:class:`~analysis.settings.AnalysisSettings` and returns a
:class:`~analysis.result.ScalingAnalysis`, a plain frozen record that the printer, the DuckDB
writer, the plots and the report all read; nothing here does I/O. This module fits each arm;
:mod:`analysis.shared_fit` fits the shared-exponent pairs and :mod:`analysis.multipliers`
computes the multipliers.

Per arm (with at least two sizes) three forms are fitted to all points, every seed kept:
``power`` (err = E + A*D^-alpha, Huber in log space, L-BFGS-B from a grid of starts),
``power_e0`` (the same with E = 0) and ``log_linear`` (Yuan's value = a + b*ln D, least squares).
Each reports its quality: the loss, R^2 of the errors, the RMS log residual, and the relative
error of predicting the largest size's mean from a fit without it (the check that matters when a
multiplier is read off an extrapolated curve).

The bootstrap (:mod:`analysis.bootstrap`) redraws eval problems and seeds; every resample of
every arm is refitted in every form (:mod:`analysis.fit_many`), and the percentile intervals of
the parameters, of the per-size means, of the fitted curve (the band) and of the multipliers come
from those refits. Multipliers pair resample r of an arm with resample r of its baseline: the two
were redrawn on the same problems and seeds.

The effective data multiplier of an arm over its baseline at size D is
``m(D) = f_base^-1(f_arm(D)) / D`` in the chosen form f: how many times more data the baseline
needs to do as well as the arm does with D. It is flagged as extrapolated when D is outside the
arm's fitted sizes or the matching baseline size is outside the baseline's.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from analysis.bootstrap import ArmResamples, can_resample, interval, resample_errors
from analysis.curve_params import LogLinearParams, PowerLawParams, params_from_fits
from analysis.diagnostics import (
    form_warnings,
    monotonicity_warnings,
    quality_warnings,
    score_warnings,
)
from analysis.errors import ArgumentError
from analysis.fit import LogLinearFit, PowerLawFit, fit_log_linear, fit_power_law
from analysis.fit_many import fit_log_linear_many, fit_power_law_many
from analysis.multipliers import multipliers_of
from analysis.points import Points
from analysis.result import (
    BAND_EXTENSION,
    ArmAnalysis,
    Band,
    FormFit,
    ScalingAnalysis,
    SizeMean,
    curve_form,
)
from analysis.settings import AnalysisSettings
from analysis.shared_fit import shared_fits

_BAND_POINTS = 60


def analyse(points: Points, settings: AnalysisSettings, data: str) -> ScalingAnalysis:
    """Fit every arm in every form, bootstrap, and compute the multipliers."""
    if settings.eval_set is None:  # points from elsewhere than a spec's run: name them test
        settings = settings.model_copy(update={"eval_set": "test"})
    if (points.error <= 0).any():
        raise ArgumentError(
            data,
            "value",
            "a perfect score (an error of 0) cannot be fitted on a log scale without the number "
            "of eval problems behind it; give the eval size (eval_size=N fits it as 0.5 / N)",
            arguments=("eval_size",),
            in_file=True,
        )
    warnings = []
    resamples = settings.resamples if can_resample(points) else 0
    if settings.resamples and not resamples:
        warnings.append(
            "no intervals: one seed per size and no per-problem outcomes or eval size to redraw"
        )
    rng = np.random.default_rng(settings.seed)
    # Single-size arms are redrawn too: their multiplier's interval needs their own noise.
    draws = resample_errors(points, resamples, rng) if resamples else {}

    arms, refits = [], {}
    for arm in points.arms:
        own = points.of_arm(arm)
        if np.unique(own.size).size >= 2:
            analysis, refits[arm] = _analyse_arm(points, arm, draws.get(arm), settings)
        else:
            analysis = _single_size_arm(points, arm, draws.get(arm), settings)
        arms.append(analysis)
        warnings += [f"{arm}: {w}" for w in analysis.warnings]
        warnings += [
            f"{arm} ({form}): {w}" for form, f in analysis.fits.items() for w in f.warnings
        ]
    by_name = {a.arm: a for a in arms}
    shared = shared_fits(points, by_name, draws, settings)
    warnings += [f"{f.arm} over {f.baseline} (shared): {w}" for f in shared for w in f.warnings]
    multipliers = multipliers_of(points, by_name, refits, shared, draws, settings, warnings)
    return ScalingAnalysis(
        settings=settings,
        data=data,
        metric=points.metric,
        higher_is_better=points.higher_is_better,
        eval_size=points.eval_size,
        n_points=len(points),
        resamples=resamples,
        arms=arms,
        multipliers=multipliers,
        warnings=warnings,
        points=points,
        shared=shared,
    )


def _analyse_arm(
    points: Points, arm: str, draws: ArmResamples | None, settings: AnalysisSettings
) -> tuple[ArmAnalysis, dict[str, PowerLawParams | LogLinearParams]]:
    own = points.of_arm(arm)
    sizes, errors = own.size, own.error
    point_fits: dict[str, PowerLawFit | LogLinearFit] = {
        "power": fit_power_law(sizes, errors),
        "power_e0": fit_power_law(sizes, errors, fix_E_zero=True),
        "log_linear": fit_log_linear(sizes, own.value),
    }
    refits = _refit(points, point_fits, draws) if draws is not None else {}
    data_warnings = monotonicity_warnings(sizes, errors)
    fits = {}
    for form, fit in point_fits.items():
        quality = _quality(own, form, fit)
        fits[form] = FormFit(
            form=form,
            params={name: float(v) for name, v in _named_params(fit, form).items()},
            intervals=_param_intervals(refits[form], form, settings.confidence) if refits else {},
            quality=quality,
            converged=getattr(fit, "converged", True),
            warnings=form_warnings(fit, own, refits.get(form))
            + quality_warnings(quality)
            + data_warnings * (form == "power"),
            formula=fit.formula(),
            fit=fit,
        )
    drawn = curve_form(settings.form)
    band = _band(own, fits[drawn], refits.get(drawn), settings.confidence)
    return replace(_single_size_arm(points, arm, draws, settings), fits=fits, band=band), refits


def _single_size_arm(
    points: Points, arm: str, draws: ArmResamples | None, settings: AnalysisSettings
) -> ArmAnalysis:
    """An arm without a curve: its means with intervals and its points' warnings. An arm
    measured at one size (a paper's "method X at full data" row) stays so; its multiplier
    inverts the baseline's curve (see _single_point). _analyse_arm adds the fits."""
    own = points.of_arm(arm)
    means, mean_warnings = _means(own, draws, settings.confidence)
    return ArmAnalysis(
        arm=arm,
        facets={name: own.facet_of(arm, name) for name in own.facets},
        n_points=len(own),
        sizes=tuple(np.unique(own.size).tolist()),
        means=means,
        fits={},
        band=None,
        warnings=score_warnings(own) + mean_warnings,
    )


def _refit(
    points: Points, point_fits: dict[str, Any], draws: ArmResamples
) -> dict[str, PowerLawParams | LogLinearParams]:
    """Every resample refitted in every form, each started beside its point fit."""
    return {
        form: fit_power_law_many(
            draws.sizes,
            draws.errors,
            fix_E_zero=form == "power_e0",
            start=params_from_fits([point_fits[form]]),
            delta=point_fits[form].delta,  # the same objective as the point fit
        )
        for form in ("power", "power_e0")
    } | {
        "log_linear": fit_log_linear_many(draws.sizes, points.to_value(draws.errors)),
    }


def _named_params(fitted: Any, form: str) -> dict[str, Any]:
    """A form's parameters by name, from one fit or from many refits (same attribute names)."""
    if form == "log_linear":
        return {"intercept": fitted.a, "slope": fitted.b}
    named = {"E": fitted.E, "A": fitted.A, "alpha": fitted.alpha}
    if form == "power_e0":
        del named["E"]
    return named


def _param_intervals(
    refit: PowerLawParams | LogLinearParams, form: str, confidence: float
) -> dict[str, tuple[float, float]]:
    out = {}
    for name, values in _named_params(refit, form).items():
        low, high = interval(values, confidence)
        out[name] = (float(low), float(high))
    return out


def _quality(own: Points, form: str, fit: PowerLawFit | LogLinearFit) -> dict[str, float | None]:
    sizes, errors = own.size, own.error
    extra: dict[str, float] = {}
    loss: float | None
    r_squared: float | None
    if isinstance(fit, LogLinearFit):
        predicted = own.to_error(fit.predict(sizes))
        loss, r_squared = None, fit.r_squared
    else:
        predicted = fit.predict(sizes)
        loss = fit.loss
        extra["huber_delta"] = fit.delta
        total = float(((errors - errors.mean()) ** 2).sum())
        r_squared = 1.0 - float(((errors - predicted) ** 2).sum()) / total if total > 0 else None
    with np.errstate(divide="ignore", invalid="ignore"):
        log_residual = np.log(predicted) - np.log(errors)
    rmse_log = float(np.sqrt(np.mean(log_residual**2)))
    return {
        "loss": loss,
        "r_squared": r_squared,
        "rmse_log": rmse_log if math.isfinite(rmse_log) else None,
        "holdout_error": _holdout_error(own, form, getattr(fit, "delta", None)),
        **extra,
    }


def _holdout_error(own: Points, form: str, delta: float | None) -> float | None:
    """Relative error of the largest size's mean error, predicted by a fit without it (with the
    full fit's delta); None when too few sizes remain to fit the form."""
    largest = own.size.max()
    kept = own.size < largest
    n_params = 3 if form == "power" else 2
    if np.unique(own.size[kept]).size < n_params:
        return None
    observed = float(own.error[~kept].mean())
    if form == "log_linear":
        predicted = own.to_error(fit_log_linear(own.size[kept], own.value[kept]).predict(largest))
    else:
        fit = fit_power_law(
            own.size[kept], own.error[kept], fix_E_zero=form == "power_e0", delta=delta
        )
        predicted = fit.predict(largest)
    return float(predicted / observed - 1.0)


def _means(
    own: Points, draws: ArmResamples | None, confidence: float
) -> tuple[list[SizeMean], list[str]]:
    """Each size's mean error with its interval, and warnings about intervals of no width."""
    means, certain = [], []
    for size in np.unique(own.size):
        at_size = own.size == size
        error = float(own.error[at_size].mean())
        low = high = math.nan
        if draws is not None:
            resampled = draws.errors[:, draws.sizes == size].mean(axis=1)
            low, high = (float(end) for end in interval(resampled, confidence))
            if np.ptp(resampled) == 0:
                certain.append(f"{size:g}")
        means.append(SizeMean(float(size), int(at_size.sum()), error, float(low), float(high)))
    warnings = []
    if certain:
        warnings.append(
            f"every resample at D={', '.join(certain)} is the same (seeds that scored alike and "
            "no per-problem outcomes or eval size to redraw): an interval of no width there is "
            "no certainty; give the eval size (--eval-size)"
        )
    return means, warnings


def _band(
    own: Points,
    fit: FormFit,
    refit: PowerLawParams | LogLinearParams | None,
    confidence: float,
) -> Band:
    low_size, high_size = own.size.min(), own.size.max()
    grid = np.geomspace(low_size / BAND_EXTENSION, high_size * BAND_EXTENSION, _BAND_POINTS)
    center = own.clip_error(np.asarray(fit.predict_error(own, grid), dtype=float))
    if refit is None:
        return Band(grid, center, None, None)
    curves = refit.predict(grid)
    if isinstance(refit, LogLinearParams):
        curves = own.to_error(curves)
    low, high = interval(own.clip_error(curves), confidence)
    return Band(grid, center, low, high)
