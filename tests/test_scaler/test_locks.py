"""The experiment lock and the step claims, held by real processes (scaler.run.locks)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from scaler.layout import CLAIM_PREFIX, Layout
from scaler.run.locks import (
    ExperimentBusy,
    experiment_lock,
    is_alive,
    step_claim,
    this_process,
)


def _holder(code: str) -> subprocess.Popen:
    """A process that runs `code` (with the locks imported), prints `held` and sleeps."""
    imports = "from pathlib import Path\nfrom scaler.layout import Layout\n"
    script = imports + "from scaler.run.locks import *\n" + textwrap.dedent(code)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def _claim_holder(final: Path, seconds: float, then_publish: bool = False) -> subprocess.Popen:
    publish = f"Path({str(final)!r}).mkdir()" if then_publish else ""
    return _holder(
        f"""
        with step_claim(Path({str(final)!r})):
            print("held", flush=True)
            import time; time.sleep({seconds})
            {publish}
        """
    )


def test_a_second_run_is_told_who_holds_the_experiment(tmp_path):
    holder = _holder(
        f"""
        with experiment_lock(Layout(Path({str(tmp_path)!r}))):
            print("held", flush=True)
            import time; time.sleep(60)
        """
    )
    try:
        with pytest.raises(ExperimentBusy, match=f"being run by pid {holder.pid} on ") as busy:
            with experiment_lock(Layout(tmp_path)):
                pass
        assert busy.value.exit_code == 2
    finally:
        holder.kill()
        holder.wait()
    said: list[str] = []
    with experiment_lock(Layout(tmp_path), say=said.append):  # free again: the holder was killed
        note = json.loads(Layout(tmp_path).run_lock.read_text())
        assert note["pid"] == os.getpid()
    assert said == [
        f"a previous run of {tmp_path.name} ended without releasing it (pid {holder.pid} on "
        + said[0].split(" on ", 1)[1]
    ]
    assert not Layout(tmp_path).run_lock.exists()  # released: nothing left


def test_a_waiting_run_takes_the_experiment_when_the_holder_ends(tmp_path):
    holder = _holder(
        f"""
        with experiment_lock(Layout(Path({str(tmp_path)!r}))):
            print("held", flush=True)
            import time; time.sleep(1.5)
        """
    )
    said: list[str] = []
    started = time.time()
    with experiment_lock(Layout(tmp_path), wait=True, say=said.append):
        waited = time.time() - started
    holder.wait()
    assert (
        waited > 0.5 and said == [said[0]] and said[0].startswith(f"waiting for pid {holder.pid}")
    )


def test_a_step_claimed_elsewhere_is_waited_for_then_claimed(tmp_path):
    final = tmp_path / "train-abc"
    holder = _claim_holder(final, seconds=1.5, then_publish=True)
    claim = tmp_path / f"{CLAIM_PREFIX}train-abc"
    assert json.loads(claim.read_text())["pid"] == holder.pid
    with step_claim(final):
        assert final.is_dir()  # only once the holder had published
        assert json.loads(claim.read_text())["pid"] == os.getpid()
    assert not claim.exists()
    holder.wait()


def test_a_claim_dies_with_its_holder(tmp_path):
    final = tmp_path / "train-abc"
    holder = _claim_holder(final, seconds=60)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    started = time.time()
    with step_claim(final):
        assert time.time() - started < 2


def test_a_process_is_alive_until_it_ends_and_a_reused_pid_is_not_it():
    me = this_process()
    assert is_alive(me)
    if me["process_start"] is not None:  # Linux: the start time tells a reused pid apart
        assert not is_alive(me | {"process_start": me["process_start"] - 1})
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not is_alive({"pid": child.pid, "process_start": None})


def test_a_cancelled_local_job_cleans_up_and_releases_its_claim(tmp_path):
    """SIGTERM to a job tied to its run (as the run cancels it): no half-written step left."""
    out = tmp_path / "steps" / "sleepy" / "sleepy-abc"
    job = {
        "name": "sleepy-abc", "stage": "sleepy", "step_id": "abc", "module": "time_runner",
        "version": 1, "config": {}, "inputs": {}, "coords": {}, "out_dir": str(out),
        "owner": this_process(),
    }  # fmt: skip
    runner = tmp_path / "time_runner.py"
    runner.write_text(
        "import time\nfrom pydantic import BaseModel\nclass Config(BaseModel):\n    pass\n"
        "def run(config, inputs, out_dir):\n    print('held', flush=True)\n    time.sleep(60)\n"
    )
    script = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
        "from scaler.run.job import StepJob, run_step\n"
        f"run_step(StepJob(**{job!r}))\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) != 0
    left = sorted(p.name for p in out.parent.iterdir())
    assert left == [], left  # no .tmp-, no .claim-, no step
    events = [json.loads(line)["event"] for line in _attempts(tmp_path).read_text().splitlines()]
    assert events == ["started", "stopped"]


def _attempts(root: Path) -> Path:
    return root / "logs" / "attempts.jsonl"


def test_a_local_job_ends_when_its_run_is_killed(tmp_path):
    """kill -9 of the run: its job notices within a second, cleans up and exits."""
    out = tmp_path / "steps" / "sleepy" / "sleepy-abc"
    (tmp_path / "time_runner.py").write_text(
        "import time\nfrom pydantic import BaseModel\nclass Config(BaseModel):\n    pass\n"
        "def run(config, inputs, out_dir):\n    time.sleep(60)\n"
    )
    job = (
        "{'name': 'sleepy-abc', 'stage': 'sleepy', 'step_id': 'abc', 'module': 'time_runner', "
        f"'version': 1, 'config': {{}}, 'inputs': {{}}, 'coords': {{}}, 'out_dir': {str(out)!r}, "
        "'owner': owner}"
    )
    job_script = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
        "import json\nfrom scaler.run.job import StepJob, run_step\n"
        "owner = json.loads(sys.argv[1])\n"
        f"run_step(StepJob(**{job}))\n"
    )
    run_script = (
        "import json, subprocess, sys, time\nfrom scaler.run.locks import this_process\n"
        f"job = subprocess.Popen([sys.executable, '-c', {job_script!r}, "
        "json.dumps(this_process())])\n"
        "print(job.pid, flush=True)\ntime.sleep(60)\n"
    )
    run = subprocess.Popen([sys.executable, "-c", run_script], stdout=subprocess.PIPE, text=True)
    job_pid = int(run.stdout.readline())
    claim = out.parent / f"{CLAIM_PREFIX}{out.name}"
    deadline = time.time() + 30
    while not claim.exists() and time.time() < deadline:  # the job has started its step
        time.sleep(0.05)
    run.kill()
    run.wait()
    deadline = time.time() + 10
    while is_alive({"pid": job_pid, "process_start": None}) and time.time() < deadline:
        time.sleep(0.05)
    assert not is_alive({"pid": job_pid, "process_start": None})
    assert sorted(p.name for p in out.parent.iterdir()) == []
