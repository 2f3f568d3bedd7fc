"""Bootstrap resamples of the points, over eval problems and over seeds.

Design
------
A resample redraws two things independently:

* The eval problems: n problems drawn with replacement, the same draw for every model. Arms were
  measured on the same problems, so they are compared on the same resampled problems; a hard
  problem drawn twice counts against every model alike.
* The seeds: within each (arm, size), as many seeds as there are, drawn with replacement. The
  draws are shared by position: the j-th seed slot at size D uses the same random number in every
  arm, so arms that ran the same seeds at D redraw the same seeds (which trained on the same
  data subsets).

Without per-problem outcomes (points read from a CSV), a value is redrawn as
``Binomial(eval_size, value) / eval_size`` when the eval set's size is known; otherwise only the
seeds are redrawn. Every resample keeps the data's sizes and counts, so all resamples of an arm
are refitted in one call of :func:`analysis.fit_many.fit_power_law_many`.

The problem redraw is one matrix product: outcomes (models x problems) times the problem counts
of every resample (problems x resamples).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.points import Points
from analysis.power_law import FloatArray


@dataclass(frozen=True)
class ArmResamples:
    """One arm's resampled errors: ``errors[r, j]`` is slot j of resample r."""

    sizes: FloatArray
    """Size of each slot (the arm's models in size, then seed order)."""
    errors: FloatArray
    """(resamples, slots)."""


def can_resample(points: Points) -> bool:
    """Whether a resample can differ from the data: outcomes, an eval size, or repeated seeds."""
    if points.outcomes is not None or points.eval_size:
        return True
    return len(set(zip(points.arm.tolist(), points.size.tolist(), strict=True))) < len(points)


def resample_errors(
    points: Points, resamples: int, rng: np.random.Generator
) -> dict[str, ArmResamples]:
    """``resamples`` bootstrap draws of every arm's errors."""
    model_errors = _problem_resampled_errors(points, resamples, rng)  # (resamples, models)
    all_sizes = np.unique(points.size)
    slots = _slots_by_arm(points)
    most_seeds = max(len(group) for groups in slots.values() for group in groups)
    seed_draws = rng.random((resamples, all_sizes.size, most_seeds))
    out = {}
    for arm, groups in slots.items():
        cells = []
        for group in groups:  # one size: the arm's models at it, by seed
            column = np.searchsorted(all_sizes, points.size[group[0]])
            picks = group[(seed_draws[:, column, : len(group)] * len(group)).astype(int)]
            cells.append(_calibrated(points, model_errors, group, picks))
        out[arm] = ArmResamples(
            sizes=points.size[np.concatenate(groups)], errors=np.concatenate(cells, axis=1)
        )
    return out


def _calibrated(
    points: Points, model_errors: FloatArray, group: np.ndarray, picks: np.ndarray
) -> FloatArray:
    """One (arm, size) cell's resampled errors (resamples, seeds), scaled about the cell's data
    mean so that the variance of the mean matches the two-way random-effects estimate.

    Redrawing seeds and problems together (Owen's pigeonhole bootstrap of a crossed design)
    counts the noise that is neither a seed's nor a problem's own (one model's luck on one
    problem) once through each redraw, and the seed redraw alone shrinks a variance by
    (n - 1) / n: with 3 seeds and little seed-to-seed spread the intervals come out twice too
    wide, with large spread too narrow. The ANOVA of the cell's models x problems table gives
    the variance of its mean without either bias, (MS_seeds + MS_problems - MS_residual) / (n C)
    (each component floored at 0); the resamples are scaled to it about the data mean. Without
    per-problem outcomes, the seeds' sample variance over n stands in.
    """
    both = np.take_along_axis(model_errors, picks, axis=1)
    n = len(group)
    means = both.mean(axis=1)
    variance_both = means.var()
    # Draws whose means all agree (every redraw picked the same seeds in some order) have no
    # spread to scale; their variance is rounding noise, and dividing by it sent errors to
    # inf and 0.
    if n < 2 or np.ptp(means) <= 1e-9 * np.abs(means).max():
        return both
    if points.outcomes is not None and points.outcomes.shape[1] >= 2:
        target = _mean_variance_two_way(points.outcomes[group])
    else:
        target = points.error[group].var(ddof=1) / n
    if not np.isfinite(target):
        return both
    # Scaled where the errors cannot leave their range: in log space for a positive error, in
    # log-odds for a score's error, which lies in [0, 1] (scaling in log space there took an
    # error of 0.59 to an interval ending at 1.03). A ratio of variances carries over from the
    # linear scale to first order either way.
    to_scale, from_scale = _scale_for(points)
    centre = to_scale(points.error[group].mean())
    return from_scale(centre + np.sqrt(target / variance_both) * (to_scale(both) - centre))


def _scale_for(points: Points):
    """The transform in which resamples are scaled, and its inverse."""
    if not points.higher_is_better:
        return np.log, np.exp
    edge = points.error_floor or 1e-9

    def log_odds(error):
        clipped = np.clip(error, edge, 1.0 - edge)
        return np.log(clipped) - np.log1p(-clipped)

    def from_log_odds(value):
        return np.maximum(1.0 / (1.0 + np.exp(-value)), points.error_floor)

    return log_odds, from_log_odds


def _mean_variance_two_way(table: FloatArray) -> float:
    """Variance of the grand mean of a models x problems table with random model and problem
    effects: sigma_A^2 / n + sigma_B^2 / C + sigma_E^2 / (n C), from the ANOVA mean squares."""
    if np.isnan(table).any():
        return float("nan")
    n, c = table.shape
    rows, columns, grand = table.mean(axis=1), table.mean(axis=0), table.mean()
    residual = table - rows[:, None] - columns[None, :] + grand
    ms_rows = c * ((rows - grand) ** 2).sum() / (n - 1)
    ms_columns = n * ((columns - grand) ** 2).sum() / (c - 1)
    ms_residual = (residual**2).sum() / ((n - 1) * (c - 1))
    model_part = max(ms_rows - ms_residual, 0.0) / c
    problem_part = max(ms_columns - ms_residual, 0.0) / n
    return float(model_part / n + problem_part / c + ms_residual / (n * c))


def interval(
    samples: FloatArray, confidence: float, axis: int = 0
) -> tuple[FloatArray, FloatArray]:
    """Percentile interval. Order statistics, not interpolation, so an infinite multiplier
    (a resample whose arm beats the baseline's floor) is a bound rather than a nan."""
    tail = (1.0 - confidence) / 2.0
    low, high = np.nanquantile(samples, [tail, 1.0 - tail], axis=axis, method="inverted_cdf")
    return low, high


def _slots_by_arm(points: Points) -> dict[str, list[np.ndarray]]:
    """Per arm, per size (ascending): the indices of its models, ordered by seed."""
    out = {}
    for arm in points.arms:
        models = np.flatnonzero(points.arm == arm)
        models = models[np.lexsort((points.seed[models], points.size[models]))]
        sizes = points.size[models]
        boundaries = np.flatnonzero(np.diff(sizes)) + 1
        out[arm] = np.split(models, boundaries)
    return out


def _problem_resampled_errors(
    points: Points, resamples: int, rng: np.random.Generator
) -> FloatArray:
    """(resamples, models): every model's error under each resample's redraw of problems."""
    if points.outcomes is not None:
        n_problems = points.outcomes.shape[1]
        counts = rng.multinomial(n_problems, np.full(n_problems, 1.0 / n_problems), resamples)
        counts = counts.astype(float).T  # (problems, resamples)
        measured = ~np.isnan(points.outcomes)
        correct = np.where(measured, points.outcomes, 0.0) @ counts
        drawn = measured.astype(float) @ counts
        with np.errstate(invalid="ignore", divide="ignore"):
            value = correct / drawn  # a model missing every drawn problem: nan
        value = np.where(np.isfinite(value), value, points.value[:, None])
        return points.to_error(value.T)
    if points.eval_size:
        n = points.eval_size
        p = np.clip(points.error, 0.0, 1.0)
        return np.maximum(rng.binomial(n, p, (resamples, p.size)) / n, points.error_floor)
    return np.broadcast_to(points.error, (resamples, len(points))).copy()
