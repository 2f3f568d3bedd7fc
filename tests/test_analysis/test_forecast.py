"""Forecasts of a target's interval width (analysis.forecast) on synthetic worlds whose right
answer is known: where the noise comes from decides what narrows an interval most."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.forecast import Addition, Settings, Target, current_width, expected_width
from analysis.points import Points


def world(
    sizes: list[float],
    seeds: int,
    *,
    eval_size: int = 500,
    spread: float = 0.0,
    multiplier: float = 3.0,
    seed: int = 0,
) -> Points:
    """sft: error 0.05 + 2 D^-0.5; rft: sft's at multiplier x D. Each model moves by `spread`
    (its seed's luck) and is then counted on `eval_size` problems."""
    rng = np.random.default_rng(seed)
    rows = []
    for arm, factor in (("sft", 1.0), ("rft", multiplier)):
        for size in sizes:
            for s in range(seeds):
                mean = 0.05 + 2.0 * (factor * size) ** -0.5 + spread * rng.standard_normal()
                error = rng.binomial(eval_size, np.clip(mean, 0.0, 1.0)) / eval_size
                rows.append((arm, size, s, 1.0 - error))
    arm, size, seed_of, value = zip(*rows, strict=True)
    return Points(
        "accuracy", True, np.array(arm, dtype=object), np.array(size, dtype=float),
        np.array(seed_of), np.array(value), eval_size=eval_size,
    )  # fmt: skip


def _forecasts(points: Points, target: Target, *additions: Addition) -> list[float]:
    settings = Settings(simulations=24, resamples=100)
    return [expected_width(points, target, addition, settings)[0] for addition in additions]


@pytest.mark.parametrize("seed", [0, 1])
def test_a_size_near_an_extrapolated_target_is_worth_more_than_seeds(seed):
    points = world([100, 200, 400], 2, spread=0.005, seed=seed)
    target = Target("rft", "sft", 3200.0)  # far beyond the largest size fitted
    near, more_seeds = _forecasts(points, target, Addition(sizes=(3200.0,)), Addition(more_seeds=1))
    assert near < more_seeds
    assert near < current_width(points, target)


SIX_SIZES = [100, 200, 400, 800, 1600, 3200]


@pytest.mark.parametrize(
    "eval_size, spread, seed, worth_more",
    [
        # Seeds differ by 0.01 in error; 10,000 problems leave a binomial sd of 0.003.
        (10_000, 0.01, 1, "seeds"),
        # No seed-to-seed spread; 100 problems leave a binomial sd of about 0.03.
        (100, 0.0, 2, "problems"),
    ],
)
def test_what_narrows_an_exponent_most_is_where_its_noise_comes_from(
    eval_size, spread, seed, worth_more
):
    points = world(SIX_SIZES, 2, eval_size=eval_size, spread=spread, seed=seed)
    seeds, problems = _forecasts(
        points, Target("rft"), Addition(more_seeds=2), Addition(eval_problems=4 * eval_size)
    )
    assert (seeds < problems) == (worth_more == "seeds")


def test_the_width_of_the_data_does_not_hang_on_the_bootstrap_seed():
    points = world([100, 200, 400, 800], 2, spread=0.01, seed=5)
    target = Target("rft", "sft", 400.0)
    widths = [current_width(points, target, Settings(seed=seed)) for seed in range(3)]
    assert max(widths) - min(widths) < 0.15 * np.mean(widths)


def test_a_target_outside_the_points_is_refused_by_name():
    points = world([100, 200], 1)
    with pytest.raises(KeyError, match="no arm 'dpo'; the arms are sft, rft"):
        current_width(points, Target("dpo"))
