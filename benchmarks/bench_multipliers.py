"""Multipliers recovered on synthetic curves whose truth is known: coverage and width.

Each draw is a synthetic experiment (tests/synthetic_points.py: per-problem outcomes of 400
shared eval problems, 6 sizes x 3 seeds, seed noise 0.1) with a baseline and an arm whose data
are worth FACTOR times the baseline's. Three readings of the same draws, in the same process:

* per-arm: m(1000) from the two arms' separate power fits (`--form power`);
* shared: m from the joint fit with E, A, alpha shared (`--form shared`);
* single point: the arm measured at D = 1000 only, m from the baseline's inverted curve.

For each: how often the 80% interval holds the true factor (nominal 0.80), the median of the
estimates, and the median interval width (high / low, a ratio since m is a ratio).

Run: `.venv/bin/python benchmarks/bench_multipliers.py [draws]` (default 100; ~5 min).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from analysis.scaling import analyse  # noqa: E402
from analysis.settings import AnalysisSettings  # noqa: E402
from synthetic_points import synthetic_points  # noqa: E402

FACTOR, CONFIDENCE, SIZE, RESAMPLES = 3.0, 0.8, 1000, 200


def draw_readings(draw: int) -> dict[str, tuple[float, float, float]]:
    """(value, low, high) of each reading on synthetic draw `draw`."""
    rng = np.random.default_rng(1000 + draw)
    points = synthetic_points(rng, {"sft": 1.0, "rft": FACTOR}, seed_noise=0.1)
    settings = AnalysisSettings(resamples=RESAMPLES, confidence=CONFIDENCE, sizes=[SIZE], seed=draw)
    readings = {}
    for name, form in (("per-arm", "power"), ("shared", "shared")):
        (m,) = analyse(points, settings.model_copy(update={"form": form}), "bench").multipliers
        readings[name] = (m.value, m.low, m.high)
    single = points.select((points.arm == "sft") | (points.size == SIZE))
    (m,) = analyse(single, settings, "bench").multipliers
    readings["single point"] = (m.value, m.low, m.high)
    return readings


def main() -> None:
    draws = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    start = time.perf_counter()
    results: dict[str, list[tuple[float, float, float]]] = {}
    for draw in range(draws):
        for name, reading in draw_readings(draw).items():
            results.setdefault(name, []).append(reading)
    print(
        f"{draws} synthetic experiments, true factor {FACTOR:g}, {CONFIDENCE:.0%} intervals "
        f"from {RESAMPLES} resamples, m at D = {SIZE} ({time.perf_counter() - start:.0f} s)"
    )
    print(f"{'reading':14} {'coverage':>9} {'median m':>9} {'median high/low':>16}")
    for name, readings in results.items():
        values, lows, highs = (np.array(column) for column in zip(*readings, strict=True))
        coverage = float(np.mean((lows <= FACTOR) & (FACTOR <= highs)))
        width = statistics.median((highs / lows).tolist())
        print(f"{name:14} {coverage:9.2f} {statistics.median(values.tolist()):9.2f} {width:16.2f}")


if __name__ == "__main__":
    main()
