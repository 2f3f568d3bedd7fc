"""The warm executor (scaler.run.warm) with real worker processes: a worker killed mid-step, a
step that calls os._exit, a step over its time limit, Ctrl-C and kill -9 of `scaler run`, and
the small grid's DuckDB rows against submitit's local executor.

The crash cases run a tiny runner written into tmp_path (imported by the spawned workers through
sys.path and PYTHONPATH), driven the way scaler.run.local's scheduler drives an executor.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import SMALL_SPEC, write_spec
from runs import no_process_left, rows, run_scaler, start_run
from scaler.run import warm
from scaler.run.job import StepJob
from scaler.run.locks import is_alive
from scaler.run.warm import StepStopped, WarmExecutor, WorkerDied
from scaler.spec.schema import Resources

CRASH_RUNNER = '''
import os, signal, time
from pathlib import Path
from pydantic import BaseModel

class Config(BaseModel):
    how: str = ""
    marker: str = ""
    """The step misbehaves (`how`) only while this file exists: a re-run after it is gone
    completes."""

class SignalledWhileCollected:
    def __del__(self):  # the SIGTERM handler runs in here, where Python ignores what it raises
        os.kill(os.getpid(), signal.SIGTERM)

def run(config, inputs, out_dir):
    (out_dir / "partial.txt").write_text("partial")
    if config.how == "cancelled_in_del":
        SignalledWhileCollected()  # dropped at once: its __del__ runs here
        time.sleep(5)  # what the step would go on doing if the cancel were lost
    if config.marker and Path(config.marker).exists():
        if config.how == "exit":
            os._exit(3)
        if config.how == "deaf":  # does not answer SIGTERM
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if config.how in ("hang", "deaf"):
            while Path(config.marker).exists():
                time.sleep(0.05)
    return {"pid": os.getpid()}
'''
WARM = dict(SMALL_SPEC, executor={"name": "warm", "parallel": 2})
LOCAL = dict(SMALL_SPEC, executor={"name": "local", "parallel": 2})


@pytest.fixture
def runner(tmp_path, monkeypatch) -> str:
    folder = tmp_path / "runners"
    folder.mkdir()
    (folder / "crash_runner.py").write_text(CRASH_RUNNER)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])
    )
    return "crash_runner"


@pytest.fixture
def executor():
    made = WarmExecutor(parallel=2)
    yield made
    made.shutdown()


def _job(root: Path, name: str, **config) -> StepJob:
    return StepJob(
        name=name,
        stage="crash",
        step_id=name,
        module="crash_runner",
        version=1,
        config=config,
        inputs={},
        coords={},
        out_dir=str(root / "exp" / "steps" / "crash" / name),
    )


DEFAULT = Resources()


def _run_all(executor: WarmExecutor, jobs: list[StepJob], resources=DEFAULT) -> dict:
    """Run `jobs` as the scheduler does (a slot at a time); name -> metrics or the exception."""
    queue, running, outcome = list(jobs), {}, {}
    while queue or running:
        while queue and len(running) < executor.slots:
            job = queue.pop(0)
            running[job.name] = executor.submit(job, resources)
        for name in [n for n, h in running.items() if h.done()]:
            try:
                outcome[name] = running.pop(name).result()
            except Exception as error:  # noqa: BLE001 - the outcome under test
                outcome[name] = error
        time.sleep(0.01)
    return outcome


def _wait_for_claim(crash_dir: Path, name: str, timeout: float = 30) -> int:
    """The pid in the step's claim note: the process running it."""
    claim = crash_dir / f".claim-{name}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            return json.loads(claim.read_text())["pid"]
        except (OSError, ValueError, KeyError):
            time.sleep(0.02)
    raise AssertionError(f"{name} never started")


def _leftovers(crash_dir: Path) -> list[str]:
    return [p.name for p in crash_dir.iterdir() if p.name.startswith((".tmp-", ".claim-"))]


def test_a_worker_killed_mid_step_fails_that_step_alone(tmp_path, runner, executor):
    marker = tmp_path / "hang"
    marker.touch()
    jobs = [_job(tmp_path, "a", how="hang", marker=str(marker))]
    jobs += [_job(tmp_path, name) for name in ("b", "c", "d")]
    crash_dir = tmp_path / "exp" / "steps" / "crash"
    handle = executor.submit(jobs[0], Resources())
    other = executor.submit(jobs[1], Resources())
    os.kill(_wait_for_claim(crash_dir, "a"), signal.SIGKILL)
    while not (handle.done() and other.done()):
        time.sleep(0.01)
    with pytest.raises(WorkerDied, match=r"its worker process died \(killed by SIGKILL"):
        handle.result()
    survivor = other.result()["pid"]
    outcome = _run_all(executor, jobs[2:])  # the grid goes on: a fresh worker takes the slot
    assert {name: type(value) for name, value in outcome.items()} == {"c": dict, "d": dict}
    assert survivor in {value["pid"] for value in outcome.values()}  # the other slot's worker
    marker.unlink()
    rerun = _run_all(executor, jobs[:1])
    assert isinstance(rerun["a"], dict) and (crash_dir / "a" / "partial.txt").is_file()
    assert not _leftovers(crash_dir)


def test_a_step_calling_os_exit_fails_alone_and_its_rerun_completes(tmp_path, runner, executor):
    marker = tmp_path / "exit"
    marker.touch()
    jobs = [_job(tmp_path, "quits", how="exit", marker=str(marker))]
    jobs += [_job(tmp_path, name) for name in ("b", "c", "d")]
    outcome = _run_all(executor, jobs)
    assert isinstance(outcome["quits"], WorkerDied)
    assert "its worker process died (exit code 3)" in str(outcome["quits"])
    assert str(outcome["quits"].paths.stderr).endswith("logs/warm/quits.log")
    assert all(isinstance(outcome[name], dict) for name in "bcd")
    marker.unlink()
    assert isinstance(_run_all(executor, jobs[:1])["quits"], dict)


def test_a_worker_that_died_between_steps_is_replaced(tmp_path, runner, executor):
    first = _run_all(executor, [_job(tmp_path, "first")])["first"]["pid"]
    os.kill(first, signal.SIGKILL)
    while _state(first) not in ("Z", "gone"):
        time.sleep(0.01)
    second = _run_all(executor, [_job(tmp_path, "second")])["second"]
    assert isinstance(second, dict) and second["pid"] != first


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"


def test_a_cancel_that_lands_in_a_del_method_still_stops_the_step(tmp_path, runner, executor):
    # A SIGTERM handled while the garbage collector runs a __del__ raises Cancelled where Python
    # ignores it ("Exception ignored in"); the lifeline sends it again, to land where it counts.
    outcome = _run_all(executor, [_job(tmp_path, "del", how="cancelled_in_del")])
    assert str(outcome["del"]) == "stopped: cancelled by signal SIGTERM"
    assert _leftovers(tmp_path / "exp" / "steps" / "crash") == []


def test_a_step_over_its_time_limit_is_stopped_cleanly(tmp_path, runner, executor):
    # time_min is whole minutes in a spec; a fraction here, past the spec's validation.
    limit = Resources.model_construct(time_min=0.02)  # 1.2 s
    marker = tmp_path / "hang"
    marker.touch()
    job = _job(tmp_path, "slow", how="hang", marker=str(marker))
    started = time.time()
    outcome = _run_all(executor, [job], resources=limit)
    assert time.time() - started < 10
    assert isinstance(outcome["slow"], StepStopped)
    assert str(outcome["slow"]) == "over its time limit of 0.02 min"
    crash_dir = tmp_path / "exp" / "steps" / "crash"
    assert not (crash_dir / "slow").exists() and not _leftovers(crash_dir)
    events = (tmp_path / "exp" / "logs" / "attempts.jsonl").read_text().splitlines()
    assert [json.loads(line)["event"] for line in events] == ["started", "stopped"]
    # Stopped by the lifeline, not killed: the same worker runs the next step.
    pids = executor.worker_pids()
    assert isinstance(_run_all(executor, [_job(tmp_path, "next")])["next"], dict)
    assert executor.worker_pids() == pids


def test_a_step_deaf_to_sigterm_is_killed_after_the_grace(tmp_path, runner, executor, monkeypatch):
    monkeypatch.setattr(warm, "STOP_GRACE_S", 0.5)
    marker = tmp_path / "deaf"
    marker.touch()
    job = _job(tmp_path, "deaf", how="deaf", marker=str(marker))
    outcome = _run_all(executor, [job], resources=Resources.model_construct(time_min=0.01))
    assert isinstance(outcome["deaf"], StepStopped)
    assert str(outcome["deaf"]) == "over its time limit of 0.01 min: its worker was killed"
    marker.unlink()
    assert isinstance(_run_all(executor, [job])["deaf"], dict)


def test_shutdown_ends_a_worker_that_its_pool_never_tells_to_stop(tmp_path, runner, monkeypatch):
    # A pool whose manager thread has ended sends its worker no sentinel: the worker waits for
    # work, and the exiting run (multiprocessing joins every child at exit) waited for it.
    monkeypatch.setattr(warm, "STOP_GRACE_S", 0.5)
    executor = WarmExecutor(parallel=1)
    _run_all(executor, [_job(tmp_path, "a")])
    [pid] = executor.worker_pids()
    silent, executor._pools[0] = executor._pools[0], None  # kept: no shutdown on collection
    executor.shutdown()
    assert not is_alive({"pid": pid, "process_start": None})
    silent.shutdown(wait=False)


# ---- `scaler run` with the warm executor, in its own session ---------------------------------


def _train_claim_pid(results: Path, run: subprocess.Popen, timeout: float = 120) -> int:
    train = results / "small" / "steps" / "train"
    deadline = time.time() + timeout
    while time.time() < deadline and run.poll() is None:
        for claim in train.glob(".claim-*") if train.is_dir() else ():
            with_note = claim.read_text() if claim.exists() else ""
            if with_note:
                return json.loads(with_note)["pid"]
        time.sleep(0.05)
    raise AssertionError("no train step started")


@pytest.mark.parametrize(
    ("sig", "code", "says"),
    [(signal.SIGINT, 130, "interrupted: cancelled"), (signal.SIGTERM, 143, "stopped by SIGTERM")],
)
def test_ctrl_c_or_a_kill_stops_the_run_with_one_line_and_leaves_no_process(
    tmp_path, sig, code, says
):
    results = tmp_path / "results"
    run = start_run(write_spec(tmp_path / "small.yaml", WARM), results)
    _train_claim_pid(results, run)
    if sig == signal.SIGINT:
        os.killpg(run.pid, sig)  # what a terminal's Ctrl-C does: the whole foreground group
    else:
        os.kill(run.pid, sig)
    _, err = run.communicate(timeout=60)
    assert run.returncode == code and err.startswith(f"scaler: error: {says}"), err
    assert err.count("\n") == 1 and "Traceback" not in err
    no_process_left(run.pid)
    train = results / "small" / "steps" / "train"
    assert not [p.name for p in train.iterdir() if p.name.startswith((".tmp-", ".claim-"))]


def test_kill_9_of_the_run_leaves_no_worker_behind(tmp_path):
    results = tmp_path / "results"
    run = start_run(write_spec(tmp_path / "small.yaml", WARM), results)
    _train_claim_pid(results, run)
    os.kill(run.pid, signal.SIGKILL)
    run.communicate(timeout=60)
    no_process_left(run.pid)


@pytest.fixture(scope="module")
def local_rows(tmp_path_factory) -> dict:
    """The small grid's rows from submitit's local executor: what the warm one must give."""
    root = tmp_path_factory.mktemp("local")
    done = run_scaler(write_spec(root / "small.yaml", LOCAL), root / "results")
    assert done.returncode == 0, done.stderr
    return rows(root / "results")


@pytest.mark.slow
def test_the_small_grid_gives_the_rows_of_the_local_executor(tmp_path, local_rows):
    results = tmp_path / "results"
    done = run_scaler(write_spec(tmp_path / "small.yaml", WARM), results)
    assert done.returncode == 0, done.stderr
    assert rows(results) == local_rows


@pytest.mark.slow
def test_a_train_worker_killed_mid_step_fails_alone_and_the_rerun_completes(tmp_path, local_rows):
    results = tmp_path / "results"
    spec = write_spec(tmp_path / "small.yaml", WARM)
    run = start_run(spec, results)
    os.kill(_train_claim_pid(results, run), signal.SIGKILL)
    out, err = run.communicate(timeout=300)
    assert run.returncode == 1, err
    assert "its worker process died (killed by SIGKILL" in err and "Traceback" not in err
    assert out.count("done train-") == 1 and out.count("done evaluate-") == 1  # the rest ran
    rerun = run_scaler(spec, results)
    assert rerun.returncode == 0, rerun.stderr
    assert "running 2 of 5 steps" in rerun.stdout
    assert rows(results) == local_rows


LEAKS_A_SEMAPHORE = """
import multiprocessing, os, signal, sys, time
from scaler.run.warm import WarmExecutor

def hold_a_semaphore():
    semaphore = multiprocessing.get_context("spawn").Semaphore(1)
    time.sleep(60)

if __name__ == "__main__":
    executor = WarmExecutor(1)
    worker = multiprocessing.get_context("spawn").Process(target=hold_a_semaphore)
    worker.start()
    time.sleep(2)  # its semaphore made and registered with the tracker
    os.kill(worker.pid, signal.SIGKILL)
    worker.join()
    print("ended", file=sys.stderr)
"""


def test_a_worker_killed_holding_a_semaphore_adds_nothing_to_the_runs_stderr(tmp_path):
    # What a step killed mid-way (cancelled, Ctrl-C, SIGTERM of the run) leaves: the resource
    # tracker's warning would follow the run's one-line error.
    script = tmp_path / "leak.py"
    script.write_text(LEAKS_A_SEMAPHORE)
    ended = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                           timeout=60, check=True)  # fmt: skip
    assert ended.stderr == "ended\n"
