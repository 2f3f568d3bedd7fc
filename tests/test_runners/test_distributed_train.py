"""A train step of two processes (torch.distributed over gloo, started by torch's elastic
launcher) trains as one process does with the same global batch, keeps one folder, fails as a
whole with the failed rank's log when a rank is killed, and resumes from its checkpoint
(scaler.run.ranks)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, SMALL_SPEC, generate_small_world
from runners.model import ModelConfig
from runners.stages import train
from scaler.layout import TMP_PREFIX
from scaler.run.job import StepJob, run_step
from scaler.run.ranks import RankFailed

# 96 problems in global batches of 32: whole batches only, so that both worlds draw the same
# sequences at every step (an epoch's last partial batch is padded differently over 2 ranks).
CONFIG = train.Config(
    size=96,
    seed=0,
    min_steps=12,
    max_steps=12,
    eval_every=6,
    val_problems=16,
    max_new_tokens=24,
    model=ModelConfig(**SMALL_SPEC["model"]),
)

# run_step in a process of its own, as an executor runs it (spawned ranks need the guard).
RUN_STEP = """
import json, sys
from scaler.run.job import StepJob, run_step
if __name__ == "__main__":
    print(json.dumps(run_step(StepJob(**json.loads(sys.argv[1])))))
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return generate_small_world(tmp_path_factory.mktemp("distributed") / "generate")


def step_job(root: Path, name: str, data: Path, world_size: int, config=CONFIG) -> StepJob:
    stage_dir = root / "exp" / "steps" / "train"
    return StepJob(
        name=name,
        stage="train",
        step_id=name,
        module="runners.stages.train",
        version=2,
        config=config.model_dump(mode="json"),
        inputs={"data": str(data)},
        coords={},
        out_dir=str(stage_dir / name),
        work_dir=str(stage_dir / f".work-{name}"),
        world_size=world_size,
    )


def _start(job: StepJob) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", RUN_STEP, json.dumps(job.__dict__)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _session_processes(session: int) -> list[int]:
    alive = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.getsid(int(entry.name)) == session:
                alive.append(int(entry.name))
        except ProcessLookupError:
            pass
    return alive


def _rank_1_pid(job: StepJob) -> int:
    """Rank 1 trains in a scratch folder named after its pid (scaler.run.job)."""
    final = Path(job.out_dir)
    (scratch,) = final.parent.glob(f"{TMP_PREFIX}{final.name}-*-rank1")
    return int(scratch.name.removesuffix("-rank1").rsplit("-", 1)[1])


def _wait_for_progress(job: StepJob, steps: int, process: subprocess.Popen) -> None:
    progress = Path(job.work_dir) / "progress.json"
    deadline = time.time() + 240
    while time.time() < deadline:
        assert process.poll() is None, process.communicate()[1][-3000:]
        try:
            if json.loads(progress.read_text())["done"] >= steps:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"no progress to step {steps}")


def test_two_processes_train_as_one_with_the_same_global_batch(data, tmp_path):
    one = run_step(step_job(tmp_path, "one", data, 1))
    two = run_step(step_job(tmp_path, "two", data, 2))
    assert (one["world_size"], two["world_size"]) == (1, 2)
    steps_one, losses_one = zip(*one["train_losses"], strict=True)
    steps_two, losses_two = zip(*two["train_losses"], strict=True)
    assert steps_one == steps_two == (3, 6, 9, 12)
    # Sums over the ranks' gradients are added in another order: equal to float rounding.
    assert losses_two == pytest.approx(losses_one, rel=1e-5)
    assert two["best_val_accuracy"] == one["best_val_accuracy"]
    # Rank 0's folder alone: no scratch folder of rank 1, no work folder, nothing else.
    assert sorted(p.name for p in (tmp_path / "exp" / "steps" / "train").iterdir()) == [
        "one",
        "two",
    ]
    assert (tmp_path / "exp" / "steps" / "train" / "two" / "model").is_dir()


def test_a_batch_that_does_not_split_over_the_processes_is_refused(data, tmp_path):
    odd = CONFIG.model_copy(update={"batch_size": 31})
    with pytest.raises(RankFailed, match="batch_size=31 does not split over the step's 2"):
        run_step(step_job(tmp_path, "odd", data, 2, odd))
    error = (tmp_path / "exp" / "steps" / "train" / ".failed-odd" / "error.txt").read_text()
    assert error.startswith("rank ") and "of 2 failed (exit code 1)" in error
    assert "ValueError: batch_size=31" in error  # the failed rank's own traceback


def test_a_killed_rank_fails_the_step_with_its_log_and_leaves_nothing_running(data, tmp_path):
    long = CONFIG.model_copy(update={"min_steps": 3000, "max_steps": 3000, "eval_every": 1000})
    job = step_job(tmp_path, "killed", data, 2, long)
    process = _start(job)
    _wait_for_progress(job, 5, process)
    os.kill(_rank_1_pid(job), signal.SIGKILL)
    killed_at = time.time()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    assert time.time() - killed_at < 60  # the launcher stopped rank 0 at once
    assert "rank 1 of 2 failed (killed by SIGKILL)" in stderr
    stage_dir = tmp_path / "exp" / "steps" / "train"
    error = (stage_dir / ".failed-killed" / "error.txt").read_text()
    assert error.startswith("rank 1 of 2 failed (killed by SIGKILL); its log ends:")
    assert "[rank1]:" in error  # rank 1's own log, up to the kill
    assert not (stage_dir / "killed").exists()
    deadline = time.time() + 15  # multiprocessing's resource tracker ends after its parent
    while _session_processes(process.pid) and time.time() < deadline:
        time.sleep(0.2)
    left = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in _session_processes(process.pid)]
    assert left == []


# make test resumes one process from its checkpoint (tests/test_runners/test_train_resume.py)
# and trains two ranks as one (above).
@pytest.mark.slow
def test_a_two_rank_step_killed_mid_way_resumes_from_its_checkpoint(data, tmp_path):
    checkpointed = CONFIG.model_copy(
        update={"min_steps": 30, "max_steps": 30, "checkpoint_every": 10, "eval_every": 10}
    )
    job = step_job(tmp_path, "resumed", data, 2, checkpointed)
    process = _start(job)
    checkpoint = Path(job.work_dir) / "trainer" / "checkpoint-10" / "keep_best_on_validation.pt"
    deadline = time.time() + 240
    while not checkpoint.is_file():
        assert process.poll() is None and time.time() < deadline, process.communicate()[1][-3000:]
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # a requeue: every rank and the launcher, at once
    process.wait()
    # Both ranks wrote their random state into the one checkpoint both resume from.
    assert {p.name for p in checkpoint.parent.glob("rng_state*")} >= {
        "rng_state_0.pth",
        "rng_state_1.pth",
    }
    again = _start(job)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-3000:]
    metrics = json.loads(out.strip().splitlines()[-1])
    assert metrics["resumed_from_step"] >= 10 and metrics["world_size"] == 2
    uninterrupted = run_step(step_job(tmp_path, "uninterrupted", data, 2, checkpointed))
    assert metrics["final_train_loss"] == pytest.approx(uninterrupted["final_train_loss"], rel=1e-4)
