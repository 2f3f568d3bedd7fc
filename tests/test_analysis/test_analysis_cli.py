"""`scaler fit / plot / report` and the notebook API on a real (small) experiment, and
`scaler fit --points` on CSV files, through the CLI."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from conftest import SMALL_SPEC, open_db, write_spec

GRID = {"sizes": [50, 100, 200], "seeds": [0, 1], "algorithms": ["sft", "rft"]}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, str]:
    """A small sft + rft grid, run for real once for the module: (results root, experiment)."""
    from scaler.cli import main

    root = tmp_path_factory.mktemp("analysis")
    spec = copy.deepcopy(SMALL_SPEC) | GRID | {"experiment": "small-analysis"}
    path = write_spec(root / "spec.yaml", spec)
    main(["--results", str(root / "results"), "run", str(path)])
    return root / "results", "small-analysis"


def test_fit_saves_fits_and_multipliers_that_query_reaches(cli, finished):
    results, name = finished
    out = cli(f"--results {results} fit {name} --resamples 50 --sizes 100,400")
    assert out.code == 0, out.err
    assert "effective data multiplier" in out.out and "D=400" in out.out
    with open_db(results, name) as con:
        forms = con.execute("SELECT DISTINCT form FROM fits ORDER BY form").fetchall()
        assert forms == [("log_linear",), ("power",), ("power_e0",)]
        rows = con.execute("SELECT arm, baseline, size, extrapolated FROM multipliers").fetchall()
        assert sorted(rows) == [("rft", "sft", 100.0, False), ("rft", "sft", 400.0, True)]
        settings = json.loads(con.execute("SELECT settings FROM analyses").fetchone()[0])
        assert settings["resamples"] == 50 and settings["sizes"] == [100, 400]
    again = cli(f"--results {results} fit {name} --resamples 50 --sizes 100,400")
    assert again.code == 0
    with open_db(results, name) as con:  # the same analysis replaces its rows
        assert con.execute("SELECT count(*) FROM analyses").fetchone()[0] == 1
    queried = cli(f"--results {results} query {name} 'SELECT arm, alpha FROM fits'")
    assert queried.code == 0 and "alpha" in queried.out


def test_fit_json_is_machine_readable(cli, finished):
    results, name = finished
    out = cli(f"--results {results} fit {name} --resamples 20 --form power_e0 --json")
    data = json.loads(out.out)
    assert data["settings"]["form"] == "power_e0"
    assert {arm["arm"] for arm in data["arms"]} == {"sft", "rft"}
    assert all(m["baseline"] == "sft" for m in data["multipliers"])


def test_plot_and_report_write_their_files(cli, finished):
    results, name = finished
    out = cli(f"--results {results} plot {name} --resamples 20")
    assert out.code == 0, out.err
    written = {Path(line.split()[-1]).name for line in out.out.splitlines()}
    assert {"scaling-test-accuracy.png", "scaling-test-accuracy.svg"} <= written
    assert "multipliers-test-accuracy.png" in written
    report = cli(f"--results {results} report {name} --resamples 20")
    assert report.code == 0, report.err
    page = (results / name / "report.html").read_text()
    assert "<svg" in page and "Provenance" in page and "small-analysis" in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("--baseline nope", "'nope' is not a fitted arm"),
        ("--metric pass_at_k", "pass_at_k was not measured"),
        ("--eval-set val", "no evaluations on 'val'"),
        ("--confidence 1.5", "confidence"),
        ("--direction higher", "--direction"),
    ],
)
def test_bad_analysis_input_is_one_clear_error(cli, finished, args, message):
    results, name = finished
    out = cli(f"--results {results} fit {name} --resamples 10 {args}")
    assert out.code == 2
    assert message in out.err and "Traceback" not in out.err


def test_notebook_api(finished):
    from analysis import open_experiment

    results, name = finished
    with open_experiment(name, results) as experiment:
        relation = experiment.sql("SELECT algorithm, count(*) AS n FROM evals GROUP BY ALL")
        assert sorted(relation.fetchall()) == [("rft", 6), ("sft", 6)]
        assert len(experiment.df("SELECT * FROM evals")) == 12
        points = experiment.points()
        assert points.outcomes is not None and points.outcomes.shape == (12, 40)
        result = experiment.analyse(resamples=20, save=False)
        frames = experiment.frames(result)
    assert set(frames) == {"points", "means", "fits", "multipliers", "shared"}
    assert set(frames["fits"]["form"]) == {"power", "power_e0", "log_linear"}
    assert list(frames["shared"]["arm"]) == ["rft"] and (frames["shared"]["m"] > 0).all()


# --------------------------------------------------------------------------------------------
# --points: any table of points.

YUAN_CSV = """arm,size,value,seed
sft,1000,30.1,0
sft,1000,29.5,1
sft,2000,33.0,0
sft,2000,32.4,1
sft,4000,35.2,0
sft,4000,35.8,1
sft,7473,37.4,0
sft,7473,36.9,1
rft,1000,33.2,0
rft,1000,32.8,1
rft,2000,37.1,0
rft,2000,36.5,1
rft,4000,40.2,0
rft,4000,39.6,1
rft,7473,42.0,0
rft,7473,41.7,1
"""


def test_fit_points_from_a_csv(cli, tmp_path):
    table = tmp_path / "yuan.csv"
    table.write_text(YUAN_CSV)
    out = cli(
        f"fit --points {table} --direction higher --scale 100 --eval-size 1319 --resamples 200 "
        "--json"
    )
    assert out.code == 0, out.err
    data = json.loads(out.out)
    assert data["data"] == str(table) and data["settings"]["resamples_drawn"] == 200
    multipliers = {m["size"]: m for m in data["multipliers"]}
    assert set(multipliers) == {1000, 2000, 4000, 7473}
    m = multipliers[2000]
    assert m["value"] > 1.3 and m["low"] <= m["value"] <= m["high"]
