"""The report is one self-contained HTML page holding the analysis, its figures and provenance,
and a real browser renders it."""

from __future__ import annotations

import html
import json
import math
import re
import shutil
import subprocess
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from analysis.format import estimate as _estimate
from analysis.format import number as _num
from analysis.report import write_report
from analysis.report_page import inline_svg as _inline_svg
from analysis.report_provenance import step_provenance
from analysis.scaling import ScalingAnalysis, analyse
from analysis.settings import AnalysisSettings
from scaler.layout import Layout, write_json
from scaler.plan import expand
from scaler.spec.load import load_spec
from scaler.spec.schema import Spec
from scaler.status import describe_plan
from scaler.store import connect
from synthetic_points import synthetic_points

REPO = Path(__file__).resolve().parents[2]
SIZES = (250, 500, 1000, 2000)
SEEDS = 2
PROBLEMS = 200
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class TagCounter(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}

    def handle_starttag(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1


def count_tags(page: str) -> dict[str, int]:
    parser = TagCounter()
    parser.feed(page)
    return parser.counts


@pytest.fixture(scope="module")
def analysis() -> ScalingAnalysis:
    """sft and rft (rft worth twice the data): error 0.05 + 3 (k D)^-0.5 drawn as 0/1
    outcomes on PROBLEMS problems for every size and seed."""
    points = synthetic_points(
        np.random.default_rng(0),
        {"sft": 1.0, "rft": 2.0},
        sizes=SIZES,
        seeds=SEEDS,
        problems=PROBLEMS,
        seed_noise=0.0,
        curve=(0.05, 3.0, 0.5),
    )
    return analyse(points, AnalysisSettings(resamples=100), "points.csv")


@pytest.fixture(scope="module")
def figures(tmp_path_factory) -> list[Path]:
    """A PNG+SVG pair of one figure and a PNG-only one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = tmp_path_factory.mktemp("plots")
    paths = []
    for name, suffixes in (("scaling", (".png", ".svg")), ("extra", (".png",))):
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.loglog(SIZES, [0.5, 0.3, 0.2, 0.1], "o-", label=name)
        ax.legend()
        for suffix in suffixes:
            fig.savefig(out / f"{name}{suffix}")
            paths.append(out / f"{name}{suffix}")
        plt.close(fig)
    return paths


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Layout:
    """An experiment folder: the demo spec as spec.json and a store with two steps."""
    layout = Layout(tmp_path_factory.mktemp("results") / "demo")
    layout.root.mkdir()
    spec = load_spec(REPO / "specs" / "demo.yaml").model_dump(mode="json")
    write_json(layout.root / "spec.json", spec)
    con = connect(layout)  # creates the schema
    versions = json.dumps({"numpy": "2.0.0", "torch": "2.4.0"})
    con.executemany(
        "INSERT INTO steps (step_id, name, stage, experiment, started_at, ended_at, wall_s, "
        "host, git_commit, git_dirty, versions, spec_hash) VALUES (?, ?, ?, 'demo', "
        "CAST(? AS TIMESTAMPTZ), CAST(? AS TIMESTAMPTZ), ?, ?, ?, ?, ?, 'feedbeef')",
        [
            ["a1", "generate-a1", "generate", "2026-01-02 10:00:00+00", "2026-01-02 10:30:00+00",
             1800.0, "node-1", COMMIT, False, versions],
            ["b2", "train-b2", "train", "2026-01-02 10:31:00+00", "2026-01-02 11:32:05+00",
             3665.0, "node-2", COMMIT, True, versions],
        ],
    )  # fmt: skip
    con.close()
    return layout


def self_contained(page: str) -> None:
    assert 'src="http' not in page and "src='http" not in page
    assert "<link" not in page
    assert "<script" not in page
    assert "@import" not in page and "url(http" not in page


# --------------------------------------------------------------------------------------------
# Formatting.


def test_numbers_read_as_in_a_paper():
    assert _estimate(3.5512, 1.3701, 8.581) == "3.55 [1.37, 8.58]"
    assert _estimate(15.5, 4.02, math.inf) == "15.5 [4.02, ∞]"
    assert _estimate(2.0, None, None) == "2"
    assert _num(None) == _num(math.nan) == "–"
    assert _num(72855.2) == "72855"
    assert _num(8e-11) == "8.00e-11"


def test_inlined_svgs_keep_their_ids_apart():
    svg = '<?xml version="1.0"?>\n<svg><defs><path id="g"/></defs><use xlink:href="#g"/>'
    svg += '<g clip-path="url(#c)"/></svg>'
    one, two = _inline_svg(svg, "fig0-"), _inline_svg(svg, "fig1-")
    assert one.startswith("<svg") and "<?xml" not in one
    assert 'id="fig0-g"' in one and 'href="#fig0-g"' in one and "url(#fig0-c)" in one
    assert 'id="fig1-g"' in two


# --------------------------------------------------------------------------------------------
# The page.


def test_report_of_points_from_a_csv(tmp_path: Path, analysis, figures):
    warned = replace(analysis, warnings=[*analysis.warnings, "sft: <b>odd</b> & noisy"])
    out = write_report(warned, None, figures, tmp_path / "report" / "report.html")
    page = out.read_text()
    self_contained(page)
    tags = count_tags(page)
    assert tags["svg"] == 1 and tags["img"] == 1  # the pair shown once, as SVG; the PNG inline
    assert page.count("data:image/png;base64,") == 1

    assert "sft: &lt;b&gt;odd&lt;/b&gt; &amp; noisy" in page  # escaped, shown
    assert "<b>odd</b>" not in page
    for multiplier in analysis.multipliers:
        assert html.escape(_estimate(multiplier.value, multiplier.low, multiplier.high)) in page
    assert "extrapolated" in page
    for arm in analysis.arms:
        for fit in arm.fits.values():
            alpha = fit.params.get("alpha")
            if alpha is not None:
                assert f"α = {_estimate(alpha, *fit.intervals['alpha'])}" in page
            assert _num(fit.quality["rmse_log"]) in page

    # Means are shown as accuracy with the interval in ascending order.
    first = analysis.arm("sft").means[0]
    low, high = 1 - first.high, 1 - first.low
    assert low < high
    assert _estimate(1 - first.error, low, high) in page

    assert "points.csv" in page and "no plan, spec or step provenance" in page
    assert "resamples_drawn" in page and "scaler version" in page


def test_report_of_an_experiment(tmp_path: Path, analysis, figures, experiment):
    page = write_report(analysis, experiment, figures, tmp_path / "report.html").read_text()
    self_contained(page)

    plan = expand(Spec.model_validate(json.loads((experiment.root / "spec.json").read_text())))
    summary = describe_plan(plan, experiment, source=str(experiment.root / "spec.json"))
    assert "to run" in summary
    assert html.escape(summary) in page
    assert re.search(r"<details><summary>The spec .*</summary><pre>experiment: demo\n", page)

    assert COMMIT in page and "1 of 2 steps ran from a tree with uncommitted changes" in page
    assert "node-1 (1), node-2 (1)" in page
    assert "2026-01-02 10:00:00 UTC" in page and "2026-01-02 11:32:05 UTC" in page
    assert "1 h 31 min" in page  # 1800 s + 3665 s
    assert "feedbeef (2 steps)" in page
    assert "torch <code>2.4.0</code>" in page


def test_provenance_of_the_steps_table(experiment):
    facts = step_provenance(experiment)
    assert facts is not None
    assert facts["steps"] == 2
    assert facts["commits"] == [(COMMIT, 2, 1)]
    assert facts["versions"] == {"numpy": "2.0.0", "torch": "2.4.0"}


def test_experiment_without_store_or_spec(tmp_path: Path, analysis):
    page = write_report(analysis, Layout(tmp_path / "empty"), [], tmp_path / "r.html").read_text()
    assert "No spec.json" in page and "No results store" in page and "No figures." in page


# --------------------------------------------------------------------------------------------
# In a browser.


def chromium() -> str | None:
    return shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None
    )


def run_chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}", *args,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=True)


@pytest.mark.skipif(
    chromium() is None,
    reason="chromium is not installed (scripts/browser-up installs it on Debian, as root)",
)
def test_a_browser_renders_the_report(tmp_path: Path, analysis, figures, experiment):
    from PIL import Image

    report = write_report(analysis, experiment, figures, tmp_path / "report.html")
    shot = tmp_path / "report.png"
    run_chromium(
        tmp_path / "profile", "--window-size=1280,4000", f"--screenshot={shot}", report.as_uri()
    )
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (4000, 1280)
    assert (pixels < 245).mean() > 0.03  # text, tables and the figures were drawn

    dom = run_chromium(tmp_path / "profile", "--dump-dom", report.as_uri()).stdout
    tags = count_tags(dom)
    assert tags["svg"] == 1 and tags["img"] == 1
    assert tags["table"] >= 6
    rows_needed = len(analysis.multipliers) + 3 * len(analysis.arms) + len(SIZES) * 2
    assert tags["tr"] > rows_needed
