"""What a scaling analysis found: plain frozen records, read by every output.

Design
------
:class:`ScalingAnalysis` holds every arm's means, fits (:class:`FormFit`) and band, the
multipliers and the shared-exponent fits. The printer (:mod:`analysis.summary`), the store
(:mod:`analysis.record`), the figures (:mod:`analysis.plot`) and the page
(:mod:`analysis.report`) read it and nothing else, so they cannot disagree; it is built by
:func:`analysis.scaling.analyse` and holds no I/O.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from analysis.fit import LogLinearFit, PowerLawFit
from analysis.points import Points
from analysis.power_law import HUBER_DELTA, FloatArray
from analysis.settings import AnalysisSettings

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
    def eval_set(self) -> str:
        """The eval set fitted: :func:`analysis.scaling.analyse` names one (test by default)."""
        if self.settings.eval_set is None:
            raise ValueError("an analysis names its eval set; analyse() sets one")
        return self.settings.eval_set

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
