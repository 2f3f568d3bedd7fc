"""Figures of a scaling analysis: the curves, the data multipliers, and the curves by facet.

Design
------
:func:`plot_analysis` reads a finished :class:`~analysis.scaling.ScalingAnalysis` and draws only
what it holds: nothing is fitted or resampled here, so a figure always agrees with the printed
and stored numbers. Each figure is written as PNG and SVG under ``out_dir``:

* ``scaling-<eval_set>-<metric>``: every arm's error against data size on log-log axes;
* ``multipliers-<eval_set>-<metric>``: m(D) per arm over its baseline (when there are any);
* ``scaling-<eval_set>-<metric>-by-<facet>``: one panel per source (or model, algorithm).

Reading conventions: seeds as small translucent dots; the seed mean with its bootstrap interval;
the chosen form's fit solid over the sizes it was fitted on, dashed where it is extrapolated,
with its interval as a light band; extrapolated multipliers as hollow markers. An arm keeps one
colour in every figure, given by its place in the analysis. The label texts and the colour and
facet choices are small pure functions in :mod:`analysis.plot_labels`, so what a figure says is
testable without pixels.
matplotlib is imported inside the functions with the Agg backend, so importing this module costs
nothing and never needs a display.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.plot_labels import (
    UNBOUNDED_LABEL,
    arm_colors,
    error_axis,
    facet_to_split,
    fit_label,
    form_note,
    interval_note,
)
from analysis.result import curve_form

if TYPE_CHECKING:
    from analysis.result import ArmAnalysis, Multiplier, ScalingAnalysis

# matplotlib's tab10 by name: a fixed palette that needs no import to assign.
_FIGURE_SIZE = (7.0, 5.0)
_PANEL_SIZE = (4.0, 3.3)
_BAND_ALPHA = 0.1
# Multipliers of several arms share the same sizes; nudging each arm sideways by this factor
# (on the log axis) keeps their interval bars apart.
_DODGE = 1.035


def plot_analysis(
    analysis: ScalingAnalysis, out_dir: Path, *, title: str, facet: str | None = None
) -> list[Path]:
    """Write the scaling, multiplier and per-facet figures; return the paths written.

    ``facet`` (source, model or algorithm) splits the curves into panels; by default they are
    split by source when there is more than one.
    """
    import matplotlib

    matplotlib.use("Agg")

    base = f"{analysis.settings.eval_set}-{analysis.metric}"
    colors = arm_colors(analysis.points.arms)
    paths = _scaling_figure(analysis, colors, Path(out_dir) / f"scaling-{base}", title)
    if analysis.multipliers:
        paths += _multiplier_figure(analysis, colors, Path(out_dir) / f"multipliers-{base}", title)
    split = facet_to_split(analysis, facet)
    if split is not None:
        out = Path(out_dir) / f"scaling-{base}-by-{split}"
        paths += _facet_figure(analysis, colors, split, out, title)
    return paths


# --------------------------------------------------------------------------------------------
# The figures.


def _scaling_figure(
    analysis: ScalingAnalysis, colors: dict[str, str], out: Path, title: str
) -> list[Path]:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=_FIGURE_SIZE, layout="constrained")
    try:
        shown = [_draw_arm(ax, analysis, arm, colors[arm]) for arm in analysis.points.arms]
        _style_scaling_axes(ax, analysis, np.concatenate(shown))
        ax.set_xlabel("training problems (D)")
        ax.set_ylabel(error_axis(analysis))
        _titles(fig, ax, title, f"{form_note(analysis)}; {interval_note(analysis)}")
        _scaling_legend(fig, [ax], analysis)
        return _save(fig, out)
    finally:
        plt.close(fig)


def _facet_figure(
    analysis: ScalingAnalysis, colors: dict[str, str], facet: str, out: Path, title: str
) -> list[Path]:
    import matplotlib.pyplot as plt

    groups: dict[str, list[str]] = {}
    for arm in analysis.points.arms:
        groups.setdefault(str(analysis.points.facet_of(arm, facet)), []).append(arm)
    columns = min(3, len(groups))
    rows = math.ceil(len(groups) / columns)
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=(_PANEL_SIZE[0] * columns, _PANEL_SIZE[1] * rows + 1.0),
        sharex=True,
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    try:
        shown = []
        for ax, (value, arms) in zip(axes.flat, groups.items(), strict=False):
            shown += [_draw_arm(ax, analysis, arm, colors[arm]) for arm in arms]
            ax.set_title(f"{facet} = {value}", fontsize="medium")
        for ax in axes.flat[len(groups) :]:
            ax.set_visible(False)
        for ax in axes.flat[: len(groups)]:
            _style_scaling_axes(ax, analysis, np.concatenate(shown))
        for ax in axes[-1, :]:
            ax.set_xlabel("training problems (D)")
        for ax in axes[:, 0]:
            ax.set_ylabel(error_axis(analysis))
        fig.suptitle(f"{title}, by {facet}\n{form_note(analysis)}; {interval_note(analysis)}")
        _scaling_legend(fig, list(axes.flat[: len(groups)]), analysis)
        return _save(fig, out)
    finally:
        plt.close(fig)


def _multiplier_figure(
    analysis: ScalingAnalysis, colors: dict[str, str], out: Path, title: str
) -> list[Path]:
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    multipliers = analysis.multipliers
    arms = list(dict.fromkeys(m.arm for m in multipliers))
    finite = [
        x
        for m in multipliers
        for x in (m.value, m.low, m.high)
        if x is not None and 0 < x < math.inf
    ]
    # The top leaves room above every finite number; an unbounded value or upper bound is drawn
    # at the top, pointing up, instead of stretching the axis to infinity.
    bottom = min([1.0, *finite]) / 1.5
    top = max([1.0, *finite]) * 2.5

    fig, ax = plt.subplots(figsize=_FIGURE_SIZE, layout="constrained")
    try:
        ax.axhline(1.0, color="0.35", linewidth=1.0, linestyle=":", zorder=1)
        unbounded = False
        for i, arm in enumerate(arms):
            own = [m for m in multipliers if m.arm == arm]
            shift = _DODGE ** (i - (len(arms) - 1) / 2)
            unbounded |= _draw_multipliers(ax, own, colors[arm], shift, top)
        ax.set_ylim(bottom, top)
        # Set, not left to the data: where no multiplier is finite nothing sets the x range.
        sizes = [m.size for m in multipliers]
        ax.set_xlim(min(sizes) / 1.5, max(sizes) * 1.5)
        _style_log_axes(ax)
        ax.set_xlabel("training problems (D)")
        ax.set_ylabel("effective data multiplier m(D)")
        baselines = ", ".join(dict.fromkeys(m.baseline for m in multipliers))
        _titles(
            fig,
            ax,
            title,
            f"data multiplier over {baselines}\n{form_note(analysis)}; {interval_note(analysis)}",
        )
        handles = [Line2D([], [], color=colors[arm], marker="o", label=arm) for arm in arms]
        handles.append(Line2D([], [], color="0.35", linestyle=":", label=f"= {baselines} (m = 1)"))
        if any(m.extrapolated and math.isfinite(m.value) for m in multipliers):
            handles.append(_marker_handle("o", hollow=True, label="extrapolated"))
        if unbounded:
            handles.append(_marker_handle("^", hollow=False, label=UNBOUNDED_LABEL))
        ax.legend(handles=handles, frameon=False, fontsize="small")
        return _save(fig, out)
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------------------------
# Drawing pieces.


def _draw_arm(ax: Any, analysis: ScalingAnalysis, name: str, color: str) -> np.ndarray:
    """One arm's seeds, means and fit; returns the errors that must stay in view."""
    own = analysis.points.of_arm(name)
    ax.scatter(own.size, own.error, s=10, color=color, alpha=0.3, linewidths=0, zorder=2)
    arm = analysis.arm(name)
    if not arm.fits:  # a single size: no fit, only its mean
        sizes = np.unique(own.size)
        at_sizes = [own.error[own.size == size].mean() for size in sizes]
        ax.plot(sizes, at_sizes, "o", color=color, markersize=5, label=f"{name} (one size, no fit)")
        return own.error
    sizes = np.array([m.size for m in arm.means])
    means = np.array([m.error for m in arm.means])
    low, high = [m.low for m in arm.means], [m.high for m in arm.means]
    _bars(ax, sizes, low, high, color)
    ax.plot(
        sizes, means, "o", linestyle="none", markersize=5, color=color, markeredgecolor="white",
        markeredgewidth=0.8, zorder=3,
    )  # fmt: skip
    _draw_fit(ax, analysis, arm, color)
    return np.concatenate([own.error, means, low, high, arm.band.error if arm.band else []])


def _draw_fit(ax: Any, analysis: ScalingAnalysis, arm: ArmAnalysis, color: str) -> None:
    band, fit = arm.band, arm.fits[curve_form(analysis.settings.form)]
    if band is None:
        return
    low, high = min(arm.sizes), max(arm.sizes)
    # The fitted range's ends are rarely on the band's grid; insert them so the solid and dashed
    # pieces meet.
    sizes = np.union1d(band.sizes, [low, high])
    error = np.interp(np.log(sizes), np.log(band.sizes), band.error)
    inside = (sizes >= low) & (sizes <= high)
    label = fit_label(arm.arm, fit, analysis.metric)
    ax.plot(sizes[inside], error[inside], color=color, linewidth=1.8, label=label, zorder=1)
    for piece in (sizes <= low, sizes >= high):
        ax.plot(sizes[piece], error[piece], color=color, linewidth=1.3, linestyle="--", zorder=1)
    if band.low is not None and band.high is not None:
        ax.fill_between(
            band.sizes, band.low, band.high, color=color, alpha=_BAND_ALPHA, linewidth=0, zorder=0
        )


def _draw_multipliers(
    ax: Any, multipliers: Sequence[Multiplier], color: str, shift: float, top: float
) -> bool:
    """One arm's m(D) with intervals; returns whether anything is drawn at the top as
    unbounded."""
    sizes = np.array([m.size for m in multipliers]) * shift
    values = np.array([m.value for m in multipliers], dtype=float)
    low = np.array([math.nan if m.low is None else m.low for m in multipliers], dtype=float)
    high = np.array([math.nan if m.high is None else m.high for m in multipliers], dtype=float)
    finite = np.isfinite(values)
    hollow = np.array([m.extrapolated for m in multipliers])
    ax.plot(sizes, np.where(finite, values, np.nan), color=color, linewidth=0.9, alpha=0.6)
    _bars(ax, sizes, low, np.minimum(high, top), color)
    for shown, face in ((finite & ~hollow, color), (finite & hollow, "white")):
        ax.plot(
            sizes[shown], values[shown], "o", linestyle="none", color=color, markerfacecolor=face,
            markersize=6, markeredgewidth=1.3, zorder=3,
        )  # fmt: skip
    unbounded = (values == math.inf) | (high == math.inf)
    ax.plot(
        sizes[unbounded], np.full(unbounded.sum(), top), "^", linestyle="none", color=color,
        markersize=6, clip_on=False, zorder=4,
    )  # fmt: skip
    return bool(unbounded.any())


def _bars(ax: Any, x: Any, low: Any, high: Any, color: str) -> None:
    """Interval bars from low to high, left out where an end is nan. Drawn as lines rather than
    errorbar offsets: a percentile interval need not contain its point estimate."""
    x, low, high = (np.asarray(v, dtype=float) for v in (x, low, high))
    keep = np.isfinite(low) & np.isfinite(high)
    ax.vlines(x[keep], low[keep], high[keep], color=color, linewidth=1.2, zorder=2)
    ends = np.concatenate([low[keep], high[keep]])
    ax.plot(
        np.tile(x[keep], 2), ends, "_", color=color, markersize=5, markeredgewidth=1.2, zorder=2
    )


def _style_scaling_axes(ax: Any, analysis: ScalingAnalysis, shown: np.ndarray) -> None:
    shown = shown[np.isfinite(shown) & (shown > 0)]
    if shown.size:
        top = shown.max() * 1.3
        # An error rate above 1 is a fit artefact, not information.
        ax.set_ylim(shown.min() / 1.3, min(top, 1.0) if analysis.higher_is_better else top)
    _style_log_axes(ax)


def _style_log_axes(ax: Any) -> None:
    from matplotlib import ticker

    ax.set_xscale("log")
    ax.set_yscale("log")
    # Plain numbers read better than powers of ten for problem counts and error rates, and
    # extra labelled ticks keep an axis that spans less than a decade from looking empty, as
    # far as its length leaves room for them.
    width, height = ax.get_position().size * ax.figure.get_size_inches()
    plain = ticker.FuncFormatter(lambda value, _: f"{value:g}")
    for axis, (low, high), inches in (
        (ax.xaxis, ax.get_xlim(), width),
        (ax.yaxis, ax.get_ylim(), height),
    ):
        axis.set_major_locator(ticker.LogLocator(base=10, subs=_tick_subs(low, high, inches)))
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(ticker.NullFormatter())
    ax.grid(True, which="major", color="0.88", linewidth=0.8)
    ax.grid(True, which="minor", color="0.95", linewidth=0.5)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _scaling_legend(fig: Any, axes: list[Any], analysis: ScalingAnalysis) -> None:
    """One legend below the axes, so it never covers data: the arms, then how lines read."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    entries["extrapolated"] = Line2D([], [], color="0.5", linewidth=1.3, linestyle="--")
    if analysis.resamples:
        label = f"{analysis.settings.confidence:.0%} interval of the fit"
        entries[label] = Patch(color="0.5", alpha=_BAND_ALPHA * 2, linewidth=0)
    fig.legend(
        entries.values(), entries.keys(), loc="outside lower center", ncols=2, frameon=False,
        fontsize="small",
    )  # fmt: skip


def _marker_handle(marker: str, *, hollow: bool, label: str) -> Any:
    from matplotlib.lines import Line2D

    return Line2D(
        [], [], color="0.35", marker=marker, linestyle="none", label=label,
        markerfacecolor="white" if hollow else "0.35", markeredgewidth=1.3,
    )  # fmt: skip


def _titles(fig: Any, ax: Any, title: str, detail: str) -> None:
    fig.suptitle(title)
    ax.set_title(detail, fontsize="small", color="0.3")


def _tick_subs(low: float, high: float, inches: float) -> tuple[float, ...]:
    """Which multiples of each power of ten get a labelled tick: more when a decade is long."""
    per_decade = inches / max(np.log10(high / low), 1e-9)
    if per_decade >= 4.0:
        return (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
    if per_decade >= 1.2:
        return (1.0, 2.0, 5.0)
    return (1.0,)


def _save(fig: Any, out_base: Path) -> list[Path]:
    out_base.parent.mkdir(parents=True, exist_ok=True)
    paths = [out_base.with_name(out_base.name + ".png"), out_base.with_name(out_base.name + ".svg")]
    for path in paths:
        fig.savefig(path, dpi=150 if path.suffix == ".png" else None)
    return paths
