"""The advisor against a uniform grid, on synthetic worlds whose curves are known.

    .venv/bin/python benchmarks/bench_suggest.py [--worlds 24]

Each world has a baseline (sft) with error E + A * D^-alpha and an arm (rft) whose error is the
baseline's at m x D, so the arm's multiplier is m at every size; each model moves by the world's
seed spread and is counted on 500 eval problems (binomial). Exponent, floor, seed spread and
multiplier vary from world to world. The target is the multiplier at D = 800; the sizes on
offer are 100 ... 3200 (doubling). A model costs its size (its training data) plus 50 per 500
eval problems (its evaluation), for each of the two arms.

- Uniform: the whole grid of sizes, one seed more each round, until the target's interval is
  narrower than the world's goal (measured as scaler suggest measures it, the mean width of
  bootstrap rounds of the data).
- Adaptive: from a thin grid (100, 400, 1600, one seed), each round adds the candidate that
  scaler suggest ranks first by narrowing per unit of cost (a size of the grid not yet run, one
  seed more at every size run, or, with `--eval-problems`, twice the eval problems, up to 4,000:
  every model evaluated again on all of them, as a spec without shards pays), until the same
  goal.

The goal of each world is the width the uniform grid reaches with three seeds (the median of
three realizations); each loop then runs on draws of its own (the uniform one up to 8 seeds).
Reported: the median over worlds of uniform cost / adaptive cost (a world the adaptive loop does
not finish within 4x the uniform cost counts at that cap), and how often the final 90% interval
of each loop covers the true multiplier.

`--one-size-seeds` adds a seed more at one size (of those run) to the adaptive loop's menu, as
scaler suggest offers it. `--one-size` measures instead what the forecasts can tell of such a
seed: on every size with two seeds, the narrowing each size's extra seed is forecast to bring,
against the forecast's standard error, beside a seed more at every size. `--realization K`
draws the worlds' models anew (the curves stay), to see how much a figure owes to one draw.
`--fixed-coverage` measures how often the interval covers the truth in designs fixed
beforehand, with no loop that stops when it first looks narrow.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from analysis.bootstrap import interval  # noqa: E402
from analysis.forecast import (  # noqa: E402
    Addition,
    Forecaster,
    Settings,
    Target,
    _refits,
    _target_values,
    lean,
)
from analysis.points import Points  # noqa: E402
from common import machine  # noqa: E402

SIZES = (100, 200, 400, 800, 1600, 3200)
THIN = (100, 400, 1600)
TARGET = Target("rft", "sft", 800.0)
EVAL = 500
EVAL_COST = 50
"""The cost of evaluating one model on EVAL problems."""
MOST_EVAL = 4000
SETTINGS = Settings(simulations=16, resamples=100)
MAX_SEEDS = 8


class World:
    def __init__(self, index: int, draws: int) -> None:
        rng = np.random.default_rng(1000 + index)
        self.alpha = float(rng.uniform(0.3, 0.8))
        self.floor = float(rng.uniform(0.02, 0.15))
        self.spread = float(rng.choice([0.0, 0.01, 0.02]))
        self.m = float(rng.choice([1.5, 2.0, 3.0, 5.0]))
        # A such that the baseline's error at D = 100 is 0.5.
        self.A = (0.5 - self.floor) * 100**self.alpha
        self.rng = np.random.default_rng([2000 + index, draws])
        self.errors: dict[tuple[str, int, int], float] = {}
        """Each model's true error (its seed's draw included)."""
        self.models: dict[tuple[str, int, int], float] = {}
        """Each model's error as counted on the eval problems."""
        self.eval_size = EVAL

    def error(self, arm: str, size: int) -> float:
        data = size * (self.m if arm == "rft" else 1.0)
        return self.floor + self.A * data**-self.alpha

    def measure(self, size: int, seed: int) -> None:
        for arm in ("sft", "rft"):
            if (arm, size, seed) not in self.models:
                error = self.error(arm, size) + self.spread * self.rng.standard_normal()
                self.errors[(arm, size, seed)] = float(np.clip(error, 0.0, 1.0))
                self._count((arm, size, seed))

    def evaluate_on(self, problems: int) -> None:
        """Every model evaluated again, on `problems` eval problems."""
        self.eval_size = problems
        for key in self.models:
            self._count(key)

    def _count(self, key: tuple[str, int, int]) -> None:
        count = self.rng.binomial(self.eval_size, self.errors[key])
        self.models[key] = count / self.eval_size

    def points(self) -> Points:
        keys = sorted(self.models)
        return Points(
            "accuracy", True,
            np.array([k[0] for k in keys], dtype=object),
            np.array([k[1] for k in keys], dtype=float),
            np.array([k[2] for k in keys]),
            np.array([1.0 - self.models[k] for k in keys]),
            eval_size=self.eval_size,
        )  # fmt: skip


def cost(sizes: list[int], seeds: int, eval_size: int = EVAL) -> float:
    """Training and evaluating both arms' models of the grid."""
    return 2 * seeds * sum(size + EVAL_COST * eval_size / EVAL for size in sizes)


def evaluations(models: int, eval_size: int) -> float:
    """Evaluating both arms' `models` again (each arm's), on `eval_size` problems."""
    return 2 * models * EVAL_COST * eval_size / EVAL


def width(world: World) -> float:
    return Forecaster(world.points(), TARGET, SETTINGS).width


def covers(world: World) -> bool:
    data = lean(world.points(), TARGET)
    values = _target_values(_refits([data], TARGET, 1000, np.random.default_rng(7)), TARGET)
    low, high = interval(values, 0.9)
    return bool(low <= np.log(world.m) <= high)


def uniform(
    world: World, goal: float | None, rounds: int, eval_size: int = EVAL
) -> tuple[float, float, bool]:
    """Seeds added over the whole grid, evaluated on `eval_size` problems, until the goal (or
    `rounds`); (cost, width, covers)."""
    world.eval_size = eval_size
    for seeds in range(1, rounds + 1):
        for size in SIZES:
            world.measure(size, seeds - 1)
        now = width(world)
        if goal is not None and now < goal:
            break
    return cost(list(SIZES), seeds, eval_size), now, covers(world)


def adaptive(
    world: World, goal: float, cap: float, more_problems: bool, one_size: bool = False
) -> tuple[float, float, bool, list[str]]:
    sizes, seeds = list(THIN), 1
    one_size_seeds = dict.fromkeys(SIZES, 0)
    """Seeds run at one size besides the `seeds` of every size."""
    for size in sizes:
        world.measure(size, 0)
    spent = cost(sizes, seeds)
    steps = []
    while True:
        forecaster = Forecaster(world.points(), TARGET, SETTINGS)
        if forecaster.width < goal or spent >= cap:
            return spent, forecaster.width, covers(world), steps
        n = world.eval_size
        options = [
            (Addition(sizes=(float(s),)), cost([s], seeds, n)) for s in SIZES if s not in sizes
        ]
        options.append((Addition(more_seeds=1), cost(sizes, 1, n)))
        if one_size:
            options += [(Addition(seeds_at=(float(s),)), cost([s], 1, n)) for s in sizes]
        if more_problems and n < MOST_EVAL:
            models = seeds * len(sizes) + sum(one_size_seeds.values())
            options.append((Addition(eval_problems=2 * n), evaluations(models, 2 * n)))
        best = None
        for addition, extra in options:
            predicted, _ = forecaster.expected(addition)
            score = (forecaster.width - predicted) / extra
            if best is None or score > best[0]:
                best = (score, addition, extra)
        assert best is not None
        _, addition, extra = best
        spent += extra
        steps.append(str(addition))
        if addition.eval_problems:
            world.evaluate_on(addition.eval_problems)
        sizes = sorted({*sizes, *map(int, addition.sizes)})
        seeds += addition.more_seeds
        for size in addition.seeds_at:
            one_size_seeds[int(size)] += 1
        for size in sizes:
            for seed in range(seeds + one_size_seeds[size]):
                world.measure(size, seed)


def one_size(worlds: int) -> None:
    """Forecast narrowing of a seed more at one size, and at every size, over its standard error
    (the settings scaler suggest uses), on the whole grid with two seeds."""
    one, every = [], []
    for index in range(worlds):
        world = World(index, 1)
        for seed in (0, 1):
            for size in SIZES:
                world.measure(size, seed)
        forecaster = Forecaster(world.points(), TARGET)
        for addition, into in [(Addition(seeds_at=(float(s),)), one) for s in SIZES] + [
            (Addition(more_seeds=1), every)
        ]:
            predicted, error = forecaster.expected(addition)
            into.append(
                ((forecaster.width - predicted) / forecaster.width, error / forecaster.width)
            )
    for name, rows in (("a seed more at one size", one), ("a seed more at every size", every)):
        gain, error = np.array(rows).T
        print(
            f"{name}: forecast narrowing median {np.median(gain):.1%}, its standard error "
            f"median {np.median(error):.1%}; narrowing above twice its error in "
            f"{np.mean(gain > 2 * error):.0%} of {len(rows)} forecasts"
        )


def fixed_coverage(worlds: int) -> None:
    """How often the final interval covers the truth in designs fixed beforehand (no loop that
    stops when it looks narrow), three draws of each world."""
    designs = {
        "the uniform grid, three seeds": (SIZES, 3),
        "the uniform grid, one seed": (SIZES, 1),
        "the thin grid, one seed": (THIN, 1),
    }
    for k, (name, (sizes, seeds)) in enumerate(designs.items()):
        hits = []
        for index in range(worlds):
            for draws in (1, 2, 3):
                world = World(index, 100 * (k + 1) + draws)
                for seed in range(seeds):
                    for size in sizes:
                        world.measure(size, seed)
                hits.append(covers(world))
        print(f"{name}: the 90% interval covers the truth in {sum(hits)}/{len(hits)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worlds", type=int, default=24)
    parser.add_argument(
        "--eval-problems", action="store_true", help="offer more eval problems (up to 4,000)"
    )
    parser.add_argument(
        "--uniform-eval",
        type=int,
        default=EVAL,
        help="eval problems of the uniform grid it is measured against (its goal stays the "
        f"width of the grid on {EVAL})",
    )
    parser.add_argument(
        "--one-size", action="store_true", help="what the forecasts tell of a seed at one size"
    )
    parser.add_argument(
        "--fixed-coverage", action="store_true", help="coverage of designs fixed beforehand"
    )
    parser.add_argument(
        "--one-size-seeds", action="store_true", help="offer a seed more at one size too"
    )
    parser.add_argument(
        "--realization",
        type=int,
        default=0,
        help="which draws of the worlds' models (the curves stay): how much the figures owe "
        "to the luck of one realization",
    )
    args = parser.parse_args()
    print(f"machine: {machine()}")
    if args.one_size or args.fixed_coverage:
        (one_size if args.one_size else fixed_coverage)(args.worlds)
        return
    started = time.perf_counter()
    ratios, adaptive_cover, uniform_cover = [], [], []
    for index in range(args.worlds):
        # The goal: what the uniform grid with three seeds reaches, the median of three
        # realizations (one realization's luck would favour whichever loop shared it).
        first = 10 * args.realization
        goal = statistics.median(
            uniform(World(index, first + draws), None, 3)[1] for draws in (1, 2, 3)
        )
        reference = World(index, first + 4)
        uniform_cost, _, uniform_covers = uniform(reference, goal, MAX_SEEDS, args.uniform_eval)
        world = World(index, first + 5)
        spent, reached, adaptive_covers, steps = adaptive(
            world, goal, 4 * uniform_cost, args.eval_problems, args.one_size_seeds
        )
        ratios.append(uniform_cost / spent)
        adaptive_cover.append(adaptive_covers)
        uniform_cover.append(uniform_covers)
        print(
            f"world {index:2d}: alpha {reference.alpha:.2f}, floor {reference.floor:.3f}, "
            f"spread {reference.spread:.2f}, m {reference.m:g}: goal x{np.exp(goal):.3g}; "
            f"uniform {uniform_cost:,.0f}, adaptive {spent:,.0f} (x{np.exp(reached):.3g}; "
            f"{' -> '.join(steps) or 'thin grid enough'}); ratio {uniform_cost / spent:.2f}"
        )
    print(
        f"{args.worlds} worlds in {time.perf_counter() - started:.0f} s: uniform / adaptive cost, "
        f"median {statistics.median(ratios):.2f} (quartiles "
        f"{np.quantile(ratios, 0.25):.2f}-{np.quantile(ratios, 0.75):.2f}); the final 90% "
        f"interval covers the true multiplier in {sum(adaptive_cover)}/{args.worlds} worlds "
        f"(the uniform grid's: {sum(uniform_cover)}/{args.worlds})"
    )


if __name__ == "__main__":
    main()
