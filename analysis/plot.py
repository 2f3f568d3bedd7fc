"""Scaling plots: error against data size per arm, with the fitted curves.

Design
------
One function, :func:`plot_scaling`, draws a complete figure from plain inputs (rows of
``arm, size, seed, value`` and a mapping arm -> :class:`~analysis.fit.PowerLawFit`) and writes
it as PNG and SVG. The grouping of points into seed means is a small pure function, so what is
drawn is testable without looking at pixels. matplotlib is imported inside the functions with
the Agg backend, so importing this module costs nothing and never needs a display.

Reading conventions: log-log axes; seeds as small translucent dots; the seed mean with a
standard-deviation bar; the fit solid over the sizes it was fitted on and dashed where it is
extrapolated; each arm keeps one colour, assigned from the sorted arm names unless given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analysis.fit import PowerLawFit

# How far the dashed extrapolation of a fit reaches beyond its fitted range, as a size factor.
_EXTENSION_FACTOR = 1.5
_FIGURE_SIZE = (6.4, 4.6)
_PALETTE = "tab10"


@dataclass(frozen=True)
class SeedSummary:
    """One arm's points grouped by size (ascending)."""

    sizes: np.ndarray
    means: np.ndarray
    stds: np.ndarray
    point_sizes: np.ndarray
    point_values: np.ndarray


def summarise_points(points: Iterable[Any]) -> dict[str, SeedSummary]:
    """Group rows (mappings or objects with ``arm, size, value``) by arm and size."""
    by_arm: dict[str, list[tuple[float, float]]] = {}
    for row in _rows(points):
        by_arm.setdefault(str(_field(row, "arm")), []).append(
            (float(_field(row, "size")), float(_field(row, "value")))
        )
    return {arm: _summarise(pairs) for arm, pairs in by_arm.items()}


def arm_colors(arms: Iterable[str]) -> dict[str, Any]:
    """A colour per arm, from the sorted names, so the same arm set always looks the same."""
    import matplotlib

    palette = matplotlib.colormaps[_PALETTE].colors
    return {arm: palette[i % len(palette)] for i, arm in enumerate(sorted(set(arms)))}


def fit_label(arm: str, fit: PowerLawFit) -> str:
    """Legend text, e.g. ``sft: 0.12 + 3.4·D^-0.52`` rendered with mathtext."""
    power = rf"{_mathtext_number(fit.A)}\,D^{{-{fit.alpha:.2g}}}"
    formula = power if fit.E_fixed else rf"{_mathtext_number(fit.E)} + {power}"
    return f"{arm}: ${formula}$"


def plot_scaling(
    points: Iterable[Any],
    fits: Mapping[str, PowerLawFit],
    out_base: Path,
    *,
    title: str,
    metric_label: str = "test error",
    colors: Mapping[str, Any] | None = None,
    y_max: float | None = None,
) -> list[Path]:
    """Draw error against data size per arm and write ``out_base`` as .png and .svg.

    ``y_max`` caps the vertical axis (1.0 for error rates, where a fitted line may overshoot).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summaries = summarise_points(points)
    arms = sorted(set(summaries) | set(fits))
    palette = {**arm_colors(arms), **(colors or {})}

    fig, ax = plt.subplots(figsize=_FIGURE_SIZE, layout="constrained")
    try:
        for arm in arms:
            color = palette[arm]
            if arm in summaries:
                _draw_points(ax, summaries[arm], color, label=None if arm in fits else arm)
            if arm in fits:
                _draw_fit(ax, fits[arm], color, label=fit_label(arm, fits[arm]))
        _style_axes(ax, title=title, metric_label=metric_label, y_max=y_max)
        return _save(fig, Path(out_base))
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------------------------
# Drawing pieces.


def _draw_points(ax: Any, summary: SeedSummary, color: Any, label: str | None) -> None:
    ax.scatter(
        summary.point_sizes,
        summary.point_values,
        s=10,
        color=color,
        alpha=0.35,
        linewidths=0,
        zorder=2,
    )
    # On a log axis a bar reaching zero or below cannot be drawn; stop it just above zero.
    lower = np.minimum(summary.stds, summary.means * 0.999)
    ax.errorbar(
        summary.sizes,
        summary.means,
        yerr=np.vstack([lower, summary.stds]),
        fmt="o",
        markersize=5,
        color=color,
        markeredgecolor="white",
        markeredgewidth=0.8,
        elinewidth=1.2,
        capsize=2.5,
        label=label,
        zorder=3,
    )


def _draw_fit(ax: Any, fit: PowerLawFit, color: Any, label: str) -> None:
    low, high = fit.size_range
    inside = np.geomspace(low, high, 200)
    below = np.geomspace(low / _EXTENSION_FACTOR, low, 20)
    above = np.geomspace(high, high * _EXTENSION_FACTOR, 20)
    ax.plot(inside, fit.predict(inside), color=color, linewidth=1.8, label=label, zorder=1)
    for segment in (below, above):
        ax.plot(segment, fit.predict(segment), color=color, linewidth=1.4, linestyle="--")


def _style_axes(ax: Any, *, title: str, metric_label: str, y_max: float | None = None) -> None:
    from matplotlib import ticker
    from matplotlib.lines import Line2D

    ax.set_xscale("log")
    ax.set_yscale("log")
    if y_max is not None and ax.get_ylim()[1] > y_max:
        ax.set_ylim(top=y_max)  # an error rate above 1 is a fit artefact, not information
    ax.set_xlabel("training problems (D)")
    ax.set_ylabel(metric_label)
    ax.set_title(title)
    # Plain numbers read better than powers of ten for problem counts and error rates, and
    # extra labelled ticks keep an axis that spans less than a decade from looking empty.
    plain = ticker.FuncFormatter(lambda value, _: f"{value:g}")
    for axis, limits in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        axis.set_major_locator(ticker.LogLocator(base=10, subs=_tick_subs(*limits)))
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(ticker.NullFormatter())
    ax.grid(True, which="major", color="0.88", linewidth=0.8)
    ax.grid(True, which="minor", color="0.95", linewidth=0.5)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        handles.append(Line2D([], [], color="0.5", linewidth=1.4, linestyle="--"))
        labels.append("extrapolated")
        ax.legend(handles, labels, frameon=False, fontsize="small", loc="best")


def _tick_subs(low: float, high: float) -> tuple[float, ...]:
    """Which multiples of each power of ten get a labelled tick: more when the span is short."""
    decades = np.log10(high / low)
    if decades < 1.2:
        return (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
    if decades < 4:
        return (1.0, 2.0, 5.0)
    return (1.0,)


def _save(fig: Any, out_base: Path) -> list[Path]:
    out_base.parent.mkdir(parents=True, exist_ok=True)
    paths = [out_base.with_suffix(".png"), out_base.with_suffix(".svg")]
    for path in paths:
        fig.savefig(path, dpi=150 if path.suffix == ".png" else None)
    return paths


# --------------------------------------------------------------------------------------------
# Helpers.


def _rows(points: Iterable[Any]) -> Iterable[Any]:
    """Rows from a sequence of mappings/objects, or from a DataFrame (one mapping per row)."""
    if hasattr(points, "to_dict") and hasattr(points, "columns"):
        return points.to_dict("records")  # type: ignore[no-any-return]
    return points


def _field(row: Any, name: str) -> Any:
    if isinstance(row, Mapping):
        return row[name]
    return getattr(row, name)


def _summarise(pairs: Sequence[tuple[float, float]]) -> SeedSummary:
    sizes = np.array([size for size, _ in pairs])
    values = np.array([value for _, value in pairs])
    unique_sizes, inverse = np.unique(sizes, return_inverse=True)
    means = np.array([values[inverse == i].mean() for i in range(unique_sizes.size)])
    stds = np.array([_seed_std(values[inverse == i]) for i in range(unique_sizes.size)])
    return SeedSummary(unique_sizes, means, stds, sizes, values)


def _seed_std(values: np.ndarray) -> float:
    """Sample std over seeds; 0 with a single seed, so the bar is simply absent."""
    return float(values.std(ddof=1)) if values.size > 1 else 0.0


def _mathtext_number(value: float) -> str:
    """Two significant digits; powers of ten as ``3.4\\times10^{3}`` instead of ``3.4e+03``."""
    text = f"{value:.2g}"
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    return rf"{mantissa}\times10^{{{int(exponent)}}}"
