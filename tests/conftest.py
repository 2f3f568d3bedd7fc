"""Shared fixtures: a small demo spec, a private results root, and the CLI run in-process."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import yaml

from scaler.cli import main
from scaler.slurm.cluster import missing_commands

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SCALER_SHARED_DATA", ROOT.parent / "shared" / "data"))
"""The shared GSM8K and MATH files; tests that need them are skipped with the reason without."""

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


def sigint_as_in_a_terminal() -> None:
    """For a child that a test stops with SIGINT (as Ctrl-C does): a shell starts background
    jobs (`make test &`, CI runners) with SIGINT ignored, which children inherit; in a terminal
    it is not."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def write_spec(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def tiny_gsm8k(tmp_path: Path, train: int = 60, answer=None, **world) -> dict:
    """A GSM8K spec (as a dict) on `train` made-up training problems and 5 test ones, written
    to `tmp_path`; `answer(i)` is problem i's solution text; `world` adds to its world."""
    answer = answer or (lambda i: f"{i} + 1 = {i + 1}\n#### {i + 1}")
    for split, count in (("train", train), ("test", 5)):
        with (tmp_path / f"{split}.jsonl").open("w") as f:
            for i in range(count):
                f.write(json.dumps({"question": f"What is {i} + 1?", "answer": answer(i)}) + "\n")
    return {
        "experiment": "g",
        "world": {
            "name": "gsm8k",
            "train": str(tmp_path / "train.jsonl"),
            "eval_files": {"test": str(tmp_path / "test.jsonl")},
            "val_problems": 8,
            **world,
        },
        "model": {"name_or_path": "gpt2"},
        "sizes": [16],
        "algorithms": ["sft", "rft", "per_step_dpo"],
        "eval_sets": ["test"],
    }


def tiny_gsm8k_spec(tmp_path: Path, **world) -> Path:
    """The spec file of `tiny_gsm8k`: 60 made-up training problems and 5 test ones."""
    return write_spec(tmp_path / "g.yaml", tiny_gsm8k(tmp_path, **world))


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


def _slurm_unavailable() -> str | None:
    """Why the Slurm tests cannot run here, or None when a usable Slurm is up."""
    how = "`make test` starts a local one as root on Debian (scripts/slurm-up)"
    missing = missing_commands()
    if missing:
        return f"no Slurm here ({', '.join(missing)} not on PATH); {how}"
    nodes = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if not any(s in ("idle", "mixed", "allocated") for s in nodes.stdout.split()):
        return f"Slurm has no usable node (sinfo: {nodes.stdout.strip() or nodes.stderr.strip()})"
    accounting = subprocess.run(["sacct", "-n", "-X", "-j", "1"], capture_output=True, text=True)
    if accounting.returncode != 0:
        return "Slurm accounting is off; scaler reads ended jobs from sacct"
    return None


SLURM_UNAVAILABLE = _slurm_unavailable()
requires_slurm = [
    pytest.mark.slurm,
    pytest.mark.skipif(SLURM_UNAVAILABLE is not None, reason=str(SLURM_UNAVAILABLE)),
]


def open_db(results: Path, experiment: str = "small"):
    return duckdb.connect(str(results / experiment / "scaler.duckdb"), read_only=True)


def finished_step_dirs(results: Path, experiment: str = "small") -> dict[str, float]:
    """Finished step folder -> the modification time of its result.json."""
    steps = results / experiment / "steps"
    return {
        d.name: (d / "result.json").stat().st_mtime_ns
        for d in steps.glob("*/*")
        if not d.name.startswith(".")
    }


def check_small_database(results: Path) -> None:
    with open_db(results) as con:
        stages = dict(con.execute("SELECT stage, count(*) FROM steps GROUP BY stage").fetchall())
        assert stages == {"generate": 1, "train": 2, "evaluate": 2}
        rows = con.execute(
            "SELECT world, source, algorithm, size, seed, eval_set, model, accuracy, n "
            "FROM evals ORDER BY size"
        ).fetchall()
        assert [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows] == [
            ("demo", "teacher", "sft", 50, 0, "test"),
            ("demo", "teacher", "sft", 100, 0, "test"),
        ]
        assert all(r[6] == "tiny-1x32" and 0 <= r[7] <= 1 and r[8] == 40 for r in rows)
        per_problem = con.execute(
            "SELECT e.step_id, count(*), avg(p.correct::INT), any_value(e.accuracy) "
            "FROM eval_problems p JOIN evals e USING (step_id) GROUP BY e.step_id"
        ).fetchall()
        assert len(per_problem) == 2
        for _, count, mean_correct, accuracy in per_problem:
            assert count == 40 and mean_correct == pytest.approx(accuracy)
        provenance = con.execute(
            "SELECT count(*) FROM steps WHERE host IS NOT NULL AND wall_s > 0 "
            "AND versions->>'$.torch' IS NOT NULL AND started_at <= ended_at"
        ).fetchone()[0]
        assert provenance == 5
        train = con.execute(
            "SELECT count(*) FROM metrics WHERE stage = 'train' AND name = 'steps' AND value = 8"
        ).fetchone()[0]
        assert train == 2


def wait_for(condition, what: str, timeout: float = 120.0):
    """Poll `condition` until it returns something true (returned), or fail after `timeout`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def generate_small_world(folder: Path) -> Path:
    """The small spec's demo world generated into `folder` (a generate step's files)."""
    from runners.stages import generate

    world = SMALL_SPEC["world"]
    generate.run(
        generate.Config(
            train_pool=world["train_pool"],
            val_problems=world["val_problems"],
            test_problems=world["test_problems"],
        ),
        {},
        folder,
    )
    return folder
