"""Fits and the bootstrap: single fits, vectorised refits, and a whole analysis of 100 curves
x 1,000 resamples (the target: <= 30 s on 2 cores).

The whole analysis is what `scaler fit` does: 100 arms of 6 sizes x 3 seeds with per-problem
outcomes on 500 eval problems; every resample redraws problems and seeds and is refitted in all
three forms, and the multipliers of 99 arms over the first come with intervals. The baseline in
the same process is the same refits done one L-BFGS-B fit at a time, timed on a sample and
scaled up.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from analysis.fit import fit_power_law
from analysis.fit_many import fit_power_law_many
from analysis.points import Points
from analysis.scaling import analyse
from analysis.settings import AnalysisSettings

SIZES = np.repeat([125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0], 3)
ARMS, RESAMPLES, PROBLEMS = 100, 1000, 500
REPEATS = 3


def noisy_curves(n_curves: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    E, A = rng.uniform(0.02, 0.3, n_curves), rng.uniform(1, 10, n_curves)
    alpha = rng.uniform(0.2, 1.0, n_curves)
    clean = E[:, None] + A[:, None] * SIZES ** -alpha[:, None]
    return clean * np.exp(rng.normal(0.0, 0.05, clean.shape))


def synthetic_experiment(seed: int = 0) -> Points:
    """ARMS arms whose error curves differ by a data factor; per-problem 0/1 outcomes."""
    rng = np.random.default_rng(seed)
    factors = np.geomspace(1.0, 4.0, ARMS)
    rates = np.concatenate([0.05 + 6.0 * (f * SIZES) ** -0.5 for f in factors])
    rates = rates * np.exp(rng.normal(0.0, 0.1, rates.size))
    outcomes = (rng.random((rates.size, PROBLEMS)) >= rates[:, None]).astype(float)
    arms = np.repeat(["sft"] + [f"arm{i}" for i in range(1, ARMS)], SIZES.size)
    return Points(
        metric="accuracy",
        higher_is_better=True,
        arm=arms,
        size=np.tile(SIZES, ARMS),
        seed=np.tile([0, 1, 2], ARMS * SIZES.size // 3),
        value=outcomes.mean(axis=1),
        outcomes=outcomes,
        eval_size=PROBLEMS,
    )


def median_seconds(run) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    curves = noisy_curves(2000)
    fit_power_law(SIZES, curves[0])  # import scipy and warm caches outside the timing

    single = median_seconds(lambda: [fit_power_law(SIZES, row) for row in curves[:20]]) / 20
    delta = fit_power_law(SIZES, curves[0]).delta
    single_fixed = (
        median_seconds(lambda: [fit_power_law(SIZES, row, delta=delta) for row in curves[:20]]) / 20
    )
    many = median_seconds(lambda: fit_power_law_many(SIZES, curves, delta=delta)) / len(curves)
    many_e0 = median_seconds(
        lambda: fit_power_law_many(SIZES, curves, fix_E_zero=True, delta=delta)
    ) / len(curves)
    print(f"fit_power_law (delta from the data)      {1 / single:8.1f} fits/s")
    print(f"fit_power_law (given delta)              {1 / single_fixed:8.1f} fits/s")
    print(f"fit_power_law_many (2,000 curves)        {1 / many:8.0f} fits/s")
    print(f"fit_power_law_many, E = 0                {1 / many_e0:8.0f} fits/s")
    print(f"ratio many / single (given delta)        {single_fixed / many:8.0f}x")

    points = synthetic_experiment()
    settings = AnalysisSettings(resamples=RESAMPLES, sizes=[500, 1000, 2000])
    analyse(points, AnalysisSettings(resamples=10), "bench")  # warm-up
    whole = median_seconds(lambda: analyse(points, settings, "bench"))
    refits = ARMS * RESAMPLES * 2  # two power-law forms; log-linear is one lstsq per arm
    print(
        f"analysis of {ARMS} curves x {RESAMPLES} resamples (all forms, multipliers): "
        f"{whole:.1f} s (median of {REPEATS}); one L-BFGS-B fit at a time would take "
        f"~{refits * single_fixed:.0f} s"
    )


if __name__ == "__main__":
    main()
