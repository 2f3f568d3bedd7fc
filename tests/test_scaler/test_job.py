"""The job harness: a step is published whole or not at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scaler.run.job import StepJob, run_step


def _job(tmp_path: Path, **config) -> StepJob:
    return StepJob(
        name="fixture-abc",
        stage="fixture",
        step_id="abc",
        module="fixture_runner",
        version=1,
        config=config,
        inputs={},
        coords={"size": 1},
        out_dir=str(tmp_path / "fixture" / "fixture-abc"),
        provenance={"git_commit": "x"},
    )


def test_a_finished_step_has_its_records(tmp_path):
    assert run_step(_job(tmp_path, value=2.5))["value"] == 2.5
    final = tmp_path / "fixture" / "fixture-abc"
    assert sorted(p.name for p in final.iterdir()) == [
        "config.json", "manifest.json", "output.txt", "provenance.json", "result.json",
    ]  # fmt: skip
    record = json.loads((final / "config.json").read_text())
    assert record["coords"] == {"size": 1} and record["config"] == {"value": 2.5}
    provenance = json.loads((final / "provenance.json").read_text())
    assert provenance["git_commit"] == "x" and provenance["ended_at"] >= provenance["started_at"]
    assert [p.name for p in final.parent.iterdir()] == ["fixture-abc"]


def test_non_finite_metrics_are_stored_as_null(tmp_path):
    run_step(_job(tmp_path, diverge=True))
    result = json.loads((tmp_path / "fixture" / "fixture-abc" / "result.json").read_text())
    assert result["metrics"] == {"value": None, "nested": {"values": [None, 1.0]}}


def test_a_failed_step_publishes_nothing_and_keeps_its_error(tmp_path):
    with pytest.raises(RuntimeError, match="told to fail"):
        run_step(_job(tmp_path, fail=True))
    stage_dir = tmp_path / "fixture"
    assert [p.name for p in stage_dir.iterdir()] == [".failed-fixture-abc"]
    assert "told to fail" in (stage_dir / ".failed-fixture-abc" / "error.txt").read_text()
    # The next attempt succeeds and clears the failure.
    run_step(_job(tmp_path))
    assert [p.name for p in stage_dir.iterdir()] == ["fixture-abc"]


def test_leftovers_of_dead_attempts_are_removed(tmp_path):
    import socket

    stage_dir = tmp_path / "fixture"
    dead = stage_dir / f".tmp-fixture-abc-{socket.gethostname()}-999999999"
    dead.mkdir(parents=True)
    # What a kill -9 leaves with it: the claim's file, the dead holder's note in it.
    note = {"pid": 999999999, "host": socket.gethostname(), "since": 0}
    (stage_dir / ".claim-fixture-abc").write_text(json.dumps(note))
    run_step(_job(tmp_path))
    assert not dead.exists()
    assert sorted(p.name for p in stage_dir.iterdir()) == ["fixture-abc"]
