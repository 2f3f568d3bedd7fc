"""A train step of two processes on the real local Slurm: one job of two tasks (one per rank,
`resources.train.processes`), torch.distributed over gloo from submitit's job environment,
training as one process does with the same global batch (scaler.run.ranks)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import SMALL_SPEC, open_db, requires_slurm, wait_for, write_spec
from scaler.layout import FAILED_PREFIX, TMP_PREFIX

pytestmark = requires_slurm

# 64 problems in global batches of 32: whole batches, drawn alike by one rank or two.
GRID = ["sizes=[64]", "executor.poll_s=0.5"]


def _train_metrics(results) -> dict:
    with open_db(results) as con:
        (metrics,) = con.execute("SELECT metrics FROM steps WHERE stage = 'train'").fetchone()
    return json.loads(metrics)


def test_a_two_task_train_job_trains_as_one_process(cli, results, tmp_path):
    spec = write_spec(tmp_path / "small.yaml", SMALL_SPEC | {"executor": {"name": "slurm"}})
    ranked = cli(["run", str(spec), *GRID, "resources.train.processes=2"])
    assert ranked.code == 0, ranked.err
    two = _train_metrics(results)

    alone = tmp_path / "alone"
    single = subprocess.run(
        [sys.executable, "-m", "scaler", "run", str(spec), *GRID, "executor.name=inline"],
        env={**os.environ, "SCALER_RESULTS": str(alone)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert single.returncode == 0, single.stderr
    one = _train_metrics(alone)

    assert (two["world_size"], one["world_size"]) == (2, 1)
    assert [step for step, _ in two["train_losses"]] == [step for step, _ in one["train_losses"]]
    for (_, loss_two), (_, loss_one) in zip(two["train_losses"], one["train_losses"], strict=True):
        assert abs(loss_two - loss_one) <= 1e-5 * loss_one
    train_dir = results / "small" / "steps" / "train"
    assert [p.name for p in train_dir.iterdir() if p.name.startswith(".")] == []
    assert not list(train_dir.glob(f"{FAILED_PREFIX}*"))
    # Both tasks of the one job ran: each wrote its own log.
    (record,) = [
        json.loads(line)
        for line in (results / "small" / "slurm" / "jobs.jsonl").read_text().splitlines()
        if json.loads(line)["stage"] == "train"
    ]
    task = record["tasks"][0]  # its log per rank: <task>_<rank>_log.err
    logs = sorted(p.name for p in (results / "small" / "logs" / "slurm").glob(f"{task}_*_log.err"))
    assert len(logs) == 2, logs


LONG = [
    "stages.train.min_steps=3000",
    "stages.train.max_steps=3000",
    "stages.train.eval_every=1000",
]


def _rank_1_pid(results) -> int | None:
    """Rank 1 trains in a scratch folder named after its pid (scaler.run.job)."""
    found = list((results / "small" / "steps" / "train").glob(f"{TMP_PREFIX}*-rank1"))
    return int(found[0].name.removesuffix("-rank1").rsplit("-", 1)[1]) if found else None


def _train_job(results) -> str:
    for line in (results / "small" / "slurm" / "jobs.jsonl").read_text().splitlines():
        if json.loads(line)["stage"] == "train":
            return json.loads(line)["tasks"][0].split("_")[0]
    raise AssertionError("no train job")


def test_a_killed_rank_fails_the_job_with_that_ranks_log(cli, results, tmp_path):
    spec = write_spec(tmp_path / "small.yaml", SMALL_SPEC | {"executor": {"name": "slurm"}})
    detached = cli(["run", str(spec), "--detach", *GRID, *LONG, "resources.train.processes=2"])
    assert detached.code == 0, detached.err
    pid = wait_for(lambda: _rank_1_pid(results), "rank 1 to start training", timeout=240)
    time.sleep(3)  # inside the training loop, past the process group's set-up
    os.kill(pid, signal.SIGKILL)
    killed_at = time.time()
    run = cli(["run", str(spec), *GRID, *LONG, "resources.train.processes=2", "executor.retries=0"])
    assert run.code == 1 and "FAILED train" in run.out
    assert time.time() - killed_at < 120  # srun ended rank 0 too: nothing waited in gloo
    # The error is rank 1's: srun named its task first, and its log is the one shown.
    assert "_1_log.err" in run.err
    status = cli("status small").out
    assert "1 failed" in status and "_1_log.err" in status


@pytest.mark.slow  # three trainings of a few hundred steps on the local Slurm
def test_a_requeued_two_rank_step_resumes_from_its_checkpoint(cli, results, tmp_path):
    spec = write_spec(tmp_path / "small.yaml", SMALL_SPEC | {"executor": {"name": "slurm"}})
    checkpointed = [
        "stages.train.min_steps=400",
        "stages.train.max_steps=400",
        "stages.train.eval_every=200",
        "stages.train.checkpoint_every=50",
        "resources.train.processes=2",
    ]
    detached = cli(["run", str(spec), "--detach", *GRID, *checkpointed])
    assert detached.code == 0, detached.err
    work = results / "small" / "steps" / "train"
    wait_for(
        lambda: list(work.glob(".work-*/trainer/checkpoint-*/keep_best_on_validation.pt")),
        "a complete checkpoint",
        timeout=240,
    )
    subprocess.run(["scontrol", "requeue", _train_job(results)], check=True)
    run = cli(["run", str(spec), *GRID, *checkpointed])
    assert run.code == 0, run.err
    metrics = _train_metrics(results)
    assert metrics["resumed_from_step"] >= 50 and metrics["world_size"] == 2
