"""The fault suite: `scaler run` killed, stopped, doubled and starved of disk, then run again.

Each case runs the real CLI in its own session (so that `ps` finds every process it started,
however far they wandered) on the small demo grid with the local executor, and checks what a
user relies on: no process outlives the run, no step is executed twice (counted from the run's
attempts log, logs/attempts.jsonl), and the re-run ends with the DuckDB rows of a clean run.
The moments of the kills are drawn from a seeded generator, so a failure can be replayed. The
step-folder and database corruptions have their own tests (test_step_folders, test_store_repair).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import SMALL_SPEC, write_spec
from runs import no_process_left, rows, run_scaler, start_run

LOCAL = dict(SMALL_SPEC, executor={"name": "local", "parallel": 2})
ORPHAN_GRACE_S = 10.0


def _executions(results: Path) -> dict[str, list[dict]]:
    log = results / "small" / "logs" / "attempts.jsonl"
    events: dict[str, list[dict]] = {}
    for line in log.read_text().splitlines():
        event = json.loads(line)
        events.setdefault(event["step"], []).append(event)
    return events


def _check_each_step_ran_once(results: Path) -> None:
    """Every step finished exactly once, and no two attempts at a step ever overlapped."""
    for step, events in _executions(results).items():
        finished = [e for e in events if e["event"] == "finished"]
        assert len(finished) == 1, f"{step} finished {len(finished)} times: {events}"
        open_attempts = 0
        for event in sorted(events, key=lambda e: e["at"]):
            open_attempts += 1 if event["event"] == "started" else -1
            assert open_attempts <= 1, f"two attempts at {step} ran at once: {events}"


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> dict:
    """One uninterrupted run of the grid: the rows every faulted run must end with."""
    root = tmp_path_factory.mktemp("clean")
    spec = write_spec(root / "small.yaml", LOCAL)
    started = time.time()
    done = run_scaler(spec, root / "results")
    assert done.returncode == 0, done.stderr
    return {"rows": rows(root / "results"), "seconds": time.time() - started}


def _wait_for_running_train(results: Path, run: subprocess.Popen, timeout: float = 120) -> None:
    train = results / "small" / "steps" / "train"
    deadline = time.time() + timeout
    while time.time() < deadline and run.poll() is None:
        if train.is_dir() and any(p.name.startswith(".claim-") for p in train.iterdir()):
            return
        time.sleep(0.05)
    raise AssertionError("no train step started")


def _kill_and_rerun(tmp_path: Path, clean: dict, sig: int, delay: float) -> str:
    """Start a run, send `sig` to it `delay` seconds into its first train steps, check that
    nothing outlives it, run again and check the outcome; return the killed run's stderr."""
    results = tmp_path / "results"
    spec = write_spec(tmp_path / "small.yaml", LOCAL)
    run = start_run(spec, results)
    _wait_for_running_train(results, run)
    time.sleep(delay)
    os.kill(run.pid, sig)
    _, err = run.communicate(timeout=60)
    no_process_left(run.pid, ORPHAN_GRACE_S)
    rerun = run_scaler(spec, results)
    assert rerun.returncode == 0, rerun.stderr
    _check_each_step_ran_once(results)
    assert rows(results) == clean["rows"]
    return err


# make test stops the warm executor the same ways (tests/test_scaler/test_warm_executor.py)
# and kills the local one at chosen moments (tests/e2e/test_pipeline.py).
@pytest.mark.slow
def test_sigterm_cancels_the_running_steps_and_the_rerun_finishes(tmp_path, clean):
    delay = random.Random(15).uniform(0.0, 3.0)
    err = _kill_and_rerun(tmp_path, clean, signal.SIGTERM, delay)
    assert "Traceback" not in err
    if err:  # stopped mid-run (the grid may have finished first on a fast machine)
        assert err.startswith("scaler: error: stopped by SIGTERM") and err.count("\n") == 1


@pytest.mark.slow  # as the case above
def test_kill_9_leaves_no_job_behind_and_the_rerun_finishes(tmp_path, clean):
    _kill_and_rerun(tmp_path, clean, signal.SIGKILL, random.Random(9).uniform(0.0, 3.0))


def test_ctrl_c_stops_the_whole_group_with_one_line(tmp_path, clean):
    """Ctrl-C in a terminal sends SIGINT to every process of the foreground group."""
    results = tmp_path / "results"
    spec = write_spec(tmp_path / "small.yaml", LOCAL)
    run = start_run(spec, results)
    _wait_for_running_train(results, run)
    os.killpg(run.pid, signal.SIGINT)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 130 and err.startswith("scaler: error: interrupted: cancelled")
    assert err.count("\n") == 1 and "Traceback" not in err
    no_process_left(run.pid, ORPHAN_GRACE_S)
    train = results / "small" / "steps" / "train"
    assert not [p.name for p in train.iterdir() if p.name.startswith((".tmp-", ".claim-"))]


RANDOM_KILLS = int(os.environ.get("SCALER_FAULT_KILLS", "6"))
"""How many seeded kills the slow case tries (benchmarks/RESULTS.md records a longer run)."""


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(RANDOM_KILLS))
def test_kills_at_random_moments_lose_nothing(tmp_path, clean, seed):
    """Anywhere in the run, not only in a train step: from its first second to near its end
    (as long as a clean run took), so that each kill lands while it runs."""
    draw = random.Random(seed)
    sig = draw.choice([signal.SIGKILL, signal.SIGTERM])
    results = tmp_path / "results"
    spec = write_spec(tmp_path / "small.yaml", LOCAL)
    run = start_run(spec, results)
    time.sleep(draw.uniform(0.5, 0.9 * clean["seconds"]))
    assert run.poll() is None, "the run ended before its kill"
    os.kill(run.pid, sig)
    run.communicate(timeout=60)
    no_process_left(run.pid, ORPHAN_GRACE_S)
    rerun = run_scaler(spec, results)
    assert rerun.returncode == 0, rerun.stderr
    _check_each_step_ran_once(results)
    assert rows(results) == clean["rows"]


def test_a_second_run_says_who_holds_the_experiment_and_exits_2(tmp_path, clean):
    results = tmp_path / "results"
    spec = write_spec(tmp_path / "small.yaml", LOCAL)
    first = start_run(spec, results)
    _wait_for_running_train(results, first)
    second = run_scaler(spec, results)
    assert second.returncode == 2 and second.stdout == ""
    assert f"is being run by pid {first.pid}" in second.stderr and second.stderr.count("\n") == 1
    waiting = run_scaler(spec, results, "--wait")  # waits for the first, then has nothing to do
    assert first.wait(timeout=10) == 0
    assert waiting.returncode == 0, waiting.stderr
    assert "waiting for pid" in waiting.stdout and "nothing to run" in waiting.stdout
    _check_each_step_ran_once(results)
    assert rows(results) == clean["rows"]


@pytest.mark.slow  # the lock itself is checked in make test by the case above
def test_two_runs_started_together_execute_each_step_once(tmp_path, clean):
    results = tmp_path / "results"
    spec = write_spec(tmp_path / "small.yaml", LOCAL)
    runs = [start_run(spec, results, "--wait") for _ in range(2)]
    outcomes = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outcomes
    assert sum("nothing to run" in out for out, _ in outcomes) == 1
    _check_each_step_ran_once(results)
    assert rows(results) == clean["rows"]


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of 64 KiB (root only); `grow(size)` remounts it larger, as freeing space does."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (as in CI); a full disk is not tested")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)])
    if mounted.returncode != 0:
        pytest.skip("mount -t tmpfs failed here; a full disk is not tested")

    def grow(size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True)

    yield disk, grow
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_is_named_and_nothing_is_left_half_written(tmp_path, clean, small_disk):
    disk, grow = small_disk
    results = disk / "results"
    spec = write_spec(tmp_path / "small.yaml", LOCAL)
    for size in ("64k", "300k"):  # full while generating, then while saving a model
        grow(size)
        run = run_scaler(spec, results)
        # The failed step's own traceback tail is shown; scaler itself never crashes.
        assert run.returncode == 1 and run.stderr.startswith("scaler: error: "), run.stderr
        assert f"no space left on {disk}" in run.stderr and "scaler/cli.py" not in run.stderr
        files = [p for p in results.rglob("*") if p.is_file()]
        assert not [p for p in files if p.name == "error.txt" and p.stat().st_size == 0]
        assert not [p for p in files if p.name == "scaler.duckdb" and p.stat().st_size == 0]
    grow("64m")
    rerun = run_scaler(spec, results)
    assert rerun.returncode == 0, rerun.stderr
    _check_each_step_ran_once(results)
    assert rows(results) == clean["rows"]
