"""`scaler run` in a subprocess, as the fault tests drive it: started in its own session (so that
`ps` finds every process it started), its processes counted, its database rows compared."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from conftest import sigint_as_in_a_terminal

HOW_IT_RAN = ("tokens_per_s", "train_seconds", "val_seconds", "wall_s", "resumed_from_step")
"""Metrics that say how a step ran (its speed; where a killed train resumed), not what it made."""
ROWS = {
    # What the steps computed, without where, when and how fast they ran.
    "steps": "SELECT step_id, name, stage, config, inputs FROM steps",
    "metrics": f"SELECT * FROM metrics WHERE name NOT IN {HOW_IT_RAN}",
    "eval_problems": "SELECT * FROM eval_problems",
}


def _command(spec: Path, extra: tuple[str, ...]) -> list[str]:
    return [sys.executable, "-m", "scaler", "run", str(spec), *extra]


def _env(results: Path) -> dict[str, str]:
    return dict(os.environ, SCALER_RESULTS=str(results))


def start_run(spec: Path, results: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        _command(spec, extra),
        env=_env(results),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own session: every process it starts is findable
        preexec_fn=sigint_as_in_a_terminal,
    )


def run_scaler(spec: Path, results: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(_command(spec, extra), env=_env(results), capture_output=True, text=True)


def session_processes(session: int) -> list[str]:
    listing = subprocess.run(["ps", "-eo", "pid=,sid=,stat=,args="], capture_output=True, text=True)
    found = []
    for line in listing.stdout.splitlines():
        pid, sid, stat, args = line.split(None, 3)
        if int(sid) == session and not stat.startswith("Z"):
            found.append(f"{pid} {args}")
    return found


def no_process_left(session: int, grace: float = 15.0) -> None:
    deadline = time.time() + grace
    while (left := session_processes(session)) and time.time() < deadline:
        time.sleep(0.2)
    assert not left, f"processes outlived their run: {left}"


def rows(results: Path, experiment: str = "small") -> dict[str, list[tuple]]:
    with duckdb.connect(str(results / experiment / "scaler.duckdb"), read_only=True) as con:
        return {table: sorted(con.execute(sql).fetchall()) for table, sql in ROWS.items()}
