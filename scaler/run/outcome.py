"""What a run comes to, told the same way wherever its steps ran.

The local scheduler (scaler.run.local) and the Slurm follower (scaler.slurm.follow) build their
report, their failures and their progress lines here, so `[3/5] done train-... (size=50) 4.2s
accuracy=0.31` reads the same from either, and a failed step always points at the same file: the
traceback the step wrote (error.txt), else its job's log, else what is known of how it ended.
`scaler status` builds its failures here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from scaler.disk_space import disk_full
from scaler.errors import StepFailed
from scaler.layout import Layout
from scaler.step_index import StepRef

if TYPE_CHECKING:
    from scaler.plan import Step

ERROR_TAIL_LINES = 12
"""Lines of a traceback or log shown with a failure."""


@dataclass
class RunReport:
    already_done: int = 0
    ran: list[str] = field(default_factory=list)
    failed: list[StepFailed] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Steps not run because an input failed (or, on Slurm, was cancelled)."""

    def progress(self, total: int) -> str:
        """` 3/12`: the steps finished one way or another, of the `total` this run runs."""
        finished = len(self.ran) + len(self.failed) + len(self.skipped)
        return f"{finished:>{len(str(total))}}/{total}"


def step_failure(
    step: StepRef, layout: Layout, how_it_ended: str, *, where: Path, log: Path | None = None
) -> StepFailed:
    """The error of a failed step: the tail of the traceback it wrote, else of its job's `log`,
    else `how_it_ended`, pointing at `where` (the job's log folder or file)."""
    error_file = layout.failed_dir(step.stage, step.name) / "error.txt"
    found, tail = where, how_it_ended
    for source in (error_file, log):
        if source is not None and source.is_file():
            lines = source.read_text(errors="replace").splitlines()[-ERROR_TAIL_LINES:]
            if lines:
                found, tail = source, "\n".join(lines)
                break
    full = disk_full(layout.root, tail)
    if full:  # wherever in a runner it ran out, the cause is one line, and what said it
        tail = f"{full}\n{tail.strip().splitlines()[-1] if tail.strip() else ''}".strip()
    return StepFailed(step.name, str(found), tail)


def coords_text(step: Step) -> str:
    """`(source=teacher size=50 seed=0)`: the grid coordinates a person tells steps apart by."""
    shown = {k: v for k, v in step.coords.items() if k not in ("world", "model")}
    return "(" + " ".join(f"{k}={v}" for k, v in shown.items()) + ")" if shown else ""


def headline(metrics: dict) -> str:
    """The one metric worth a progress line, if the step reported one."""
    for key in ("accuracy", "best_val_accuracy", "n_train"):
        if isinstance(metrics, dict) and isinstance(metrics.get(key), (int, float)):
            return f" {key}={metrics[key]:.4g}"
    return ""


def done_line(progress: str, step: Step, seconds: float, metrics: dict) -> str:
    where = " ".join(filter(None, [step.name, coords_text(step), f"{seconds:.1f}s"]))
    return f"[{progress}] done {where}{headline(metrics)}"


def ended_line(progress: str, word: str, step: Step, why: str = "") -> str:
    """`[4/5] FAILED <step> (coords)`, and why when the scheduler said (`: TIMEOUT`)."""
    where = " ".join(filter(None, [step.name, coords_text(step)]))
    return f"[{progress}] {word} {where}" + (f": {why}" if why else "")
