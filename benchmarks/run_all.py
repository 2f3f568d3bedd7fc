"""Run every benchmark in turn: `make bench`. Figures go into benchmarks/RESULTS.md by hand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    "bench_orchestrator.py",
    "bench_warm.py",
    "bench_step_check.py",
    "bench_store.py",
    "bench_fit.py",
    "bench_multipliers.py",
    "bench_verify.py",
    "bench_verify_suites.py",  # skips, saying why, without the peers' repositories
    "bench_trl_vs_torch.py",
    "bench_demo.py",
    "bench_slurm.py",  # skips, saying why, where Slurm is missing; about 30 minutes where not
]

if __name__ == "__main__":
    failed = []
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        if subprocess.run([sys.executable, str(HERE / name)]).returncode != 0:
            failed.append(name)
    sys.exit(f"failed: {', '.join(failed)}" if failed else 0)
