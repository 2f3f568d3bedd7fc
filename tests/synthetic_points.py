"""Synthetic experiments whose truth is known, for the analysis tests.

Per-problem 0/1 outcomes of every (arm, size, seed) model: a model's error rate is the curve
``E + A * (k D)^-alpha`` of its arm's data factor k, times its seed's noise; problems share a
difficulty, so models err on the same hard problems, as on a real eval set.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from analysis.points import Points

CURVE = (0.05, 6.0, 0.5)


def true_error(D, factor: float = 1.0, curve=CURVE):
    E, A, alpha = curve
    return E + A * (factor * np.asarray(D, dtype=float)) ** -alpha


def synthetic_points(
    rng: np.random.Generator,
    factors: dict[str, float],
    *,
    sizes=(250, 500, 1000, 2000, 4000, 8000),
    seeds: int = 3,
    problems: int = 400,
    seed_noise: float = 0.05,
    curve=CURVE,
    sources: dict[str, str] | None = None,
) -> Points:
    """``factors``: arm -> k; ``sources``: arm -> source facet (default: teacher)."""
    difficulty = rng.normal(size=problems)
    rows = [(arm, size, seed) for arm in factors for size in sizes for seed in range(seeds)]
    rates = np.array(
        [
            true_error(size, factors[arm], curve) * np.exp(rng.normal(0, seed_noise))
            for arm, size, _ in rows
        ]
    )
    threshold = norm.ppf(1 - np.clip(rates, 1e-6, 1 - 1e-6)) * np.sqrt(2)
    wrong = difficulty[None, :] + rng.normal(size=(len(rows), problems)) > threshold[:, None]
    outcomes = (~wrong).astype(float)
    arms = [arm for arm, _, _ in rows]
    return Points(
        metric="accuracy",
        higher_is_better=True,
        arm=np.array(arms),
        size=np.array([size for _, size, _ in rows], dtype=float),
        seed=np.array([seed for _, _, seed in rows]),
        value=outcomes.mean(axis=1),
        facets={
            "source": np.array([(sources or {}).get(a, "teacher") for a in arms], dtype=object),
            "algorithm": np.array([a.rpartition(":")[2] for a in arms], dtype=object),
        },
        outcomes=outcomes,
        eval_size=problems,
    )
