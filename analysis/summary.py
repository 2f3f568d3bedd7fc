"""From an experiment's DuckDB to fitted curves, printed tables and figures.

An arm is one (source, algorithm) pair of the grid; it is named by the algorithm alone when the
experiment has a single source. The fitted quantity is the test error, 1 - greedy accuracy, with
every seed's point kept (the fit sees the seed spread).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from analysis.fit import PowerLawFit, effective_multiplier, fit_power_law, fit_warnings
from scaler.errors import UsageError
from scaler.layout import Layout
from scaler.store import query
from scaler.table import format_table

POINTS_SQL = """
SELECT source, algorithm, size, seed, 1 - accuracy AS value
FROM evals WHERE eval_set = ? ORDER BY source, algorithm, size, seed
"""


def load_points(layout: Layout, eval_set: str = "test") -> list[dict[str, Any]]:
    """One row per trained model: arm, size, seed and its test error."""
    _, rows = query(layout, POINTS_SQL, [eval_set])
    sources = {row[0] for row in rows}
    return [
        {
            "arm": algorithm if len(sources) == 1 else f"{source}:{algorithm}",
            "size": size,
            "seed": seed,
            "value": value,
        }
        for source, algorithm, size, seed, value in rows
    ]


def fit_arms(points: list[dict[str, Any]]) -> dict[str, PowerLawFit]:
    by_arm: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for point in points:
        by_arm[point["arm"]].append(point)
    return {
        arm: fit_power_law([p["size"] for p in rows], [p["value"] for p in rows])
        for arm, rows in by_arm.items()
        if len({p["size"] for p in rows}) >= 2
    }


def fit_experiment(layout: Layout, eval_set: str = "test", baseline: str | None = None) -> str:
    """The per-size means, the fitted parameters per arm and each arm's effective data
    multiplier over `baseline` (default: its source's SFT arm), as printable text."""
    points = load_points(layout, eval_set)
    if not points:
        return f"no evaluations on {eval_set!r} in {layout.database}"
    lines = [_means_table(points), ""]
    fits = fit_arms(points)
    rows, warnings = [], []
    for arm, fit in fits.items():
        arm_points = [p for p in points if p["arm"] == arm]
        sizes = [p["size"] for p in arm_points]
        errors = [p["value"] for p in arm_points]
        zero_floor = fit_power_law(sizes, errors, fix_E_zero=True)
        rows.append(
            [
                arm,
                fit.n_sizes,
                fit.n_points,
                fit.E,
                fit.A,
                fit.alpha,
                fit.loss,
                zero_floor.A,
                zero_floor.alpha,
            ]
        )
        warnings += [f"{arm}: {w}" for w in fit_warnings(fit, sizes, errors)]
    lines.append(f"test error fits, err(D) = E + A * D^-alpha ({eval_set} set):")
    lines.append(
        format_table(
            ["arm", "sizes", "points", "E", "A", "alpha", "loss", "A (E=0)", "alpha (E=0)"], rows
        )
    )
    lines += [f"warning: {w}" for w in warnings]
    if baseline is not None and baseline not in fits:
        raise UsageError(f"--baseline {baseline!r} is not a fitted arm; arms: {', '.join(fits)}")
    multipliers = _multipliers_table(fits, sorted({p["size"] for p in points}), baseline)
    if multipliers:
        lines += ["", multipliers]
    return "\n".join(lines)


def _baseline_of(arm: str) -> str:
    """The SFT arm of the same source: `sft`, or `<source>:sft`."""
    source, _, _ = arm.rpartition(":")
    return f"{source}:sft" if source else "sft"


def _multipliers_table(
    fits: dict[str, PowerLawFit], sizes: list[int], baseline: str | None = None
) -> str:
    """Each arm's effective data multiplier over the baseline arm at the grid's sizes: how many
    times more baseline data reaches the arm's fitted error (* : extrapolated)."""
    rows = []
    for arm, fit in fits.items():
        base = baseline or _baseline_of(arm)
        if arm == base or base not in fits:
            continue
        estimate = effective_multiplier(fits[base], fit, sizes)
        cells = [
            f"{m:.3g}{'*' if outside else ''}" if np.isfinite(m) else "none*"
            for m, outside in zip(
                np.atleast_1d(estimate.multiplier),
                np.atleast_1d(estimate.extrapolated),
                strict=True,
            )
        ]
        rows.append([arm, base, *cells])
    if not rows:
        return ""
    return (
        "effective data multiplier, m(D) = err_baseline^-1(err_arm(D)) / D "
        "(* needs the baseline curve beyond its fitted sizes):\n"
        + format_table(["arm", "baseline", *(f"D={size}" for size in sizes)], rows)
    )


def _means_table(points: list[dict[str, Any]]) -> str:
    grouped: dict[tuple[str, int], list[float]] = defaultdict(list)
    for point in points:
        grouped[(point["arm"], point["size"])].append(1 - point["value"])
    rows = [
        [
            arm,
            size,
            len(acc),
            float(np.mean(acc)),
            float(np.std(acc, ddof=1)) if len(acc) > 1 else None,
        ]
        for (arm, size), acc in sorted(grouped.items())
    ]
    return "accuracy per size (mean over seeds):\n" + format_table(
        ["arm", "size", "seeds", "accuracy", "std"], rows
    )


def plot_experiment(layout: Layout, eval_set: str = "test") -> list[Path]:
    from analysis.plot import plot_scaling

    points = load_points(layout, eval_set)
    return plot_scaling(
        points,
        fit_arms(points),
        layout.plots / f"scaling-{eval_set}",
        title=f"{layout.root.name}: {eval_set} error vs training data",
        metric_label=f"{eval_set} error (1 - greedy accuracy)",
        y_max=1.0,
    )
