"""A scaling analysis: every arm's fits, bootstrap intervals and effective data multipliers.

Design
------
:func:`analyse` takes :class:`~analysis.points.Points` and the spec's
:class:`~scaler.spec.AnalysisSettings` and returns a :class:`ScalingAnalysis`, a plain frozen
record that the printer, the DuckDB writer, the plots and the report all read; nothing here does
I/O.

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
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from analysis.bootstrap import ArmResamples, can_resample, interval, resample_errors
from analysis.fit import (
    HUBER_DELTA,
    FloatArray,
    LogLinearFit,
    PowerLawFit,
    _floor_warnings,
    _monotonicity_warnings,
    effective_multiplier,
    fit_log_linear,
    fit_power_law,
    identifiability_warnings,
)
from analysis.fit_many import (
    LogLinearParams,
    PowerLawParams,
    fit_log_linear_many,
    fit_power_law_many,
    params_from_fits,
)
from analysis.points import Points
from scaler.spec import AnalysisSettings

FORMS = ("power", "power_e0", "log_linear")
FORM_FORMULAS = {
    "power": "err = E + A*D^-alpha",
    "power_e0": "err = A*D^-alpha",
    "log_linear": "score = intercept + slope*ln D",
}
BAND_EXTENSION = 1.5
"""How far beyond the fitted sizes the band (and a plotted fit) reaches, as a size factor."""
_BAND_POINTS = 60
# Share of resample fits that may stop unconverged before the analysis says so.
_UNCONVERGED_SHARE = 0.01


@dataclass(frozen=True)
class SizeMean:
    """The mean error of an arm's seeds at one size, with its bootstrap interval."""

    size: float
    seeds: int
    error: float
    low: float
    high: float


@dataclass(frozen=True)
class FormFit:
    """One form fitted to one arm."""

    form: str
    params: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    """Bootstrap interval per parameter (empty without resamples)."""
    quality: dict[str, float | None]
    """loss (the objective at the optimum), r_squared, rmse_log, holdout_error."""
    converged: bool
    warnings: list[str]
    formula: str
    fit: PowerLawFit | LogLinearFit = field(repr=False, compare=False)

    def predict_error(self, points: Points, D: Any) -> Any:
        """The fitted error at sizes D (log-linear fits the score; converted here)."""
        predicted = self.fit.predict(D)
        return points.to_error(predicted) if self.form == "log_linear" else predicted


@dataclass(frozen=True)
class Band:
    """The chosen form's fitted error over a size grid, with its bootstrap interval."""

    sizes: FloatArray
    error: FloatArray
    low: FloatArray | None
    high: FloatArray | None


@dataclass(frozen=True)
class ArmAnalysis:
    arm: str
    facets: dict[str, Any]
    n_points: int
    sizes: tuple[float, ...]
    means: list[SizeMean]
    fits: dict[str, FormFit]
    band: Band | None


@dataclass(frozen=True)
class Multiplier:
    """m(D) of an arm over its baseline, with its interval."""

    arm: str
    baseline: str
    size: float
    value: float
    low: float | None
    high: float | None
    extrapolated: bool
    unbounded_share: float | None
    """Share of resamples in which the arm beats every size of the baseline (m = inf)."""


@dataclass(frozen=True)
class ScalingAnalysis:
    settings: AnalysisSettings
    data: str
    """Where the points came from: a DuckDB file or a CSV."""
    metric: str
    higher_is_better: bool
    eval_size: int | None
    n_points: int
    resamples: int
    """Resamples actually drawn (0 when the data allow none)."""
    arms: list[ArmAnalysis]
    multipliers: list[Multiplier]
    warnings: list[str]
    points: Points = field(repr=False, compare=False)

    def arm(self, name: str) -> ArmAnalysis:
        return next(a for a in self.arms if a.arm == name)

    def score_of(self, mean: SizeMean) -> tuple[float, float, float]:
        """A per-size mean in the metric's own units: value, low, high (low <= high; nan
        where no interval was drawn). An error interval [l, h] is a score interval [1-h, 1-l]."""
        value, *ends = (float(self.points.to_value(v)) for v in (mean.error, mean.low, mean.high))
        return value, min(ends), max(ends)

    def fit_settings(self) -> dict[str, Any]:
        """Everything that determines the numbers, as stored beside them."""
        return {
            **self.settings.model_dump(mode="json"),
            "metric": self.metric,
            "resamples_drawn": self.resamples,
            "loss": "mean Huber loss of log-error residuals; delta = 1.345 robust SDs of the "
            f"residuals of a least-squares fit, at least {HUBER_DELTA:g} (per arm and form)",
            "optimiser": "L-BFGS-B from a grid of starts (point fits); "
            "vectorised Levenberg-Marquardt with Huber reweighting (resample refits)",
            "interval": "percentile",
            "resampled": self._what_is_resampled(),
            "zero_error": "fitted as 0.5 / eval problems",
        }

    def _what_is_resampled(self) -> str:
        if self.points.outcomes is not None:
            what = "eval problems (the same draw for every model)"
        elif self.points.eval_size:
            what = (
                f"each score as Binomial({self.points.eval_size}, score) / {self.points.eval_size}"
            )
        else:
            what = "nothing but"
        return f"{what} and seeds within (arm, size)"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: non-finite numbers become null."""
        return _json_ready(
            {
                "data": self.data,
                "metric": self.metric,
                "higher_is_better": self.higher_is_better,
                "eval_size": self.eval_size,
                "n_points": self.n_points,
                "settings": self.fit_settings(),
                "arms": [
                    {
                        "arm": arm.arm,
                        **{k: v for k, v in arm.facets.items() if v is not None},
                        "n_points": arm.n_points,
                        "means": [asdict(mean) for mean in arm.means],
                        "fits": {
                            form: {
                                "params": fit.params,
                                "intervals": fit.intervals,
                                "quality": fit.quality,
                                "converged": fit.converged,
                                "formula": fit.formula,
                                "warnings": fit.warnings,
                            }
                            for form, fit in arm.fits.items()
                        },
                    }
                    for arm in self.arms
                ],
                "multipliers": [asdict(m) for m in self.multipliers],
                "warnings": self.warnings,
            }
        )


# --------------------------------------------------------------------------------------------
# The analysis.


def analyse(points: Points, settings: AnalysisSettings, data: str) -> ScalingAnalysis:
    """Fit every arm in every form, bootstrap, and compute the multipliers."""
    if settings.eval_set is None:  # points from elsewhere than a spec's run: name them test
        settings = settings.model_copy(update={"eval_set": "test"})
    warnings = []
    fitted = [arm for arm in points.arms if np.unique(points.of_arm(arm).size).size >= 2]
    for arm in points.arms:
        if arm not in fitted:
            warnings.append(f"{arm}: a single size, so no curve is fitted")
    resamples = settings.resamples if can_resample(points) else 0
    if settings.resamples and not resamples:
        warnings.append(
            "no intervals: one seed per size and no per-problem outcomes or eval size to redraw"
        )
    rng = np.random.default_rng(settings.seed)
    in_fitted = np.isin(points.arm, fitted)
    draws = resample_errors(points.select(in_fitted), resamples, rng) if resamples else {}

    arms, refits = [], {}
    for arm in fitted:
        analysis, refits[arm] = _analyse_arm(points, arm, draws.get(arm), settings)
        arms.append(analysis)
        warnings += [
            f"{arm} ({form}): {w}" for form, f in analysis.fits.items() for w in f.warnings
        ]
    by_name = {a.arm: a for a in arms}
    multipliers = _multipliers(points, by_name, refits, settings, warnings)
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
    )


def baseline_of(arm: str, settings: AnalysisSettings) -> str:
    """The named baseline, or the SFT arm of the arm's source (``sft`` or ``<source>:sft``)."""
    if settings.baseline is not None:
        return settings.baseline
    source, _, _ = arm.rpartition(":")
    return f"{source}:sft" if source else "sft"


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
    data_warnings = _monotonicity_warnings(sizes, errors)
    fits = {}
    for form, fit in point_fits.items():
        fits[form] = FormFit(
            form=form,
            params={name: float(v) for name, v in _named_params(fit, form).items()},
            intervals=_param_intervals(refits[form], form, settings.confidence) if refits else {},
            quality=_quality(own, form, fit),
            converged=getattr(fit, "converged", True),
            warnings=_form_warnings(fit, own, refits.get(form)) + data_warnings * (form == "power"),
            formula=fit.formula(),
            fit=fit,
        )
    analysis = ArmAnalysis(
        arm=arm,
        facets={name: own.facet_of(arm, name) for name in own.facets},
        n_points=len(own),
        sizes=tuple(np.unique(sizes).tolist()),
        means=_means(own, draws, settings.confidence),
        fits=fits,
        band=_band(own, fits[settings.form], refits.get(settings.form), settings.confidence),
    )
    return analysis, refits


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


def _form_warnings(
    fit: PowerLawFit | LogLinearFit,
    own: Points,
    refit: PowerLawParams | LogLinearParams | None,
) -> list[str]:
    if isinstance(fit, LogLinearFit):
        return identifiability_warnings(2, own.size)
    warnings = identifiability_warnings(fit.n_params, own.size) + _floor_warnings(fit, own.error)
    if not fit.converged:
        warnings.append("the optimiser stopped before converging")
    if isinstance(refit, PowerLawParams):
        unconverged = 1.0 - float(refit.converged.mean())
        if unconverged > _UNCONVERGED_SHARE:
            warnings.append(f"{unconverged:.1%} of the resample refits stopped before converging")
    return warnings


def _means(own: Points, draws: ArmResamples | None, confidence: float) -> list[SizeMean]:
    means = []
    for size in np.unique(own.size):
        at_size = own.size == size
        error = float(own.error[at_size].mean())
        low = high = math.nan
        if draws is not None:
            low, high = interval(draws.errors[:, draws.sizes == size].mean(axis=1), confidence)
        means.append(SizeMean(float(size), int(at_size.sum()), error, float(low), float(high)))
    return means


def _band(
    own: Points,
    fit: FormFit,
    refit: PowerLawParams | LogLinearParams | None,
    confidence: float,
) -> Band:
    low_size, high_size = own.size.min(), own.size.max()
    grid = np.geomspace(low_size / BAND_EXTENSION, high_size * BAND_EXTENSION, _BAND_POINTS)
    center = np.asarray(fit.predict_error(own, grid), dtype=float)
    if refit is None:
        return Band(grid, center, None, None)
    curves = refit.predict(grid)
    if isinstance(refit, LogLinearParams):
        curves = own.to_error(curves)
    low, high = interval(curves, confidence)
    return Band(grid, center, low, high)


# --------------------------------------------------------------------------------------------
# Multipliers.


def _multipliers(
    points: Points,
    arms: dict[str, ArmAnalysis],
    refits: dict[str, dict[str, PowerLawParams | LogLinearParams]],
    settings: AnalysisSettings,
    warnings: list[str],
) -> list[Multiplier]:
    if settings.baseline is not None and settings.baseline not in arms:
        from scaler.errors import SpecError

        raise SpecError(
            "analysis",
            "baseline",
            f"{settings.baseline!r} is not a fitted arm; fitted arms: {', '.join(arms)}",
        )
    form = settings.form
    out = []
    for name, arm in arms.items():
        base_name = baseline_of(name, settings)
        if base_name == name or base_name not in arms:
            continue
        base = arms[base_name]
        sizes = np.asarray(settings.sizes or arm.sizes, dtype=float)
        estimate = effective_multiplier(base.fits[form].fit, arm.fits[form].fit, sizes)
        values = np.atleast_1d(estimate.multiplier)
        flags = np.atleast_1d(estimate.extrapolated)
        lows = highs = unbounded = [None] * sizes.size
        if refits.get(name) and refits.get(base_name):
            resampled = refits[base_name][form].inverse(refits[name][form].predict(sizes)) / sizes
            low_arr, high_arr = interval(resampled, settings.confidence)
            lows, highs = low_arr.tolist(), high_arr.tolist()
            unbounded = (~np.isfinite(resampled)).mean(axis=0).tolist()
        for i, size in enumerate(sizes):
            out.append(
                Multiplier(
                    arm=name,
                    baseline=base_name,
                    size=float(size),
                    value=float(values[i]),
                    low=lows[i],
                    high=highs[i],
                    extrapolated=bool(flags[i]),
                    unbounded_share=unbounded[i],
                )
            )
    if not out and len(arms) > 1:
        warnings.append(
            "no multipliers: no arm has a baseline among the fitted arms; name one with "
            "--baseline (or analysis.baseline)"
        )
    return out


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
