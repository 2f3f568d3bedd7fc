"""`scaler suggest` and `scaler run --suggested` on a real tiny run: the ranking's prices come
from the measured steps, its overrides run, and bad arguments get one clear error."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import SMALL_SPEC, write_spec
from scaler.finished_memo import wall_seconds
from scaler.layout import Layout

THIN = ["sizes=[50,100]", "stages.evaluate.problems=20"]
"""Two sizes, one seed, half of the world's 40 test problems."""


@pytest.fixture(scope="module")
def ran_once(tmp_path_factory):
    """One real tiny run for the whole module (its tests copy it before they change it)."""
    from scaler.cli import main

    root = tmp_path_factory.mktemp("suggest")
    spec = write_spec(root / "small.yaml", SMALL_SPEC)
    main(["--results", str(root / "results"), "run", str(spec), *THIN,
          "--executor", "inline"])  # fmt: skip
    return spec, root / "results"


@pytest.fixture
def small_run(ran_once, tmp_path, results):
    spec, done = ran_once
    shutil.copytree(done, results)
    return spec, Layout.for_experiment("small", results)


def test_suggest_prices_from_the_measured_steps_and_its_first_suggestion_runs(small_run, cli):
    spec, layout = small_run
    shown = cli("suggest small --target exponent:sft -n 10")
    assert shown.code == 0, shown.err
    assert "target: exponent:sft:" in shown.out and "width after" in shown.out
    assert "warning: no size has two seeds" in shown.out  # one seed: its spread is unknown
    saved = json.loads((layout.root / "suggested.json").read_text())
    by_addition = {s["addition"]: s for s in saved["suggestions"]}
    assert by_addition["1 more seed"]["overrides"] == ["seeds=[0,1]"]
    assert by_addition["size 71"]["overrides"] == ["sizes=[50,71,100]"]  # between, geometric
    assert "size 400" not in by_addition  # over the world's train_pool of 200
    assert by_addition["40 eval problems"]["overrides"] == ["stages.evaluate.problems=40"]
    assert "80 eval problems" not in by_addition  # the world has 40
    at_100 = by_addition["a seed more at 100"]
    assert at_100["overrides"] == ["extra_seeds=[{size: 100, seeds: [1]}]"]
    # One more seed adds a train and an evaluate step for each size run, each priced at the
    # wall time of its twin: their FLOPs are the same, and so the measured rate gives the same.
    walls = [
        wall_seconds(folder)
        for stage in ("train", "evaluate")
        for folder in (layout.steps / stage).iterdir()
    ]
    cpus = 1  # SMALL_SPEC asks the defaults: one CPU a step
    assert by_addition["1 more seed"]["hours"] == pytest.approx(sum(walls) * cpus / 3600)
    # A seed at each size: the same steps, shared out.
    assert at_100["hours"] + by_addition["a seed more at 50"]["hours"] == pytest.approx(
        by_addition["1 more seed"]["hours"]
    )
    # Twice the problems: each model evaluated again, at twice its evaluation's FLOPs.
    evaluations = [wall_seconds(folder) for folder in (layout.steps / "evaluate").iterdir()]
    assert by_addition["40 eval problems"]["hours"] == pytest.approx(
        2 * sum(evaluations) * cpus / 3600
    )

    first = saved["suggestions"][0]
    ran = cli(f"run {spec} {' '.join(THIN)} --executor inline --suggested")
    assert ran.code == 0, ran.err
    again = json.loads(layout.spec_file.read_text())
    key, value = first["overrides"][0].split("=", 1)
    if key == "seeds" or key == "sizes":
        assert again[key] == json.loads(value)
    else:
        assert again["stages"]["evaluate"]["problems"] == int(value)
    shown = cli("suggest small --target exponent:sft")
    assert f"last suggestion run ({first['addition']}) predicted" in shown.out


@pytest.mark.parametrize(
    "args, message",
    [
        ("suggest small", "--target: no arm has a baseline: give exponent:ARM"),
        ("suggest small --target exponent:rft", "--target: no arm 'rft'; the arms are sft"),
        ("suggest small --target multiplier:sft@100", "sft has no baseline among the arms"),
        ("suggest small --target speed:sft", "expected multiplier:ARM@SIZE or exponent:ARM"),
        ("suggest small --target exponent:sft -n 0", "-n: expected a number >= 1, got 0"),
        ("suggest small --target exponent:sft --budget 0", "--budget: expected a number > 0"),
        ("suggest nothing-here", "no results at"),
    ],
)
def test_bad_suggest_arguments_get_one_clear_error(small_run, cli, args, message):
    before = sorted(p.name for p in small_run[1].root.iterdir())
    result = cli(args)
    assert result.code == 2 and message in result.err, result.err
    assert "Traceback" not in result.err
    assert sorted(p.name for p in small_run[1].root.iterdir()) == before  # nothing written


def test_run_suggested_without_suggestions_says_so(small_run, cli):
    spec, _ = small_run
    result = cli(f"run {spec} --suggested")
    assert result.code == 2 and "no suggestions saved for small" in result.err


def test_more_eval_problems_evaluates_the_models_again_and_counts_each_once(small_run, cli):
    from analysis.points import load_points

    spec, layout = small_run
    assert load_points(layout).eval_size == 20
    assert cli("suggest small --target exponent:sft -n 10").code == 0
    saved = json.loads((layout.root / "suggested.json").read_text())
    names = [s["addition"] for s in saved["suggestions"]]
    rank = names.index("40 eval problems") + 1
    ran = cli(f"run {spec} {' '.join(THIN)} --executor inline --suggested {rank}")
    assert ran.code == 0, ran.err
    assert len(list((layout.steps / "train").iterdir())) == 2  # nothing trained again
    assert len(list((layout.steps / "evaluate").iterdir())) == 4  # on 20, then on 40
    assert cli("collect small").code == 0
    points = load_points(layout)
    assert len(points) == 2 and points.eval_size == 40  # the evaluations on 40, one per model
    shown = cli("suggest small --target exponent:sft")  # the run is told from the saved spec
    assert "last suggestion run (40 eval problems) predicted" in shown.out, shown.out


def test_a_seed_more_at_one_size_runs_there_and_the_next_one_adds_to_it(small_run, cli):
    from analysis.points import load_points

    spec, layout = small_run
    assert cli("suggest small --target exponent:sft -n 10").code == 0
    names = [s["addition"] for s in json.loads((layout.root / "suggested.json").read_text())[
        "suggestions"]]  # fmt: skip
    ran = cli(f"run {spec} {' '.join(THIN)} --executor inline --suggested "
              f"{names.index('a seed more at 100') + 1}")  # fmt: skip
    assert ran.code == 0, ran.err
    assert cli("collect small").code == 0
    points = load_points(layout)
    cells = sorted(zip(points.size.tolist(), points.seed.tolist(), strict=True))
    assert cells == [(50, 0), (100, 0), (100, 1)]
    shown = cli("suggest small --target exponent:sft -n 10")
    assert "last suggestion run (a seed more at 100) predicted" in shown.out, shown.out
    # Shown as a shell takes it, and the next seeds are new to every cell.
    assert "'extra_seeds=[{size: 100, seeds: [1, 2]}]'" in shown.out
    saved = {s["addition"]: s for s in json.loads((layout.root / "suggested.json").read_text())[
        "suggestions"]}  # fmt: skip
    assert saved["1 more seed"]["overrides"] == ["seeds=[0,2]"]
    assert saved["a seed more at 50"]["overrides"] == [
        "extra_seeds=[{size: 50, seeds: [2]}, {size: 100, seeds: [1]}]"
    ]
