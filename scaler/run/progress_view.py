"""The live progress of a run: steps done, running and queued per stage, each running step's own
progress, and when it should all be done.

A `Board` is what is drawn. The local scheduler builds it from its own state (scaler.run.local
`execute`: what it runs and what waits); `scaler status --watch` builds it from the files alone
(`board_from_files`: step folders, claims, the run lock, Slurm's queue), so the same display
follows Slurm jobs on other nodes and a run started in another terminal. Each running step's
progress is the JSON record its runner rewrites in its work folder (runners.progress, through
the SCALER_PROGRESS_FILE that scaler.run.job sets): `{"done": 120, "total": 700, "unit":
"steps", "loss": 1.9, "val_accuracy": 0.41}`.

The ETA comes from measured durations (`Durations`): the mean `wall_s` (provenance.json) of
the finished steps of the same stage and size (config.json coords.size), else of the stage.
A running step is expected to take what its kind took, less what it has run, or longer when its
own pace (its progress so far) says so; the work left is shared by the slots. Stages with no
finished step yet are named rather than guessed.

Drawn with rich's Live (a table redrawn in place; `print` goes above it, so the scheduler's
one line per event still scrolls by), not tqdm, which draws one bar per line and has no table.
Only on a terminal: without one (CI, `| tee`, a log file) nothing is drawn and the output is the
scheduler's lines alone. rich is imported inside the functions that draw.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaler.layout import CLAIM_PREFIX, Layout
from scaler.plan import Plan, Step
from scaler.run.job import PROGRESS_FILE
from scaler.run.locks import is_alive
from scaler.run.outcome import coords_text

REFRESH_S = 0.5
"""How often the display is redrawn: as often as runners.progress rewrites a file."""
COLUMNS = ("done", "running", "queued", "failed", "skipped", "to run")
ALWAYS = ("done", "running", "queued")


@dataclass
class Running:
    step: Step
    elapsed: float
    """Seconds since the step started (its attempt, here or on another node)."""
    progress: dict[str, Any] | None
    """Its runner's last progress record, None before the first."""


@dataclass
class Board:
    title: str
    counts: dict[str, Counter] = field(default_factory=dict)
    """Stage -> how many of its steps are in each of COLUMNS."""
    running: list[Running] = field(default_factory=list)
    slots: int = 1
    eta: tuple[float, list[str]] = (0.0, [])
    """Seconds of work left, and the stages with work left but no measured duration."""

    @property
    def active(self) -> bool:
        """Whether anything runs or waits to run."""
        return any(c["running"] or c["queued"] for c in self.counts.values())

    def summary(self) -> str:
        """`5 done, 2 running, 14 queued`: the totals in one line."""
        totals: Counter = sum(self.counts.values(), Counter())
        return ", ".join(f"{totals[c]} {c}" for c in COLUMNS if totals[c]) or "no steps"


def read_progress(layout: Layout, step: Step) -> dict[str, Any] | None:
    """A step's last progress record, or None (none yet, or unreadable)."""
    path = layout.work_dir(step.stage, step.name) / PROGRESS_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


class Durations:
    """The measured wall_s of finished steps, by (stage, size); read from disk once per step."""

    def __init__(self) -> None:
        self.seconds: dict[tuple[str, Any], list[float]] = {}
        self._seen: set[str] = set()

    def add(self, stage: str, size: Any, seconds: float) -> None:
        self.seconds.setdefault((stage, size), []).append(seconds)

    def load(self, layout: Layout, stages: set[str] | None = None) -> None:
        """Add every finished step not read yet (of `stages`, when given)."""
        for folder in layout.finished_dirs():
            if folder.name in self._seen or (stages and folder.parent.name not in stages):
                continue
            self._seen.add(folder.name)
            try:
                wall_s = json.loads((folder / "provenance.json").read_text())["wall_s"]
                coords = json.loads((folder / "config.json").read_text()).get("coords", {})
            except (OSError, ValueError, KeyError, AttributeError):
                continue  # no duration known (an old or damaged folder): not an estimate
            self.add(folder.parent.name, coords.get("size"), float(wall_s))

    def expected(self, step: Step) -> float | None:
        """How long `step` should take: the mean of its stage and size, else of its stage."""
        same = self.seconds.get((step.stage, step.coords.get("size")))
        if not same:
            same = [s for (stage, _), found in self.seconds.items() if stage == step.stage
                    for s in found]  # fmt: skip
        return sum(same) / len(same) if same else None


def eta(durations: Durations, running: list[Running], queued: list[Step], slots: int):
    """(seconds of work left shared by `slots`, stages with no measured duration)."""
    left, unknown = 0.0, set()
    for step, elapsed, record in [(r.step, r.elapsed, r.progress) for r in running] + [
        (s, 0.0, None) for s in queued
    ]:
        expected = durations.expected(step)
        # A step slower than its kind (a busier machine) says so by its own pace, once it is
        # far enough along for the pace to mean something (its start-up is in `elapsed`).
        done = _fraction(record)
        own_pace = elapsed * (1 - done) / done if done >= PACE_FROM else None
        if expected is None and own_pace is None:
            unknown.add(step.stage)
            continue
        left += max(expected - elapsed if expected is not None else 0.0, own_pace or 0.0, 0.0)
    return left / max(slots, 1), sorted(unknown)


PACE_FROM = 0.1
"""The fraction of its work a running step must have done before its own pace counts."""


def _fraction(record: dict[str, Any] | None) -> float:
    try:
        return min(float(record["done"]) / float(record["total"]), 1.0)  # type: ignore[index]
    except (TypeError, KeyError, ValueError, ZeroDivisionError):
        return 0.0


def board_from_files(
    plan: Plan, layout: Layout, durations: Durations, slurm_active: set[str] | None = None
) -> Board:
    """The board of `scaler status --watch`: done from the step folders, running from the step
    claims held, queued while a run holds the experiment (or Slurm holds the step's job)."""
    durations.load(layout)
    done, failed = layout.done_names(), layout.failed_names()
    claimed = _held_claims(layout)
    run_going = _held(layout.run_lock) is not None
    board = Board(plan.experiment, slots=max(len(claimed), 1))
    queued: list[Step] = []
    for step in plan.steps:
        if step.name in done:
            state = "done"
        elif step.name in claimed:
            state = "running"
            elapsed = time.time() - claimed[step.name]
            board.running.append(Running(step, elapsed, read_progress(layout, step)))
        elif run_going or step.name in (slurm_active or ()):
            state = "queued"
            queued.append(step)
        else:
            state = "failed" if step.name in failed else "to run"
        board.counts.setdefault(step.stage, Counter())[state] += 1
    board.eta = eta(durations, board.running, queued, board.slots)
    return board


def _held_claims(layout: Layout) -> dict[str, float]:
    """Step name -> since when, for each step claim held now (its holder alive)."""
    held = {}
    for stage_dir in layout.stage_dirs():
        for claim in stage_dir.glob(f"{CLAIM_PREFIX}*") if stage_dir.is_dir() else ():
            note = _held(claim)
            if note is not None:
                held[claim.name.removeprefix(CLAIM_PREFIX)] = float(note.get("since", time.time()))
    return held


def _held(path: Path) -> dict[str, Any] | None:
    """The note of the lock file `path` if its holder still runs (scaler.run.locks removes the
    file on release; a dead holder's note is left). A holder on another host is taken at its
    word: its process cannot be looked at from here."""
    try:
        note = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(note, dict) or "pid" not in note:
        return None
    import socket

    if note.get("host") == socket.gethostname() and not is_alive(note):
        return None
    return note


def duration(seconds: float) -> str:
    """`45s`, `3m 05s`, `1h 02m`: how long, as a person reads it."""
    seconds = max(int(round(seconds)), 0)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def progress_text(record: dict[str, Any] | None) -> str:
    """`step 120/700 loss=1.93 val_accuracy=0.41`: a progress record in words."""
    if not record:
        return "starting"
    unit, done, total = record.get("unit", ""), record.get("done"), record.get("total")
    words = [f"{record['phase']}:"] if record.get("phase") else []
    words.append(f"{unit} {done}/{total}" if total else f"{unit} {done}")
    for key in ("loss", "val_accuracy"):
        if isinstance(record.get(key), (int, float)):
            words.append(f"{key}={record[key]:.4g}")
    return " ".join(words)


def eta_text(board: Board) -> str:
    """`ETA 3m 10s`, and the stages it leaves out for want of a measured step."""
    seconds, unknown = board.eta
    if not unknown:
        return f"ETA {duration(seconds)}"
    if not seconds:
        return f"ETA unknown: no {' or '.join(unknown)} step has finished yet"
    return f"ETA {duration(seconds)} + the {' and '.join(unknown)} steps (none finished yet)"


def render(board: Board) -> Any:
    """The board as rich renderables: per-stage counts, the running steps, the ETA."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    stages = Table(box=None)
    # done, running and queued always (columns that come and go make a jumpy display).
    shown = [c for c in COLUMNS if c in ALWAYS or any(n[c] for n in board.counts.values())]
    stages.add_column("stage")
    for column in shown:
        stages.add_column(column, justify="right")
    for stage, counts in board.counts.items():
        stages.add_row(stage, *(str(counts[c]) for c in shown))
    steps = Table(box=None, show_header=bool(board.running))
    for column in ("running", "", "progress", "elapsed"):
        steps.add_column(column, justify="right" if column == "elapsed" else "left")
    for running in board.running:
        record = running.progress or {}
        total, done = record.get("total") or 0, record.get("done") or 0
        steps.add_row(
            " ".join(filter(None, [running.step.name, coords_text(running.step)])),
            ProgressBar(total=total or 1, completed=done if total else 0, width=20),
            progress_text(running.progress),
            duration(running.elapsed),
        )
    return Group(f"{board.title}: {board.summary()}", stages, steps, eta_text(board))


def on_terminal() -> bool:
    """Whether stdout is a terminal a live display can redraw in place (and rich is there)."""
    if not sys.stdout.isatty() or os.environ.get("TERM") == "dumb":
        return False
    try:
        import rich  # noqa: F401
    except ImportError:  # a dependency of a dependency (typer), not one of scaler's own
        return False
    return True


class LiveView:
    """A rich Live display on stdout for a `with` block, redrawn by `show` at most every
    REFRESH_S. `print` in the block goes above it; it is removed at the end, leaving the lines."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self._live = Live(console=Console(), auto_refresh=False, transient=True)
        self._drawn = 0.0

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        with suppress(Exception):  # a display that fails to close must not hide the run's end
            self._live.__exit__(*exc)

    def due(self) -> bool:
        return time.monotonic() - self._drawn >= REFRESH_S

    def show(self, board: Board) -> None:
        self._drawn = time.monotonic()
        self._live.update(render(board), refresh=True)


def scheduler_board(
    plan: Plan,
    layout: Layout,
    durations: Durations,
    *,
    done: set[str],
    running: dict[str, tuple[Step, float]],
    report: Any,
    slots: int,
) -> Board:
    """The board of a local run: from its scheduler's state (scaler.run.local `execute`):
    `done` before it started, `running` (name -> step, started at), its RunReport so far."""
    finished = done | set(report.ran)
    failed = {failure.step_name for failure in report.failed}
    skipped = set(report.skipped)
    board = Board(plan.experiment, slots=slots)
    queued = []
    for step in plan.steps:
        if step.name in finished:
            state = "done"
        elif step.name in running:
            state = "running"
            elapsed = time.time() - running[step.name][1]
            board.running.append(Running(step, elapsed, read_progress(layout, step)))
        elif step.name in failed or step.name in skipped:
            state = "failed" if step.name in failed else "skipped"
        else:
            state = "queued"
            queued.append(step)
        board.counts.setdefault(step.stage, Counter())[state] += 1
    board.eta = eta(durations, board.running, queued, slots)
    return board
