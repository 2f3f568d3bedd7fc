"""The whole path on the demo world: plan, run (inline and local), DuckDB, re-run, kill, failure.

The grid is tiny (two sizes, a few optimiser steps) so these run in CI; every stage is the real
one: problems generated, a model trained with trl, greedy evaluation, results in DuckDB.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from conftest import ROOT, check_small_database, finished_step_dirs, open_db


def test_inline_run_then_rerun_does_nothing(cli, results, small_spec):
    first = cli(f"run {small_spec} --executor inline")
    assert first.code == 0, first.err
    assert "ran 5 steps" in first.out
    check_small_database(results)
    done = finished_step_dirs(results)
    for name in done:
        files = set(os.listdir(results / "small" / "steps" / name.split("-")[0] / name))
        assert {"config.json", "provenance.json", "result.json"} <= files

    second = cli(f"run {small_spec} --executor inline")
    assert second.code == 0 and "nothing to run: all 5 steps" in second.out
    assert finished_step_dirs(results) == done

    plan = cli(f"plan {small_spec} --steps")
    assert "5 done, 0 to run" in plan.out

    # Collecting again changes nothing.
    with open_db(results) as con:
        before = con.execute("SELECT count(*) FROM eval_problems").fetchone()
    assert "collected 0 new steps" in cli("collect small").out
    with open_db(results) as con:
        assert con.execute("SELECT count(*) FROM eval_problems").fetchone() == before

    query = cli('query small "SELECT size, accuracy FROM evals ORDER BY size"')
    assert query.code == 0 and "size" in query.out and "100" in query.out
    bad = cli('query small "SELECT nope FROM evals"')
    assert bad.code == 2 and "sql" in bad.err
    write = cli('query small "DELETE FROM steps"')
    assert write.code == 2  # the connection is read-only


def test_local_executor_gives_the_same_results(cli, results, small_spec, tmp_path, monkeypatch):
    local = cli(f"run {small_spec} --executor local --parallel 2")
    assert local.code == 0, local.err
    check_small_database(results)

    # The same grid inline, elsewhere: identical step ids, and the same greedy answers.
    other = tmp_path / "other"
    monkeypatch.setenv("SCALER_RESULTS", str(other))
    assert cli(f"run {small_spec} --executor inline").code == 0
    query = "SELECT step_id, problem_id, output FROM eval_problems ORDER BY ALL"
    with open_db(results) as a, open_db(other) as b:
        assert a.execute(query).fetchall() == b.execute(query).fetchall()


def test_new_size_runs_only_its_own_steps(cli, results, small_spec):
    assert cli(f"run {small_spec} sizes=[50]").code == 0
    done = finished_step_dirs(results)
    plan = cli(f"plan {small_spec} --steps")
    assert "3 done, 2 to run" in plan.out
    assert "differs in size" in plan.out
    grown = cli(f"run {small_spec}")
    assert grown.code == 0 and "ran 2 steps (3 were done)" in grown.out
    after = finished_step_dirs(results)
    assert all(after[name] == mtime for name, mtime in done.items())


def test_a_failing_step_is_reported_and_the_rest_still_runs(cli, results, small_spec):
    # hidden=30 is not divisible by heads=4: model construction raises inside the train step.
    result = cli(f"run {small_spec} sizes=[50] model.heads=4 model.hidden=30 executor.retries=1")
    assert result.code == 1
    assert "running it again (retry 1 of 1)" in result.out  # then given up
    assert "1 step(s) failed" in result.err and "error.txt" in result.err
    assert "skipping 1 step(s)" in result.out
    failed = list((results / "small" / "steps" / "train").glob(".failed-train-*/error.txt"))
    assert len(failed) == 1 and "Traceback" in failed[0].read_text()
    assert "1 failed" in cli(f"plan {small_spec} sizes=[50] model.heads=4 model.hidden=30").out
    # The generate step finished and was collected.
    with open_db(results) as con:
        assert con.execute("SELECT stage FROM steps").fetchall() == [("generate",)]


def test_kill_at_any_moment_then_rerun_finishes_without_redoing(results, small_spec):
    env = os.environ | {"SCALER_RESULTS": str(results), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "scaler", "run", str(small_spec), "--executor", "local"]
    process = subprocess.Popen(
        command,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    train_dir = results / "small" / "steps" / "train"
    deadline = time.time() + 300
    while time.time() < deadline and not any(
        not d.name.startswith(".") for d in (train_dir.iterdir() if train_dir.is_dir() else [])
    ):
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # the whole tree: orchestrator and its jobs
    process.wait()

    done = finished_step_dirs(results)
    assert 2 <= len(done) < 5
    for name in done:  # every folder that counts is complete
        stage = name.split("-")[0]
        record = json.loads(
            (results / "small" / "steps" / stage / name / "result.json").read_text()
        )
        assert "metrics" in record

    rerun = subprocess.run(
        command[:5] + ["--executor", "inline"], env=env, capture_output=True, text=True
    )
    assert rerun.returncode == 0, rerun.stderr
    assert f"({len(done)} were done)" in rerun.stdout
    after = finished_step_dirs(results)
    assert len(after) == 5
    assert all(after[name] == mtime for name, mtime in done.items())
    leftovers = [p for p in (results / "small" / "steps").glob("*/.tmp-*")]
    assert leftovers == []
