"""The figures of a scaling analysis are written as PNG and SVG, and say what the analysis holds."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from analysis.plot import plot_analysis
from analysis.plot_labels import (
    PALETTE,
    arm_colors,
    error_label,
    facet_to_split,
    fit_label,
    interval_note,
)
from analysis.points import Points
from analysis.scaling import ScalingAnalysis, analyse
from analysis.settings import AnalysisSettings
from synthetic_points import synthetic_points

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SIZES = (100, 200, 400, 800)
SEEDS = 3
PROBLEMS = 200


def curve_points(arms: dict[str, tuple[str, float]], *, problems: int = PROBLEMS) -> Points:
    """Arm -> (source, data factor k): error 0.05 + 3 * (k D)^-0.5 as 0/1 outcomes."""
    return synthetic_points(
        np.random.default_rng(0),
        {arm: factor for arm, (_, factor) in arms.items()},
        sizes=SIZES,
        seeds=SEEDS,
        problems=problems,
        seed_noise=0.0,
        curve=(0.05, 3.0, 0.5),
        sources={arm: source for arm, (source, _) in arms.items()},
    )


@pytest.fixture(scope="module")
def one_source() -> ScalingAnalysis:
    points = curve_points({"sft": ("teacher", 1.0), "rft": ("teacher", 2.0)})
    return analyse(points, AnalysisSettings(resamples=100), "synthetic")


@pytest.fixture(scope="module")
def two_sources() -> ScalingAnalysis:
    points = curve_points(
        {
            "teacher:sft": ("teacher", 1.0),
            "teacher:rft": ("teacher", 2.0),
            "weak:sft": ("weak", 0.5),
        }
    )
    return analyse(points, AnalysisSettings(resamples=100), "synthetic")


def names(paths: list[Path]) -> list[str]:
    return [path.name for path in paths]


def test_writes_scaling_and_multiplier_figures(tmp_path: Path, one_source):
    paths = plot_analysis(one_source, tmp_path / "plots", title="synthetic")
    assert names(paths) == [
        "scaling-test-accuracy.png",
        "scaling-test-accuracy.svg",
        "multipliers-test-accuracy.png",
        "multipliers-test-accuracy.svg",
    ]
    for path in paths:
        assert path.parent == tmp_path / "plots" and path.stat().st_size > 0
    assert paths[0].read_bytes()[:8] == PNG_SIGNATURE
    assert paths[1].read_text().lstrip().startswith("<?xml")


def test_facet_figure_only_with_two_sources(tmp_path: Path, one_source, two_sources):
    assert facet_to_split(one_source, None) is None
    assert facet_to_split(two_sources, None) == "source"
    assert facet_to_split(two_sources, "algorithm") == "algorithm"
    assert facet_to_split(two_sources, "model") is None  # no such column: one panel

    paths = plot_analysis(two_sources, tmp_path, title="two sources")
    assert "scaling-test-accuracy-by-source.png" in names(paths)
    assert "scaling-test-accuracy-by-source.svg" in names(paths)
    assert all(path.exists() for path in paths)


def test_without_resamples_still_plots(tmp_path: Path):
    points = curve_points({"sft": ("teacher", 1.0), "rft": ("teacher", 2.0)})
    analysis = analyse(points, AnalysisSettings(resamples=0), "synthetic")
    assert analysis.arms[0].band.low is None and math.isnan(analysis.arms[0].means[0].low)
    assert interval_note(analysis) == "no resamples, so no intervals"
    paths = plot_analysis(analysis, tmp_path, title="no intervals")
    assert len(paths) == 4 and all(path.stat().st_size > 0 for path in paths)


def test_infinite_multipliers_still_plot(tmp_path: Path, one_source):
    # An arm that beats every size of its baseline has m = inf, or an interval reaching inf.
    first, *rest = one_source.multipliers
    unbounded = [replace(first, value=math.inf, high=math.inf, extrapolated=True)]
    unbounded += [replace(m, high=math.inf) for m in rest]
    paths = plot_analysis(replace(one_source, multipliers=unbounded), tmp_path, title="inf")
    assert "multipliers-test-accuracy.png" in names(paths)


def test_a_fitted_infinite_multiplier_plots(tmp_path: Path):
    # rft's errors fall below sft's floor (E = 0.3), so sft never reaches them: m = inf.
    sizes = np.array(SIZES, dtype=float)
    value = np.concatenate([1 - (0.3 + 2.0 * sizes**-0.5), 1 - 3.0 * sizes**-0.7])
    points = Points(
        metric="accuracy",
        higher_is_better=True,
        arm=np.repeat(["sft", "rft"], sizes.size),
        size=np.tile(sizes, 2),
        seed=np.zeros(2 * sizes.size, dtype=int),
        value=value,
    )
    analysis = analyse(points, AnalysisSettings(resamples=0), "exact")
    assert any(m.value == math.inf for m in analysis.multipliers)
    assert len(plot_analysis(analysis, tmp_path, title="inf")) == 4


def test_arm_colours_follow_the_analysis_order(two_sources):
    colors = arm_colors(two_sources.points.arms)
    assert list(colors) == ["teacher:sft", "teacher:rft", "weak:sft"]
    assert list(colors.values()) == list(PALETTE[:3])
    assert arm_colors([f"a{i}" for i in range(11)])["a10"] == PALETTE[0]  # the palette cycles


def test_axis_label_names_the_error():
    assert error_label("accuracy", "test", True) == "test error (1 - accuracy)"
    assert error_label("pass_at_k", "test", True) == "test error (1 - pass@k)"
    assert error_label("maj_at_k", "val", True) == "val error (1 - maj@k)"
    assert error_label("loss", "test", False) == "test loss"


def test_fit_label_shows_the_formula(one_source):
    fits = one_source.arm("sft").fits
    E, A, alpha = (fits["power"].params[k] for k in ("E", "A", "alpha"))
    power = fit_label("sft", fits["power"], "accuracy")
    assert power.startswith("sft: $") and rf"\,D^{{-{alpha:.2g}}}$" in power
    assert f"{E:.2g} + " in power
    assert "+" not in fit_label("sft", fits["power_e0"], "accuracy")
    log_linear = fit_label("sft", fits["log_linear"], "accuracy")
    assert log_linear.startswith("sft: accuracy = $") and log_linear.endswith(r"\,\ln D$")
    big = replace(fits["power_e0"], fit=replace(fits["power_e0"].fit, A=3400.0, alpha=0.52))
    assert fit_label("sft", big, "accuracy") == r"sft: $3400\,D^{-0.52}$"  # as in the tables
    huge = replace(big, fit=replace(big.fit, A=3.4e5))
    assert fit_label("sft", huge, "accuracy") == r"sft: $3.4\times10^{5}\,D^{-0.52}$"
