"""A scaling analysis: every arm's fits, bootstrap intervals and effective data multipliers.

Design
------
:func:`analyse` takes :class:`~analysis.points.Points` and the spec's
:class:`~scaler.spec.schema.AnalysisSettings` and returns a :class:`ScalingAnalysis`, a plain frozen
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
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from analysis.bootstrap import ArmResamples, can_resample, interval, resample_errors
from analysis.fit import (
    HUBER_DELTA,
    LEAST_SQUARES_DELTA,
    FloatArray,
    LogLinearFit,
    PowerLawFit,
    _monotonicity_warnings,
    delta_from_residuals,
    effective_multiplier,
    exponent_warnings,
    fit_log_linear,
    fit_power_law,
    floor_warnings,
    identifiability_warnings,
)
from analysis.fit_many import (
    LOG_M_BOUND,
    LogLinearParams,
    PowerLawParams,
    SharedParams,
    fit_log_linear_many,
    fit_power_law_many,
    fit_shared_many,
    params_from_fits,
)
from analysis.points import Points
from scaler.spec.schema import AnalysisSettings

FORMS = ("power", "power_e0", "log_linear")
"""The forms fitted to each arm alone."""
FORM_FORMULAS = {
    "power": "err = E + A*D^-alpha",
    "power_e0": "err = A*D^-alpha",
    "log_linear": "score = intercept + slope*ln D",
    "shared": "err_arm = E + A*(m*D)^-alpha, E, A, alpha shared with the baseline",
}
SHARED = "shared"
BAND_EXTENSION = 1.5
"""How far beyond the fitted sizes the band (and a plotted fit) reaches, as a size factor."""
_BAND_POINTS = 60
# Share of resample fits that may stop unconverged before the analysis says so.
_UNCONVERGED_SHARE = 0.01
# A form "does not describe the points" when it explains less than half of their variance, or
# when a fit without the largest size misses that size's mean by more than half. With seeds of
# ordinary spread on a curve that moves with D, a right form stays well inside both.
MIN_R_SQUARED = 0.5
MAX_HOLDOUT_ERROR = 0.5
# The shared exponent is rejected when separate curves fit better at this level (F test).
SHARED_REJECTION_LEVEL = 0.05
# Multiplier methods.
CURVES, SINGLE_POINT = "curves", "single point"


def flat_params(
    params: dict[str, float], intervals: dict[str, tuple[float, float]]
) -> dict[str, float]:
    """Parameters and their interval ends as one row: ``alpha``, ``alpha_low``, ``alpha_high``."""
    row = dict(params)
    for name, (low, high) in intervals.items():
        row |= {f"{name}_low": low, f"{name}_high": high}
    return row


def curve_form(form: str) -> str:
    """The per-arm form whose curves are drawn and banded for a multiplier form."""
    return "power" if form == SHARED else form


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
    """Empty for an arm measured at a single size."""
    band: Band | None
    warnings: list[str] = field(default_factory=list)
    """About the arm's points rather than one form's fit."""


@dataclass(frozen=True)
class SharedFit:
    """An arm fitted jointly with its baseline: err_base = E + A*D^-alpha and
    err_arm = E + A*(m*D)^-alpha, so m is the arm's effective data multiplier at every size."""

    arm: str
    baseline: str
    params: dict[str, float]
    """E, A, alpha (shared) and m."""
    intervals: dict[str, tuple[float, float]]
    loss: float
    delta: float
    converged: bool
    f_statistic: float | None
    """Of separate power curves against the shared one (sums of squared log residuals)."""
    p_value: float | None
    """Small: the data reject a shared exponent and floor (None: too few points to test)."""
    warnings: list[str]


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
    method: str = CURVES
    """curves: m(D) from the arm's and baseline's fits (or the shared fit's m); single point:
    the baseline's curve inverted at an arm measured at one size."""


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
    """Every arm; those measured at one size have no fits."""
    multipliers: list[Multiplier]
    warnings: list[str]
    points: Points = field(repr=False, compare=False)
    shared: list[SharedFit] = field(default_factory=list)

    def arm(self, name: str) -> ArmAnalysis:
        return next(a for a in self.arms if a.arm == name)

    @property
    def fitted_arms(self) -> list[ArmAnalysis]:
        return [arm for arm in self.arms if arm.fits]

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
                        "warnings": arm.warnings,
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
                "shared": [asdict(fit) for fit in self.shared],
                "warnings": self.warnings,
            }
        )


# --------------------------------------------------------------------------------------------
# The analysis.


def analyse(points: Points, settings: AnalysisSettings, data: str) -> ScalingAnalysis:
    """Fit every arm in every form, bootstrap, and compute the multipliers."""
    if settings.eval_set is None:  # points from elsewhere than a spec's run: name them test
        settings = settings.model_copy(update={"eval_set": "test"})
    if (points.error <= 0).any():
        from scaler.errors import SpecError

        raise SpecError(
            data,
            "value",
            "a perfect score (an error of 0) cannot be fitted on a log scale without the number "
            "of eval problems behind it; give the eval size (--eval-size N fits it as 0.5 / N)",
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
    shared = _shared_fits(points, by_name, draws, settings)
    warnings += [f"{f.arm} over {f.baseline} (shared): {w}" for f in shared for w in f.warnings]
    multipliers = _multipliers(points, by_name, refits, shared, draws, settings, warnings)
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
        quality = _quality(own, form, fit)
        fits[form] = FormFit(
            form=form,
            params={name: float(v) for name, v in _named_params(fit, form).items()},
            intervals=_param_intervals(refits[form], form, settings.confidence) if refits else {},
            quality=quality,
            converged=getattr(fit, "converged", True),
            warnings=_form_warnings(fit, own, refits.get(form))
            + _quality_warnings(quality)
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
        warnings=_score_warnings(own) + mean_warnings,
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
    warnings = identifiability_warnings(fit.n_params, own.size)
    warnings += floor_warnings(fit, own.size, own.error) + exponent_warnings(fit)
    if not fit.converged:
        warnings.append("the optimiser stopped before converging")
    if isinstance(refit, PowerLawParams):
        warnings += _refit_warnings(refit.converged)
    return warnings


def _refit_warnings(converged: np.ndarray) -> list[str]:
    unconverged = 1.0 - float(converged.mean())
    if unconverged > _UNCONVERGED_SHARE:
        return [f"{unconverged:.1%} of the resample refits stopped before converging"]
    return []


def _quality_warnings(quality: dict[str, float | None]) -> list[str]:
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


def _score_warnings(own: Points) -> list[str]:
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
            low, high = interval(resampled, confidence)
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


# --------------------------------------------------------------------------------------------
# Multipliers.


def _multipliers(
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
        from scaler.errors import SpecError

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


# --------------------------------------------------------------------------------------------
# The shared-exponent form.


def _shared_fits(
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
    refit_warnings: list[list[str]] = [[] for _ in pairs]
    # The resamples are refitted when this is the form asked for: a second full bootstrap of
    # every arm would double the time of an analysis that reads the per-arm forms.
    if settings.form == SHARED and all(pair.resampled is not None for pair in pairs):
        resamples = pairs[0].resampled.shape[0]  # type: ignore[union-attr]
        refit = fit_shared_many(
            np.repeat(sizes, resamples, axis=0),
            np.concatenate([pair.resampled for pair in pairs]),  # type: ignore[misc]
            np.repeat(in_arm, resamples, axis=0),
            start=_repeat(point, resamples),
            delta=np.repeat(deltas, resamples),
        )
        for i in range(len(pairs)):
            rows = slice(i * resamples, (i + 1) * resamples)
            for key in ("E", "A", "alpha", "m"):
                low, high = interval(getattr(refit, key)[rows], settings.confidence)
                intervals[i][key] = (float(low), float(high))
            refit_warnings[i] = _refit_warnings(refit.converged[rows])
    return [
        _shared_fit(pair, point, i, float(deltas[i]), intervals[i], refit_warnings[i])
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
