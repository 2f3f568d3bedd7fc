"""Scaling plots are written as PNG and SVG from plain rows and fits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analysis.fit import PowerLawFit, fit_power_law
from analysis.plot import fit_label, plot_scaling, summarise_points

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def rows_for(arm: str, k: float, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {"arm": arm, "size": size, "seed": s, "value": (0.1 + 3.0 * (k * size) ** -0.5)
         * float(np.exp(rng.normal(0.0, 0.03)))}
        for size in (100, 200, 400, 800, 1600)
        for s in range(3)
    ]  # fmt: skip


def fit_rows(rows: list[dict]) -> PowerLawFit:
    return fit_power_law([r["size"] for r in rows], [r["value"] for r in rows])


@pytest.fixture
def two_arms() -> tuple[list[dict], dict[str, PowerLawFit]]:
    sft, rft = rows_for("sft", 1.0, 0), rows_for("rft", 2.0, 1)
    return sft + rft, {"sft": fit_rows(sft), "rft": fit_rows(rft)}


def test_writes_png_and_svg(tmp_path: Path, two_arms):
    points, fits = two_arms
    paths = plot_scaling(points, fits, tmp_path / "plots" / "scaling", title="demo")
    assert [p.suffix for p in paths] == [".png", ".svg"]
    for path in paths:
        assert path.exists() and path.stat().st_size > 0
    assert paths[0].read_bytes()[:8] == PNG_SIGNATURE
    assert paths[1].read_text().lstrip().startswith("<?xml")


def test_arm_without_fit_and_single_seed_still_plots(tmp_path: Path, two_arms):
    points, fits = two_arms
    lone = [{"arm": "dpo", "size": 300, "seed": 0, "value": 0.3}]
    paths = plot_scaling(points + lone, fits, tmp_path / "partial", title="partial")
    assert all(p.stat().st_size > 0 for p in paths)


def test_summary_groups_seeds_by_size(two_arms):
    points, _ = two_arms
    summary = summarise_points(points)["sft"]
    assert list(summary.sizes) == [100, 200, 400, 800, 1600]
    assert summary.point_values.size == 15
    assert np.all(summary.stds > 0)


def test_fit_label_shows_the_formula():
    fit = PowerLawFit(0.12, 3.4, 0.52, 0.0, 1, 1, (1.0, 2.0), True)
    assert fit_label("sft", fit) == r"sft: $0.12 + 3.4\,D^{-0.52}$"
    large = PowerLawFit(0.0, 3400.0, 0.52, 0.0, 1, 1, (1.0, 2.0), True, E_fixed=True)
    assert fit_label("sft", large) == r"sft: $3.4\times10^{3}\,D^{-0.52}$"
