"""Does the demo show the point? Checks a finished `make demo` against what it promises.

    .venv/bin/python benchmarks/check_demo.py [EXPERIMENT] [--results DIR]   # default: demo

Reads the experiment's DuckDB file and fits it as `scaler fit` does (without saving), then
prints each check with its figure and PASS or FAIL (exit 1 if any fails):
- every seed's curve rises with the data size;
- no size's mean accuracy is at chance (within 0.05 of the world's 1 / modulus) or above 0.95;
- the power form describes the seed means (R^2 of the fitted curve at the means >= 0.95;
  `scaler fit` prints R^2 over every model, seeds apart, which is lower) and the hold-out
  error of the largest size is within 15%;
- the multiplier of each arm over the baseline at the middle sizes has a 90% interval whose
  high / low ratio is at most 1.5;
- and, for comparison, not as a check: the fitted exponent against the world's predicted
  (a - 1) / a and the ideal learner's own curve over the same sizes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from analysis.experiment import open_experiment  # noqa: E402
from runners.worlds.skill_law import SkillLaw  # noqa: E402

CHANCE_MARGIN = 0.05
TOP = 0.95
MIN_R_SQUARED = 0.95
MAX_HOLDOUT = 0.15
MAX_INTERVAL_RATIO = 1.5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", nargs="?", default="demo")
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args()
    experiment = open_experiment(args.experiment, args.results)
    world = json.loads(experiment.layout.spec_file.read_text())["world"]
    checks: list[tuple[str, bool]] = []

    def check(text: str, ok: bool) -> None:
        checks.append((text, bool(ok)))

    curves = experiment.sql(
        "SELECT algorithm, seed, list(accuracy ORDER BY size) FROM evals "
        "GROUP BY algorithm, seed ORDER BY algorithm, seed"
    )
    for algorithm, seed, accuracies in curves.fetchall():
        rising = all(b > a for a, b in zip(accuracies, accuracies[1:], strict=False))
        check(f"{algorithm} seed {seed} rises: {_row(accuracies)}", rising)

    result = experiment.analyse(save=False)
    low_end = 1 / world.get("modulus", 11) + CHANCE_MARGIN
    for arm in result.fitted_arms:
        sizes = np.array([m.size for m in arm.means])
        errors = np.array([m.error for m in arm.means])
        means = 1 - errors
        band = np.all(means > low_end) and np.all(means <= TOP)
        check(f"{arm.arm} means within ({low_end:.2f}, {TOP}]: {_row(means)}", band)
        fit = arm.fits["power"]
        predicted = fit.predict_error(result.points, sizes)
        r_squared = 1 - ((errors - predicted) ** 2).sum() / ((errors - errors.mean()) ** 2).sum()
        every_model = fit.quality["r_squared"]
        text = (
            f"{arm.arm} power R^2 on the seed means {r_squared:.3f} (every model {every_model:.3f})"
        )
        check(text, r_squared >= MIN_R_SQUARED)
        holdout = fit.quality["holdout_error"]
        check(f"{arm.arm} hold-out error {holdout:+.1%}", abs(holdout) <= MAX_HOLDOUT)
        alpha, (low, high) = fit.params["alpha"], fit.intervals["alpha"]
        print(f"{arm.arm}: fitted exponent {alpha:.3f} [{low:.3f}, {high:.3f}]")
        print(_predicted(world, sizes))

    middle = sorted({m.size for m in result.multipliers})[1:-1]
    for m in result.multipliers:
        if m.size in middle and m.low and m.high:
            ratio = m.high / m.low
            interval = f"{m.value:.3g} [{m.low:.3g}, {m.high:.3g}], high / low {ratio:.2f}"
            check(
                f"{m.arm} over {m.baseline} at {m.size:g}: {interval}", ratio <= MAX_INTERVAL_RATIO
            )
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for _, ok in checks) else 1


def _predicted(world: dict, sizes: np.ndarray) -> str:
    skills = world.get("skills")
    if not skills:
        return "  (a world without skills predicts no exponent)"
    law = SkillLaw(
        skills=skills["count"],
        zipf=skills["zipf"],
        per_problem=skills["per_problem"],
        chance=1 / world.get("modulus", 11),
    )
    ideal = law.expected_error(sizes)
    local = -np.polyfit(np.log(sizes), np.log(ideal), 1)[0]
    return (
        f"  the world predicts {law.exponent:.3f} (its asymptote); the ideal learner's exact "
        f"curve falls as {local:.3f} over these sizes"
    )


def _row(values) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


if __name__ == "__main__":
    sys.exit(main())
