"""Property-based: on any small grid (one seed or several, one size or several, ties, perfect and
zero scores, a single eval problem), the analysis, its text, its JSON, its report and its
figures never raise, and every interval respects the metric's range."""

from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.points import Points
from analysis.record import save_analysis
from analysis.report import render_report
from analysis.scaling import analyse
from analysis.settings import AnalysisSettings
from analysis.summary import render_text
from scaler.errors import SpecError
from scaler.layout import Layout

ARMS = ("sft", "rft", "dpo")
SIZES = (10, 20, 40, 80, 1000)
SCORES = ("random", "perfect", "zero", "tied", "extremes")


@st.composite
def grids(draw) -> Points:
    """A small grid of points, with per-problem outcomes or plain values."""
    higher = draw(st.booleans())
    with_outcomes = higher and draw(st.booleans())
    problems = draw(st.integers(1, 6)) if with_outcomes else None
    scores = draw(st.sampled_from(SCORES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rows = []
    for arm in ARMS[: draw(st.integers(1, 3))]:
        sizes = draw(st.lists(st.sampled_from(SIZES), min_size=1, max_size=4, unique=True))
        for size in sizes:
            rows += [(arm, size, seed) for seed in range(draw(st.integers(1, 3)))]
    n = len(rows)
    if with_outcomes:
        outcomes = _outcomes(scores, rng, n, problems)
        value = outcomes.mean(axis=1)
    else:
        outcomes = None
        value = _values(scores, rng, n, higher)
    eval_size = problems if with_outcomes else draw(st.sampled_from([None, 1, 50]))
    if not higher:
        eval_size = None
    return Points(
        metric="accuracy" if higher else "loss",
        higher_is_better=higher,
        arm=np.array([arm for arm, _, _ in rows]),
        size=np.array([size for _, size, _ in rows], dtype=float),
        seed=np.array([seed for _, _, seed in rows]),
        value=value,
        facets={"source": np.array(["teacher"] * n, dtype=object)},
        outcomes=outcomes,
        eval_size=eval_size,
    )


def _outcomes(scores: str, rng: np.random.Generator, n: int, problems: int) -> np.ndarray:
    if scores == "perfect":
        return np.ones((n, problems))
    if scores == "zero":
        return np.zeros((n, problems))
    if scores == "tied":
        return np.tile(rng.random(problems) < 0.5, (n, 1)).astype(float)
    if scores == "extremes":
        return np.repeat(rng.random((n, 1)) < 0.5, problems, axis=1).astype(float)
    return (rng.random((n, problems)) < rng.random((n, 1))).astype(float)


def _values(scores: str, rng: np.random.Generator, n: int, higher: bool) -> np.ndarray:
    if scores == "perfect":
        return np.ones(n) if higher else np.full(n, 1e-6)
    if scores == "zero":
        return np.zeros(n) if higher else np.full(n, 10.0)
    if scores == "tied":
        return np.full(n, 0.4)
    if scores == "extremes":
        return rng.choice([0.0, 1.0], n) if higher else rng.choice([1e-6, 10.0], n)
    return rng.random(n) if higher else rng.uniform(0.01, 5.0, n)


analysis_settings = st.builds(
    AnalysisSettings,
    form=st.sampled_from(["power", "power_e0", "log_linear", "shared"]),
    resamples=st.sampled_from([0, 7, 25]),
    baseline=st.sampled_from([None, None, "sft", "rft"]),
    sizes=st.sampled_from([None, [15, 5000]]),
)


def _analyse_or_refuse(points: Points, chosen: AnalysisSettings):
    """The analysis, or None when it refuses its settings with a clear error."""
    try:
        return analyse(points, chosen, "fuzz.csv")
    except SpecError as error:
        # The two refusals: a baseline with no curve, a perfect score with no eval size.
        assert "baseline" in str(error) or "eval size" in str(error), error
        return None


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(points=grids(), chosen=analysis_settings)
def test_analysis_never_raises_and_stays_in_range(points, chosen):
    result = _analyse_or_refuse(points, chosen)
    if result is None:
        return
    json.dumps(result.to_dict(), allow_nan=False)
    assert render_text(result)
    assert "<html" in render_report(result, None, [])
    upper = 1.0 if points.higher_is_better else math.inf
    for arm in result.arms:
        for mean in arm.means:
            for end in (mean.error, mean.low, mean.high):
                assert math.isnan(end) or 0.0 <= end <= upper, (arm.arm, mean)
        if arm.band is not None and arm.band.low is not None:
            assert (arm.band.low >= 0).all() and (arm.band.high <= upper).all()
    for m in result.multipliers:
        assert not m.value < 0
        if m.low is not None and m.high is not None and not math.isnan(m.low + m.high):
            assert m.low <= m.high


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(points=grids(), chosen=analysis_settings)
def test_figures_and_store_never_raise(points, chosen, tmp_path_factory):
    from analysis.plot import plot_analysis

    result = _analyse_or_refuse(points, chosen)
    if result is None:
        return
    folder = tmp_path_factory.mktemp("fuzz")
    paths = plot_analysis(result, folder / "plots", title="fuzz")
    assert paths and all(path.stat().st_size > 0 for path in paths)
    layout = Layout.for_experiment("fuzz", folder)
    layout.root.mkdir(parents=True)
    save_analysis(layout, result)
