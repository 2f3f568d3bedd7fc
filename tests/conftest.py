"""Shared fixtures: a small demo spec, a private results root, and the CLI run in-process."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
import yaml

from scaler.cli import main

ROOT = Path(__file__).resolve().parent.parent

# A grid small enough for CI: a handful of training steps, tens of problems. The numbers it
# produces are not meaningful; the pipeline that produces them is the real one.
SMALL_SPEC = {
    "experiment": "small",
    "world": {
        "name": "demo",
        "seed": 0,
        "train_pool": 200,
        "val_problems": 30,
        "test_problems": 40,
    },
    "model": {"layers": 1, "hidden": 32, "heads": 2, "intermediate": 64},
    "sizes": [50, 100],
    "seeds": [0],
    "stages": {
        "train": {"min_steps": 8, "max_steps": 8, "eval_every": 4, "val_problems": 30},
        "evaluate": {},
    },
    "executor": {"name": "inline", "parallel": 2},
}


def write_spec(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture
def results(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "results"
    monkeypatch.setenv("SCALER_RESULTS", str(root))
    return root


@pytest.fixture
def small_spec(tmp_path) -> Path:
    return write_spec(tmp_path / "small.yaml", SMALL_SPEC)


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def cli(capsys):
    """Run `scaler ARGS` in this process; return exit code, stdout and stderr."""

    def run(args: str | list[str]) -> CliResult:
        argv = shlex.split(args) if isinstance(args, str) else args
        code = 0
        try:
            main(argv)
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def python() -> str:
    return sys.executable
