"""The demo grid: wall time per stage, and how long a re-run of the finished grid takes.

    .venv/bin/python benchmarks/bench_demo.py          # uses results/demo (runs it if missing)

The re-run is timed as a user sees it, `scaler run specs/demo.yaml` in a fresh process (median of
3), against `scaler --help` in a fresh process as the baseline (interpreter start-up).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

from common import machine, median_seconds  # noqa: E402

SCALER = [sys.executable, "-m", "scaler"]


def _run(*args: str) -> None:
    subprocess.run(SCALER + list(args), cwd=ROOT, check=True, capture_output=True)


def main() -> None:
    print(f"machine: {machine()}")
    if not (ROOT / "results" / "demo" / "scaler.duckdb").is_file():
        start = time.perf_counter()
        subprocess.run(SCALER + ["run", "specs/demo.yaml"], cwd=ROOT, check=True)
        print(f"demo run: {time.perf_counter() - start:.0f} s wall")
    rerun = median_seconds(lambda: _run("run", "specs/demo.yaml"), repeats=3)
    baseline = median_seconds(lambda: _run("--help"), repeats=3)
    print(f"re-run of the finished demo grid: {rerun:.2f} s (`scaler --help`: {baseline:.2f} s)")

    from scaler.layout import Layout
    from scaler.store import query
    from scaler.text import format_table

    columns, rows = query(
        Layout(ROOT / "results" / "demo"),
        "SELECT stage, count(*) AS steps, round(sum(wall_s), 1) AS total_s, "
        "round(median(wall_s), 1) AS median_s, round(max(wall_s), 1) AS max_s, "
        "round(epoch(max(ended_at) - min(started_at)), 1) AS span_s "
        "FROM steps GROUP BY stage ORDER BY min(started_at)",
    )
    print(format_table(columns, rows))


if __name__ == "__main__":
    main()
