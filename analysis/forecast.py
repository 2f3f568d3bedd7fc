"""What an addition to the grid would do to a target's interval: its expected width, by
simulation.

Design
------
A *target* is one number with an interval: the multiplier of an arm over its baseline at a
size, or an arm's exponent alpha. An *addition* is what a next run adds to the points: new
sizes (each with the grid's seeds), more seeds at every size or at some sizes, or more eval
problems for every model. Only the target's arms are simulated; the points of the other arms
do not move it.

Today's width is measured on the data as they are: the mean width of several bootstrap rounds
(analysis.bootstrap, without per-problem outcomes: binomial redraws of each value and seed
redraws), each redraw refitted (analysis.fit_many) and the percentile interval of the target
taken. The width after an addition is that width times a ratio found by simulation:

1. *Plausible curves.* The points are redrawn and each arm's redraws refitted; redraw j of the
   arm and of its baseline form one pair, as in the analysis. Simulation j uses pair j.
2. *Plausible data.* Every model of today's design, and every model the addition brings, scores
   the pair's curve at its size, moved by the arm's seed-to-seed spread (the spread of its seeds
   at equal sizes less what the eval problems' binomial noise explains; from the fit's
   residuals where no size has two seeds), then is counted on the eval problems (the addition's
   number of them) as a binomial draw. Today's models are drawn from a stream of their own, so
   they come out alike in every addition's simulations.
3. *The ratio.* Each simulated data set is bootstrapped as today's data are, and the mean width
   over the simulations of today's design plus the addition, over that of today's design
   alone, is the ratio. All simulations' redraws are refitted in one call.

Whole data sets are simulated, rather than today's points kept and new ones drawn beside
them, because a plausible curve is not today's data: points drawn from it sit beside today's
as if the seeds disagreed, and the forecasts of more seeds came out wider than today. The ratio
carries the design's effect over to the data in hand. Forecasts come out somewhat wider than
what the additions then bring (benchmarks/RESULTS.md): the bootstrap's curves spread more
than the truth does.

A multiplier's width is in log units (ln high - ln low, each clipped at the fit's bound on ln m,
so that an unbounded interval still ranks); an exponent's is high - low.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from analysis.bootstrap import interval, resample_errors
from analysis.curve_params import PowerLawParams
from analysis.fit_many import fit_power_law_many
from analysis.points import Points
from analysis.power_law import LOG_M_BOUND, FloatArray

MULTIPLIER, EXPONENT = "multiplier", "exponent"
NEW_SEEDS = 10**6
"""Seeds of simulated models start here: apart from any the grid ran."""


@dataclass(frozen=True)
class Target:
    """The multiplier of `arm` over `baseline` at `size`, or (no baseline) `arm`'s exponent."""

    arm: str
    baseline: str | None = None
    size: float | None = None

    @property
    def kind(self) -> str:
        return MULTIPLIER if self.baseline is not None else EXPONENT

    @property
    def arms(self) -> tuple[str, ...]:
        return (self.arm,) if self.baseline is None else (self.arm, self.baseline)

    @property
    def spelled(self) -> str:
        """As `scaler suggest --target` takes it."""
        if self.baseline is None:
            return f"exponent:{self.arm}"
        return f"multiplier:{self.arm}@{self.size:g}"

    def __str__(self) -> str:
        over = f" (over {self.baseline})" if self.baseline is not None else ""
        return self.spelled + over


@dataclass(frozen=True)
class Addition:
    """What a next run adds to every arm of the target."""

    sizes: tuple[float, ...] = ()
    """New sizes, each with as many seeds as the grid has."""
    more_seeds: int = 0
    """Seeds added at every size, the new ones too."""
    seeds_at: tuple[float, ...] = ()
    """A seed more at each of these sizes (of today's)."""
    eval_problems: int | None = None
    """The eval set's size after it (more problems for every model); None: as now."""

    def __str__(self) -> str:
        parts = [f"size {size:g}" for size in self.sizes]
        if self.more_seeds:
            parts.append(f"{self.more_seeds} more seed{'s' if self.more_seeds > 1 else ''}")
        if self.seeds_at:
            parts.append(f"a seed more at {', '.join(f'{size:g}' for size in self.seeds_at)}")
        if self.eval_problems:
            parts.append(f"{self.eval_problems} eval problems")
        return " + ".join(parts) or "nothing"


@dataclass(frozen=True)
class Settings:
    simulations: int = 16
    """Plausible data sets per addition."""
    resamples: int = 100
    """Bootstrap redraws of each simulated data set."""
    confidence: float = 0.9
    seed: int = 0


def lean(points: Points, target: Target) -> Points:
    """The target's arms, without per-problem outcomes: what the simulations can make."""
    missing = [arm for arm in target.arms if arm not in points.arms]
    if missing:
        raise KeyError(f"no arm {missing[0]!r}; the arms are {', '.join(points.arms)}")
    if not points.eval_size:
        raise ValueError("forecasts need the eval set's size (the store has it)")
    mine = points.select(np.isin(points.arm, target.arms))
    return replace(mine, outcomes=None, facets={})


class Forecaster:
    """Forecasts for one target on one set of points: today's width is measured once, and the
    simulations of today's design (the ratio's denominator) are made once for every addition."""

    def __init__(self, points: Points, target: Target, settings: Settings = Settings()) -> None:
        self.target, self.settings = target, settings
        self.data = lean(points, target)
        rng = np.random.default_rng([settings.seed, 0])
        rounds = [self.data] * settings.simulations
        self.width = float(self._widths(rounds, rng).mean())
        """Today's width: the mean over `simulations` bootstrap rounds of the data as it is
        (one round of 100 redraws varies by a third)."""
        self._rng = rng

    @cached_property
    def curves(self) -> list[dict[str, PowerLawParams]]:
        """The plausible curves: simulation j's pair of refits."""
        refits = _refits([self.data], self.target, self.settings.simulations, self._rng)
        return [{arm: _row(refits[arm], j) for arm in self.target.arms}
                for j in range(self.settings.simulations)]  # fmt: skip

    @cached_property
    def spreads(self) -> dict[str, float]:
        return {arm: seed_spread(self.data.of_arm(arm)) for arm in self.target.arms}

    @cached_property
    def today(self) -> FloatArray:
        """The width in each simulation of today's design: the ratio's denominator."""
        return self._simulated_widths(Addition())

    def expected(self, addition: Addition) -> tuple[float, float]:
        """The forecast width after `addition`, and its standard error (see the module)."""
        after = self._simulated_widths(addition)
        # A ratio of means: one simulation's width can be 0 (a fit at its bounds). Where every
        # one is (two sizes cannot place three parameters), no forecast moves the width.
        today = float(self.today.mean())
        if not today > 0:
            return self.width, 0.0
        ratio = after.mean() / today
        paired = (after - ratio * self.today) / today
        return self.width * float(ratio), self.width * float(
            paired.std(ddof=1) / np.sqrt(paired.size)
        )

    def _simulated_widths(self, addition: Addition) -> FloatArray:
        """The width in each simulation of today's design plus `addition` (the same curves,
        the same draws for the models today's design has)."""
        settings = self.settings
        made = [
            _simulate(self.data, addition, curve, self.spreads, settings.seed, j)
            for j, curve in enumerate(self.curves)
        ]
        return self._widths(made, np.random.default_rng([settings.seed, 1]))

    def _widths(self, datasets: list[Points], rng: np.random.Generator) -> FloatArray:
        settings = self.settings
        values = _target_values(
            _refits(datasets, self.target, settings.resamples, rng), self.target
        )
        blocks = values.reshape(len(datasets), settings.resamples)
        return np.array([_width(row, settings.confidence) for row in blocks])


def estimate(points: Points, target: Target, settings: Settings = Settings()) -> tuple[float, ...]:
    """The target on `points` and its interval, in its own units (a multiplier as a factor):
    the fit of the data, and the percentiles of 1,000 redraws as the forecasts make them."""
    data = lean(points, target)
    whole = {}
    for arm in target.arms:
        own = data.of_arm(arm)
        whole[arm] = fit_power_law_many(own.size, own.error[None, :])
    rng = np.random.default_rng([settings.seed, 3])
    low, high = interval(_target_values(_refits([data], target, 1000, rng), target), 0.9)
    value = float(_target_values(whole, target)[0])
    if target.kind == MULTIPLIER:
        return float(np.exp(value)), float(np.exp(low)), float(np.exp(high))
    return value, float(low), float(high)


def current_width(points: Points, target: Target, settings: Settings = Settings()) -> float:
    """Today's width of the target's interval, as the forecasts measure it."""
    return Forecaster(points, target, settings).width


def expected_width(
    points: Points, target: Target, addition: Addition, settings: Settings = Settings()
) -> tuple[float, float]:
    """The forecast width of the target after `addition`, and its standard error."""
    return Forecaster(points, target, settings).expected(addition)


def seed_spread(points: Points) -> float:
    """An arm's seed-to-seed standard deviation of the error, beyond the eval problems' noise."""
    n = points.eval_size or 0
    binomial = points.error * (1 - points.error) / n if n else np.zeros(len(points))
    pooled, count = 0.0, 0
    for size in np.unique(points.size):
        at = points.size == size
        if at.sum() >= 2:
            pooled += float(points.error[at].var(ddof=1) - binomial[at].mean()) * (at.sum() - 1)
            count += int(at.sum() - 1)
    if count:
        return float(np.sqrt(max(pooled / count, 0.0)))
    fit = fit_power_law_many(points.size, points.error[None, :])
    residual = points.error - fit.predict(points.size)[0]
    dof = max(len(points) - 3, 1)
    return float(np.sqrt(max(float(residual @ residual) / dof - binomial.mean(), 0.0)))


def _simulate(
    data: Points,
    addition: Addition,
    curve: dict[str, PowerLawParams],
    spreads: dict[str, float],
    seed: int,
    j: int,
) -> Points:
    """Simulation j of today's design plus `addition`: every model, today's and the new ones,
    drawn from the arms' `curve` (one curve each) with their seed spread, then counted on the
    eval problems. Today's models are drawn first from a stream of their own (seeded by
    `seed`, j and the arm), so they come out alike whatever the addition: the forecasts of
    two additions differ by the additions, not by the luck of the draws."""
    problems = addition.eval_problems or data.eval_size or 0
    arms, sizes, seeds, errors = [], [], [], []
    for k, arm in enumerate(curve):
        own = data.of_arm(arm)
        seeds_now = max(int((own.size == size).sum()) for size in np.unique(own.size))
        new = np.concatenate(
            [np.repeat(np.unique(own.size), addition.more_seeds)]
            + [np.full(seeds_now + addition.more_seeds, size) for size in addition.sizes]
            + [np.array(addition.seeds_at, dtype=float)]
        ).astype(float)
        rng = np.random.default_rng([seed, 2, j, k])
        for at in (own.size, new):
            if at.size:
                mean = curve[arm].predict(at)[0] + spreads[arm] * rng.standard_normal(at.size)
                errors.append(rng.binomial(problems, np.clip(mean, 0.0, 1.0)) / problems)
                sizes.append(at)
                arms.append(np.full(at.size, arm, dtype=object))
        seeds += [own.seed, NEW_SEEDS + np.arange(new.size)]
    error = np.concatenate(errors)
    made = replace(
        data,
        arm=np.concatenate(arms),
        size=np.concatenate(sizes),
        seed=np.concatenate(seeds),
        value=data.to_value(error),
        eval_size=problems,
    )
    return replace(made, value=made.to_value(made.clip_error(made.error)))


def _refits(
    datasets: list[Points], target: Target, resamples: int, rng: np.random.Generator
) -> dict[str, PowerLawParams]:
    """Each arm's refits: `resamples` bootstrap redraws of each data set, in one fit per arm
    (data set k's redraws are rows k * resamples onwards)."""
    draws = [resample_errors(data, resamples, rng) for data in datasets]
    fitted = {}
    for arm in target.arms:
        sizes = draws[0][arm].sizes
        if any(d[arm].sizes.shape != sizes.shape or (d[arm].sizes != sizes).any() for d in draws):
            raise ValueError("simulated data sets differ in layout")  # built alike: a bug
        errors = np.concatenate([d[arm].errors for d in draws])
        fitted[arm] = fit_power_law_many(sizes, errors)
    return fitted


def _target_values(fits: dict[str, PowerLawParams], target: Target) -> FloatArray:
    """The target in every refit."""
    arm = fits[target.arm]
    if target.baseline is None:
        return arm.alpha
    size = float(target.size or 0)
    matched = fits[target.baseline].inverse(arm.predict([size])[:, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        log_m = np.log(matched / size)
    # A redraw whose arm beats the baseline's floor has m = inf: the bound keeps it ranked.
    return np.clip(np.nan_to_num(log_m, nan=LOG_M_BOUND), -LOG_M_BOUND, LOG_M_BOUND)


def _width(values: FloatArray, confidence: float) -> float:
    low, high = interval(values, confidence)
    return float(high - low)


def _row(params: PowerLawParams, j: int) -> PowerLawParams:
    pick = slice(j, j + 1)
    return PowerLawParams(
        params.E[pick],
        params.A[pick],
        params.alpha[pick],
        params.loss[pick],
        params.converged[pick],
    )
