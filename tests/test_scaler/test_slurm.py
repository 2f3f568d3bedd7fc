"""The demo grid on a real Slurm (the local single-node cluster of scripts/start-local-slurm.sh):
job arrays, dependencies, follow, detach and status, failures, cancellation, time limits.

Every step is the real one. A train step is made to fail for real by truncating the problems it
reads, while `hold` (an extra sbatch option from the spec) keeps it from starting until then.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import SMALL_SPEC, check_small_database, open_db, requires_slurm, wait_for, write_spec
from scaler.manifest import write_manifest

pytestmark = requires_slurm
FAST = ["executor.poll_s=0.5"]


@pytest.fixture
def spec(tmp_path) -> Path:
    return write_spec(tmp_path / "small.yaml", SMALL_SPEC | {"executor": {"name": "slurm"}})


@pytest.fixture(autouse=True)
def cancel_leftovers(results):
    yield
    subprocess.run([sys.executable, "-m", "scaler", "cancel", "small"], capture_output=True)


def _records(results: Path) -> list[dict]:
    path = results / "small" / "slurm" / "jobs.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def _job_of(results: Path, stage: str) -> str:
    record = next(r for r in _records(results) if r["stage"] == stage)
    return record["tasks"][0].split("_")[0]


def _step_dir(results: Path, stage: str) -> Path | None:
    folder = results / "small" / "steps" / stage
    found = [d for d in folder.iterdir() if not d.name.startswith(".")] if folder.is_dir() else []
    return found[0] if found else None


def _truncate_training_data(results: Path, problems: int) -> bytes:
    """Keep the first `problems` training problems; return the whole file to restore it. The
    step's manifest is written again, so the step stays done (not damaged) and the train steps
    reading it fail for real."""
    folder = wait_for(lambda: _step_dir(results, "generate"), "the generate step")
    train = folder / "train.jsonl"
    whole = train.read_bytes()
    _rewrite(folder, b"".join(whole.splitlines(keepends=True)[:problems]))
    return whole


def _rewrite(generate: Path, train: bytes) -> None:
    (generate / "train.jsonl").write_bytes(train)
    write_manifest(generate)


def _scaler(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "scaler", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_grid_runs_as_arrays_and_matches_the_inline_executor(
    cli, results, spec, tmp_path, monkeypatch
):
    run = cli(["run", str(spec), *FAST])
    assert run.code == 0, run.err
    assert "submitted 5 steps in 3 jobs: generate" in run.out
    assert "train" in run.out and "(2 tasks)" in run.out and "[5/5] done evaluate" in run.out
    check_small_database(results)
    # One sbatch call per stage, and each later array waits on the ones before it.
    assert [(r["stage"], len(r["tasks"])) for r in _records(results)] == [
        ("generate", 1),
        ("train", 2),
        ("evaluate", 2),
    ]
    script = results / "small" / "logs" / "slurm" / f"{_job_of(results, 'evaluate')}_submission.sh"
    assert "--kill-on-invalid-dep=yes" in script.read_text()
    assert "5 done" in cli("status small").out
    assert "nothing to run: all 5 steps" in cli(["run", str(spec)]).out

    inline = tmp_path / "inline"
    monkeypatch.setenv("SCALER_RESULTS", str(inline))
    assert cli(["run", str(spec), "--executor", "inline"]).code == 0
    query = "SELECT step_id, problem_id, output FROM eval_problems ORDER BY ALL"
    with open_db(results) as on_slurm, open_db(inline) as here:
        assert on_slurm.execute(query).fetchall() == here.execute(query).fetchall()


def test_detach_returns_at_once_and_status_follows_to_done(cli, results, spec):
    started = time.time()
    run = cli(["run", str(spec), "--detach"])
    assert run.code == 0, run.err
    assert time.time() - started < 15 and "scaler status small" in run.out
    seen = set()

    def finished() -> bool:
        out = cli("status small").out
        seen.update(word for word in ("queued", "running") if f"0 {word}" not in out)
        return "5 steps; 5 done" in out

    wait_for(finished, "the detached grid to finish")
    assert seen, "status never showed a queued or running step"
    assert cli(["run", str(spec)]).out.startswith("nothing to run")


def test_a_failing_step_is_reported_its_dependents_cancelled_and_the_rest_finish(
    cli, results, spec
):
    held = cli(["run", str(spec), "--detach", "resources.train.sbatch.hold=true"])
    assert held.code == 0, held.err
    _truncate_training_data(results, 60)  # size 50 still trains; size 100 raises
    subprocess.run(["scontrol", "release", _job_of(results, "train")], check=True)

    run = cli(["run", str(spec), *FAST])
    assert run.code == 1
    assert "FAILED train" in run.out and "size=100" in run.out
    assert "1 step(s) failed" in run.err and "exceeds the 60 problems" in run.err
    done = {d.name.split("-")[0] for d in (results / "small" / "steps").glob("*/[!.]*")}
    assert done == {"generate", "train", "evaluate"}
    # The size-50 evaluation waited on its own train task only (aftercorr) and finished.
    with open_db(results) as con:
        assert con.execute("SELECT size FROM evals").fetchall() == [(50,)]
    status = cli("status small").out
    assert "3 done" in status and "1 failed" in status and "1 cancelled" in status
    assert "error.txt" in status and "exceeds the 60 problems" in status


def test_a_failed_step_is_retried_up_to_the_limit(results, spec):
    held = _scaler("run", str(spec), "--detach", "resources.train.sbatch.hold=true")
    assert held.wait() == 0, held.stderr.read()
    whole = _truncate_training_data(results, 60)
    subprocess.run(["scontrol", "release", _job_of(results, "train")], check=True)
    follow = _scaler("run", str(spec), "executor.retries=1", *FAST)
    failed = results / "small" / "steps" / "train"
    wait_for(lambda: list(failed.glob(".failed-*")), "the first attempt to fail")
    _rewrite(_step_dir(results, "generate"), whole)  # a transient fault
    out, err = follow.communicate(timeout=300)
    assert follow.returncode == 0, err
    assert "submitting it again (retry 1 of 1)" in out and "collected 5 new steps" in out


def test_a_job_cancelled_mid_run_is_reported_and_a_rerun_completes_it(cli, results, spec):
    # Long enough (~15 s) that the job is still training when Slurm kills it: submitit ignores
    # the SIGTERM of scancel, and a step that finishes within KillWait would count as done.
    long_train = ["sizes=[50]", "stages.train.min_steps=600", "stages.train.max_steps=600"]
    assert cli(["run", str(spec), "--detach", *long_train]).code == 0

    def a_running_train() -> str | None:
        train = _job_of(results, "train")
        out = subprocess.run(
            ["squeue", "-h", "-r", "-t", "R", "-o", "%i", "-j", train],
            capture_output=True,
            text=True,
        ).stdout.split()
        return out[0] if out else None

    def training_started() -> bool:
        # Its temporary folder exists once the runner runs: submitit's handlers are installed
        # by then, so SIGTERM is ignored and the job stays in the queue for KillWait. Cancelled
        # earlier, during Python's start-up, it would vanish before the re-run below looks.
        return any((results / "small" / "steps" / "train").glob(".tmp-*"))

    wait_for(training_started, "a train step to start running")
    victim = wait_for(a_running_train, "a train task to start")
    subprocess.run(["scancel", victim], check=True)
    run = cli(["run", str(spec), *long_train, *FAST])
    assert run.code == 1 and "CANCELLED train" in run.out
    assert "1 done, 2 cancelled" in cli("status small").out  # the train step and its evaluation
    rerun = cli(["run", str(spec), *long_train, *FAST])
    assert rerun.code == 0, rerun.err
    assert "ran 2 steps" in rerun.out or "[2/2] done evaluate" in rerun.out


GRID_2X2 = ["sizes=[50,100]", "seeds=[0,1]"]
# Long enough (~15 s) that a train task is still training when Slurm kills it (as below).
LONG_TRAIN = ["stages.train.min_steps=600", "stages.train.max_steps=600"]


def _cancel_a_running_train_task(results: Path) -> tuple[str, str]:
    """scancel a train task once it is training; (its step, its job)."""
    train = wait_for(lambda: next((r for r in _records(results) if r["stage"] == "train"), None),
                      "the train array")  # fmt: skip
    wait_for(lambda: any(r["stage"] == "evaluate" for r in _records(results)), "the evaluations")
    job = train["tasks"][0].split("_")[0]
    step_of = dict(zip(train["tasks"], train["steps"], strict=True))
    folder = results / "small" / "steps" / "train"

    def training() -> str | None:
        # Past Python's start-up (its temporary folder exists), so the cancelled job stays in
        # the queue as CANCELLED for KillWait instead of vanishing.
        running = subprocess.run(
            ["squeue", "-h", "-r", "-t", "R", "-o", "%i", "-j", job], capture_output=True, text=True
        ).stdout.split()
        started = {d.name for d in folder.glob(".tmp-*")} if folder.is_dir() else set()
        return next((t for t in running if any(step_of[t] in d for d in started)), None)

    victim = wait_for(training, "a train task to start training")
    subprocess.run(["scancel", victim], check=True)
    return step_of[victim], job


def _models(results: Path) -> dict[str, str]:
    """Finished evaluate step -> the train step it evaluated (its config.json's input)."""
    found = {}
    for folder in (results / "small" / "steps" / "evaluate").glob("[!.]*"):
        config = json.loads((folder / "config.json").read_text())
        found[folder.name] = Path(config["inputs"]["model"]).name
    return found


def _all_ended(job: str) -> bool:
    states = subprocess.run(
        ["squeue", "-h", "-r", "-t", "all", "-j", job, "-o", "%T"], capture_output=True, text=True
    ).stdout.split()
    return bool(states) and all(state in ("CANCELLED", "COMPLETED") for state in states)


@pytest.mark.slow  # a minute or more on 2 cores: 600-step trains
def test_a_cancelled_train_task_cancels_only_its_own_evaluation(cli, results, spec):
    # A 2x2 grid with one eval set: evaluation i waits on train task i only (aftercorr).
    assert cli(["run", str(spec), "--detach", *GRID_2X2, *LONG_TRAIN]).code == 0
    _, train_job = _cancel_a_running_train_task(results)
    [evaluate] = [r for r in _records(results) if r["stage"] == "evaluate"]
    job = evaluate["tasks"][0].split("_")[0]
    script = results / "small" / "logs" / "slurm" / f"{job}_submission.sh"
    assert f"aftercorr:{train_job}" in script.read_text()
    wait_for(lambda: _all_ended(job), "the evaluations to end", timeout=240)
    states = subprocess.run(
        ["squeue", "-h", "-r", "-t", "all", "-j", job, "-o", "%T"], capture_output=True, text=True
    ).stdout.split()
    assert sorted(states) == ["CANCELLED", "COMPLETED", "COMPLETED", "COMPLETED"]
    assert "7 done, 2 cancelled" in cli("status small").out  # the train task and its evaluation
    # The re-run submits what was cancelled, the train step and its evaluation, and no more.
    rerun = cli(["run", str(spec), *GRID_2X2, *LONG_TRAIN, *FAST])
    assert rerun.code == 0, rerun.err
    assert "submitted 2 steps in 2 jobs" in rerun.out
    assert "cancelled with their array" not in rerun.out
    assert "9 steps; 9 done" in cli("status small").out


@pytest.mark.slow  # a minute or more on 2 cores: 600-step trains
def test_steps_cancelled_with_their_array_are_named_and_submitted_again(cli, results, spec):
    # Two eval sets: eight evaluations of four models in one array, which waits on the whole
    # train array. Cancelling one train task cancels all eight; the six that do not need it are
    # named and submitted again, alone, and the run finishes once the train step is run again.
    grid = [*GRID_2X2, "eval_sets=[test,val]", *LONG_TRAIN]
    follow = _scaler("run", str(spec), *grid, *FAST)
    victim, _ = _cancel_a_running_train_task(results)
    out, err = follow.communicate(timeout=300)
    assert follow.returncode == 1, err
    [line] = [line for line in out.splitlines() if "cancelled with their array" in line]
    evaluations = [r for r in _records(results) if r["stage"] == "evaluate"]
    assert len(evaluations) == 2
    first, again = evaluations
    assert len(first["steps"]) == 8 and len(again["steps"]) == 6
    assert line.strip().startswith(
        f"6 evaluate steps were cancelled with their array when {victim} was cancelled; "
        "they do not need it and are submitted again: "
    )
    assert line.split(": ", 1)[1].split(", ") == again["steps"]
    models = _models(results)  # the six finished evaluations, none of the victim's model
    assert set(again["steps"]) == set(models) and victim not in models.values()
    assert "2 step(s) not run" in out  # the victim's own evaluations
    assert "10 done, 3 cancelled" in cli("status small").out

    rerun = cli(["run", str(spec), *grid, *FAST])
    assert rerun.code == 0, rerun.err
    assert (
        "submitted 3 steps in 2 jobs" in rerun.out and "cancelled with their array" not in rerun.out
    )
    assert "13 steps; 13 done" in cli("status small").out


@pytest.mark.slow  # a minute or more on 2 cores: 600-step trains
def test_a_rerun_names_the_steps_cancelled_with_their_array(cli, results, spec):
    # Detached: nobody follows when the array is cancelled; the re-run that submits the steps
    # again says which of them were cancelled for a train task they do not need.
    grid = ["sizes=[50,100]", "eval_sets=[test,val]", *LONG_TRAIN]
    assert cli(["run", str(spec), "--detach", *grid]).code == 0
    victim, _ = _cancel_a_running_train_task(results)
    evaluate = next(r for r in _records(results) if r["stage"] == "evaluate")
    wait_for(lambda: _all_ended(evaluate["tasks"][0].split("_")[0]), "the evaluations to end")
    status = cli("status small").out
    assert "2 evaluate steps were cancelled with their array" in status
    assert "scaler run` submits them again" in status
    rerun = cli(["run", str(spec), *grid, *FAST])
    assert rerun.code == 0, rerun.err
    models = _models(results)
    innocent = [step for step in evaluate["steps"] if models[step] != victim]
    assert len(innocent) == 2
    assert (
        f"2 evaluate steps were cancelled with their array when {victim} was cancelled; "
        f"they do not need it and are submitted again: {', '.join(innocent)}"
    ) in rerun.out


def test_a_changed_spec_never_orphans_queued_steps_and_cancel_empties_the_queue(cli, results, spec):
    held = cli(["run", str(spec), "--detach", "resources.default.sbatch.hold=true"])
    assert held.code == 0 and "submitted 5 steps" in held.out
    submitted = _records(results)

    again = cli(["run", str(spec), "--detach", "resources.default.sbatch.hold=true"])
    assert "nothing new to submit: 5 steps are already queued" in again.out
    smaller = cli(["run", str(spec), "sizes=[50]"])
    assert smaller.code == 2 and "are not in this spec" in smaller.err
    elsewhere = cli(["run", str(spec), "--executor", "local"])
    assert elsewhere.code == 2 and "queued or running on Slurm" in elsewhere.err
    assert _records(results) == submitted  # nothing more was submitted

    cancelled = cli("cancel small")
    assert cancelled.code == 0 and "cancelled 5 queued or running steps in 3 jobs" in cancelled.out
    assert "5 cancelled" in cli("status small").out


def test_resources_slurm_refuses_are_one_error_before_anything_is_submitted(cli, results, spec):
    bad = cli(["run", str(spec), "resources.train.partition=nosuchpartition"])
    assert bad.code == 2
    assert "resources.train: sbatch refuses these resources" in bad.err
    assert "\n" not in bad.err.strip()
    assert not (results / "small").exists()  # nothing written


@pytest.mark.slow  # two to three minutes: Slurm's 30-s time-limit timer and a 1-min limit
def test_a_train_step_requeued_at_its_time_limit_resumes_from_its_checkpoint(cli, results, spec):
    # About a minute of training under a 1-minute limit. Slurm checks time limits on a 30-s
    # timer and signals a job when its warning (10 s before the limit) falls before the next
    # check: 20-50 s into the first attempt, about 30 s into each requeued one (they start on
    # that timer). submitit requeues the job each time; every attempt resumes from the last
    # checkpoint (every 100 steps), and the third or fourth finishes.
    long_train = [
        "sizes=[50]",
        "stages.train.min_steps=3000",
        "stages.train.max_steps=3000",
        "stages.train.eval_every=1000",
        "stages.train.checkpoint_every=100",
        "resources.train.time_min=1",
        "resources.train.signal_delay_s=10",
        "executor.max_timeouts=5",
    ]
    run = cli(["run", str(spec), *long_train, *FAST])
    assert run.code == 0, run.err
    with open_db(results) as con:
        resumed = con.execute(
            "SELECT value FROM metrics WHERE name = 'resumed_from_step'"
        ).fetchone()[0]
    assert resumed >= 100
    log = results / "small" / "logs" / "slurm" / f"{_job_of(results, 'train')}_0_log.out"
    assert "Requeued job" in log.read_text()
    assert not list((results / "small" / "steps" / "train").glob(".work-*"))  # cleaned up
