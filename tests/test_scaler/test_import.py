"""`import scaler` (and planning) must stay light: no torch, transformers or trl."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "trl", "datasets", "vllm", "duckdb", "matplotlib", "scipy")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_import_scaler_pulls_in_nothing_heavy():
    loaded = _modules_after("import scaler")
    assert not {m.split(".")[0] for m in loaded} & set(HEAVY)


def test_planning_pulls_in_nothing_heavy():
    loaded = _modules_after(
        "import scaler.cli, scaler.plan, scaler.spec.schema, scaler.spec.checks, "
        "scaler.spec.load, scaler.run.local, scaler.run.job, scaler.run.outcome, "
        "scaler.run.experiment, scaler.slurm.records, scaler.slurm.follow, scaler.status, "
        "scaler.layout, scaler.verify_file"
    )
    assert not {m.split(".")[0] for m in loaded} & {
        "torch",
        "transformers",
        "trl",
        "datasets",
        "vllm",
    }
