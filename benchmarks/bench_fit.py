"""Throughput of the power-law fits: single fits, and many curves through the batched path.

Prints fits per second (median over repeats). The reference workload is a bootstrap of
100 curves x 1000 resamples, i.e. 1e5 fits; the last line says how long that would take.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from analysis.fit import fit_power_law, fit_power_law_batch

SIZES = np.repeat([125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0], 3)
REPEATS = 5
SINGLE_FITS_PER_REPEAT = 20
BATCH_CURVES = 200
BOOTSTRAP_FITS = 100 * 1000


def noisy_curves(n_curves: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    clean = 0.15 + 4.0 * SIZES**-0.45
    return clean * np.exp(rng.normal(0.0, 0.03, (n_curves, SIZES.size)))


def median_rate(run, n_fits: int) -> float:
    """Median fits/s over REPEATS timed runs of ``run`` (which performs ``n_fits`` fits)."""
    rates = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run()
        rates.append(n_fits / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    curves = noisy_curves(max(SINGLE_FITS_PER_REPEAT, BATCH_CURVES))
    fit_power_law(SIZES, curves[0])  # import scipy and warm caches outside the timing

    single = median_rate(
        lambda: [fit_power_law(SIZES, row) for row in curves[:SINGLE_FITS_PER_REPEAT]],
        SINGLE_FITS_PER_REPEAT,
    )
    single_zero = median_rate(
        lambda: [
            fit_power_law(SIZES, row, fix_E_zero=True) for row in curves[:SINGLE_FITS_PER_REPEAT]
        ],
        SINGLE_FITS_PER_REPEAT,
    )
    batch = median_rate(lambda: fit_power_law_batch(SIZES, curves[:BATCH_CURVES]), BATCH_CURVES)

    print(f"fit_power_law          {single:8.1f} fits/s  ({SIZES.size} points, 7 sizes)")
    print(f"fit_power_law E=0      {single_zero:8.1f} fits/s")
    print(f"fit_power_law_batch    {batch:8.1f} fits/s  ({BATCH_CURVES} curves per call)")
    bootstrap_seconds = BOOTSTRAP_FITS / batch
    print(f"bootstrap of {BOOTSTRAP_FITS:.0e} fits at the batched rate: {bootstrap_seconds:.0f} s")


if __name__ == "__main__":
    main()
