"""Live progress: the runners' progress files, the display drawn from them, `status --watch`.

The writer (runners.progress) is tested for what its readers rely on: nothing without the
variable, at most one write per interval but always the last, and a file that is whole whenever
it is read. A real train and evaluate step (SMALL_SPEC, inline) must report through it; the
run's output without a terminal must stay one plain line per event; `status --watch` must end
by itself on a finished experiment, follow a run held by real locks, and end on Ctrl-C with
exit 0; the ETA is computed from fixture step folders.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

import runners.progress as progress
from conftest import ROOT, SMALL_SPEC, sigint_as_in_a_terminal
from scaler.layout import Layout
from scaler.plan import expand
from scaler.run.local import InlineExecutor, execute
from scaler.run.locks import experiment_lock, step_claim
from scaler.run.outcome import RunReport
from scaler.run.progress_view import (
    Board,
    Durations,
    Running,
    board_from_files,
    eta,
    eta_text,
    render,
    scheduler_board,
)
from scaler.spec.schema import Spec
from scaler.status import watch_status


@pytest.fixture
def progress_file(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "work" / "progress.json"
    monkeypatch.setenv(progress.ENVIRONMENT_VARIABLE, str(path))
    progress._last_write.clear()
    return path


def test_without_the_variable_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    assert progress.report(1, 10, "steps", loss=2.0) is False
    assert list(tmp_path.iterdir()) == []


def test_writes_are_throttled_but_the_last_is_always_written(progress_file):
    assert progress.report(1, 100, "steps", loss=3.0) is True
    written = [progress.report(step, 100, "steps") for step in range(2, 50)]
    assert not any(written)  # within MIN_INTERVAL_S of the first
    assert json.loads(progress_file.read_text())["done"] == 1
    assert progress.report(100, 100, "steps", loss=1.5) is True  # the end is never dropped
    record = json.loads(progress_file.read_text())
    assert record["done"] == 100 and record["total"] == 100 and record["loss"] == 1.5
    time.sleep(progress.MIN_INTERVAL_S)
    assert progress.report(101, None, "problems") is True  # an interval later: written


def test_a_diverged_loss_is_written_as_unknown(progress_file):
    assert progress.report(1, 2, "steps", loss=float("nan")) is True
    assert json.loads(progress_file.read_text())["loss"] is None


def test_the_file_is_whole_whenever_it_is_read(progress_file, monkeypatch):
    monkeypatch.setattr(progress, "MIN_INTERVAL_S", 0.0)
    progress.report(0, 2000, "steps")
    stop, torn = threading.Event(), []

    def read_all_the_time() -> None:
        while not stop.is_set():
            try:
                json.loads(progress_file.read_text())
            except ValueError as error:
                torn.append(error)

    reader = threading.Thread(target=read_all_the_time)
    reader.start()
    for step in range(2000):
        progress.report(step, 2000, "steps", loss=1.0 / (step + 1), note="x" * 200)
    stop.set()
    reader.join()
    assert torn == []
    # Only the file itself is left: no partial temporary beside it.
    assert [p.name for p in progress_file.parent.iterdir()] == ["progress.json"]


ESCAPES = re.compile(r"[\r\x1b]")
"""A carriage return or the start of an escape sequence: how a redrawn display shows."""


def _spy_on_writes(monkeypatch) -> list[tuple[Path, dict]]:
    """Every progress record written (path, record); the writes themselves still happen."""
    writes: list[tuple[Path, dict]] = []
    real = progress._write_atomically

    def recording(path: Path, text: str) -> None:
        real(path, text)
        writes.append((path, json.loads(text)))

    monkeypatch.setattr(progress, "_write_atomically", recording)
    progress._last_write.clear()
    return writes


def test_a_real_train_and_evaluate_step_report_their_progress(tmp_path, monkeypatch, capsys, cli):
    monkeypatch.delenv(progress.ENVIRONMENT_VARIABLE, raising=False)
    writes = _spy_on_writes(monkeypatch)
    spec = Spec.model_validate(SMALL_SPEC)
    plan, layout = expand(spec), Layout(tmp_path / "small")
    report = execute(plan, layout, InlineExecutor())  # printing, to pytest's captured stdout
    assert len(report.ran) == 5 and not report.failed
    by_step: dict[str, list[dict]] = {}
    for path, record in writes:
        assert path.name == "progress.json" and path.parent.name.startswith(".work-")
        by_step.setdefault(path.parent.name.removeprefix(".work-"), []).append(record)
    trains = {n: r for n, r in by_step.items() if n.startswith("train-")}
    evaluates = {n: r for n, r in by_step.items() if n.startswith("evaluate-")}
    assert len(trains) == 2 and len(evaluates) == 2
    for records in trains.values():
        last = records[-1]  # SMALL_SPEC: 8 optimiser steps, validated at 4 and 8
        assert (last["done"], last["total"], last["unit"]) == (8, 8, "steps")
        assert isinstance(last["loss"], float) and 0 <= last["val_accuracy"] <= 1
    for records in evaluates.values():
        assert records[0]["done"] == 0 and records[-1]["done"] == records[-1]["total"] == 40
        assert records[-1]["unit"] == "problems" and records[-1]["phase"] == "greedy"
    # The variable is the step's only while it runs; the work folders go once published.
    assert progress.ENVIRONMENT_VARIABLE not in os.environ
    assert not list(layout.steps.glob("*/.work-*"))

    # Not a terminal: no display, no carriage return or escape code; one line per step. (The
    # inline executor's steps print in this process too: trl's log dicts.)
    out = capsys.readouterr().out
    assert not ESCAPES.search(out)
    assert len([line for line in out.splitlines() if re.match(r"^\[\d/5\] done ", line)]) == 5

    # `status --watch` on the finished experiment: one line, then the status; it ends itself.
    layout.write_spec(spec.model_dump(mode="json"))
    watched = cli(f"status small --watch --results {tmp_path}")
    assert watched.code == 0 and not ESCAPES.search(watched.out)
    first, second, *_ = watched.out.splitlines()
    assert re.match(r"^\d\d:\d\d:\d\d small: 5 done$", first)
    assert second == "small: 5 steps; 5 done"


EVENT_LINE = re.compile(
    r"^(running \d+ of \d+ steps .*|\[\d/5\] done \S+.*\d\.\ds.*|ran 5 steps .*|collected .*)$"
)


@pytest.mark.slow  # about 30 s: five real steps in their own processes
def test_without_a_terminal_a_run_prints_one_plain_line_per_event(tmp_path, small_spec):
    # A real `scaler run` with stdout a pipe, as under CI or `| tee`.
    env = os.environ | {"SCALER_RESULTS": str(tmp_path / "results"), "TERM": "xterm-256color"}
    env.pop(progress.ENVIRONMENT_VARIABLE, None)
    done = subprocess.run(
        [sys.executable, "-m", "scaler", "run", str(small_spec), "--executor", "local"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not ESCAPES.search(done.stdout) and not ESCAPES.search(done.stderr)
    lines = done.stdout.splitlines()
    assert len(lines) == 8 and all(EVENT_LINE.match(line) for line in lines), lines


def _small_layout(root: Path) -> tuple:
    spec = Spec.model_validate(SMALL_SPEC)
    layout = Layout(root / "small")
    layout.write_spec(spec.model_dump(mode="json"))
    return expand(spec), layout


def test_watch_follows_a_run_held_by_real_locks(tmp_path):
    plan, layout = _small_layout(tmp_path)
    train = next(step for step in plan.steps if step.stage == "train")
    final = layout.step_dir(train.stage, train.name)
    final.parent.mkdir(parents=True)
    lines: list[str] = []
    watcher = threading.Thread(
        target=watch_status, args=(layout,), kwargs={"live": False, "interval_s": 0.05,
                                                    "say": lines.append},
    )  # fmt: skip
    with experiment_lock(layout, say=lambda line: None), step_claim(final):
        work = layout.work_dir(train.stage, train.name)
        work.mkdir()
        (work / "progress.json").write_text(json.dumps({"done": 3, "total": 8, "unit": "steps"}))
        board = board_from_files(plan, layout, Durations())
        assert [r.step.name for r in board.running] == [train.name]
        assert board.running[0].progress["done"] == 3 and board.active
        watcher.start()
        time.sleep(0.5)
        assert watcher.is_alive()  # a run holds the experiment: it keeps watching
    watcher.join(timeout=10)
    assert not watcher.is_alive()
    assert "small: 1 running, 4 queued" in lines[0]
    assert lines[1].endswith("small: 5 to run")
    assert lines[2].startswith("small: 5 steps; 5 not submitted")


def test_ctrl_c_ends_watching_with_exit_0_and_no_traceback(tmp_path):
    _, layout = _small_layout(tmp_path / "results")
    env = os.environ | {"SCALER_RESULTS": str(tmp_path / "results")}
    with experiment_lock(layout, say=lambda line: None):  # so that it watches until stopped
        watcher = subprocess.Popen(
            [sys.executable, "-m", "scaler", "status", "small", "--watch"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
            preexec_fn=sigint_as_in_a_terminal,
        )  # fmt: skip
        out = watcher.stdout.readline()  # the first board: it is watching
        watcher.send_signal(signal.SIGINT)
        rest, err = watcher.communicate(timeout=30)
    assert "small: 5 queued" in out
    assert watcher.returncode == 0, err
    assert "Traceback" not in err and err == ""


def _finished(layout: Layout, stage: str, name: str, size, wall_s: float) -> None:
    folder = layout.step_dir(stage, name)
    folder.mkdir(parents=True)
    (folder / "provenance.json").write_text(json.dumps({"wall_s": wall_s}))
    (folder / "config.json").write_text(json.dumps({"coords": {"size": size}}))


def test_the_eta_comes_from_finished_steps_of_the_same_stage_and_size(tmp_path):
    plan = expand(Spec.model_validate(SMALL_SPEC | {"sizes": [50, 100, 200]}))
    layout = Layout(tmp_path / "small")
    _finished(layout, "train", "train-a", 50, 10.0)
    _finished(layout, "train", "train-b", 50, 20.0)
    _finished(layout, "train", "train-c", 100, 60.0)
    (layout.steps / "train" / "train-d").mkdir()  # no provenance: no estimate, no error
    durations = Durations()
    durations.load(layout)
    train = {step.coords["size"]: step for step in plan.steps if step.stage == "train"}
    evaluate = next(step for step in plan.steps if step.stage == "evaluate")
    assert durations.expected(train[50]) == 15.0  # same size
    assert durations.expected(train[100]) == 60.0
    assert durations.expected(train[200]) == 30.0  # no such size yet: the stage's mean
    assert durations.expected(evaluate) is None

    # Running for 5 s of its expected 15, plus the 60 and 30 of two queued, over two slots.
    running = [Running(train[50], 5.0, None)]
    assert eta(durations, running, [train[100], train[200]], 2) == (50.0, [])
    assert eta(durations, [Running(train[100], 90.0, None)], [], 1) == (0.0, [])  # overdue
    # Its own pace wins when slower: a quarter done in 30 s leaves 90 s, not the 15 s measured.
    quarter = {"done": 2, "total": 8, "unit": "steps"}
    assert eta(durations, [Running(train[50], 30.0, quarter)], [], 1) == (90.0, [])
    assert eta(durations, [Running(evaluate, 30.0, quarter)], [], 1) == (90.0, [])
    early = {"done": 1, "total": 100, "unit": "steps"}  # too early for a pace: the measured
    assert eta(durations, [Running(train[50], 5.0, early)], [], 1) == (10.0, [])
    board = Board("small", eta=eta(durations, running, [evaluate], 1))
    assert board.eta == (10.0, ["evaluate"])
    assert eta_text(board) == "ETA 10s + the evaluate steps (none finished yet)"
    # Read once per folder: a second load adds nothing twice.
    durations.load(layout)
    assert durations.expected(train[50]) == 15.0


def test_the_live_board_draws_each_running_step(tmp_path):
    from rich.console import Console

    plan = expand(Spec.model_validate(SMALL_SPEC))
    layout = Layout(tmp_path / "small")
    generate, train = plan.steps[0], next(s for s in plan.steps if s.stage == "train")
    work = layout.work_dir(train.stage, train.name)
    work.mkdir(parents=True)
    record = {"done": 4, "total": 8, "unit": "steps", "loss": 2.5, "val_accuracy": 0.25}
    (work / "progress.json").write_text(json.dumps(record))
    board = scheduler_board(
        plan, layout, Durations(), done={generate.name},
        running={train.name: (train, time.time() - 65)}, report=RunReport(), slots=2,
    )  # fmt: skip
    assert board.counts["train"] == Counter(running=1, queued=1)
    assert board.summary() == "1 done, 1 running, 3 queued"
    screen = io.StringIO()
    Console(file=screen, width=160, force_terminal=True, color_system=None).print(render(board))
    text = screen.getvalue()
    assert "small: 1 done, 1 running, 3 queued" in text
    assert train.name in text and "steps 4/8 loss=2.5 val_accuracy=0.25" in text
    # Half done in 65 s: 65 s left, on two slots; nothing measured for the queued ones.
    assert "1m 05s" in text and "ETA 33s + the evaluate and train steps" in text
    assert eta_text(scheduler_board(
        plan, layout, Durations(), done={generate.name}, running={}, report=RunReport(), slots=2,
    )) == "ETA unknown: no evaluate or train step has finished yet"  # fmt: skip
