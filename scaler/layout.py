"""Where an experiment's files live. Run state is on disk, nowhere else.

    results/<experiment>/
        spec.json                             the spec of the latest run, resolved (`scaler status`)
        run.lock                              held by the one `scaler run` of this experiment
        steps/<stage>/<stage>-<id>/           a finished step (renamed into place when complete)
        steps/<stage>/.tmp-<stage>-<id>-<host>-<pid>/  a step being written (never read as one)
        steps/<stage>/.failed-<stage>-<id>/   the last failed attempt, with error.txt
        steps/<stage>/.work-<stage>-<id>/     checkpoints outliving a killed attempt; progress.json
        steps/<stage>/.claim-<stage>-<id>     held by the process running that step
        steps/<stage>/.damaged-<stage>-<id>/  a finished step that failed its manifest check,
                                              set aside with damaged.txt (it runs again)
        logs/                                 job logs (logs/slurm/: of Slurm jobs)
        logs/attempts.jsonl                   every attempt at a step: started, finished, failed...
        slurm/jobs.jsonl                      which Slurm job holds which step
        slurm/submit.lock, slurm/cancelled    one submitter at a time; when `scaler cancel` ran
        scaler.duckdb                         everything collected, for queries and analysis
        plots/                                figures
        report.html                           `scaler report`'s page

    results/_store/steps/<stage>/             steps of the SHARED_STAGES, laid out as above: one
                                              folder for every experiment under this root

A shared stage's step (the demo world's pretrained base) is the same work whichever spec asks for
it, and costs the most: it lives once per results root, found, claimed and resumed by every
experiment as its own steps are, so a second experiment on the machine reuses it.

A step directory exists only once its step is complete, so listing a stage directory is the
whole answer to "what is done": one scandir per stage, however large the plan. Its manifest.json
says what was in it when it finished; scaler.manifest checks a folder against it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXPERIMENT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
"""Experiment names: a single folder under the results root, never a path out of it."""
TMP_PREFIX = ".tmp-"
FAILED_PREFIX = ".failed-"
WORK_PREFIX = ".work-"
DAMAGED_PREFIX = ".damaged-"
CLAIM_PREFIX = ".claim-"
SHARED_STAGES = frozenset({"pretrain"})
"""Stages whose steps live in the results root's shared store rather than an experiment's."""
STORE = "_store"
"""The shared store's folder under the results root: no experiment can have this name."""


def default_results_root() -> Path:
    return Path(os.environ.get("SCALER_RESULTS", "results"))


@dataclass(frozen=True)
class Layout:
    root: Path
    """results/<experiment>"""

    @classmethod
    def for_experiment(cls, experiment: str, results_root: Path | None = None) -> Layout:
        return cls((results_root or default_results_root()) / experiment)

    @property
    def spec_file(self) -> Path:
        """The resolved spec of the latest run, as JSON: what `scaler status` expands."""
        return self.root / "spec.json"

    @property
    def finished_memo(self) -> Path:
        """What `scaler status` remembers of each finished folder (scaler.finished_memo)."""
        return self.root / ".finished.json"

    @property
    def step_index(self) -> Path:
        """The steps of the latest run's plan, for `scaler status` (scaler.step_index)."""
        return self.root / "steps.json"

    def write_spec(self, spec_json: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_json(self.spec_file, spec_json)

    @property
    def steps(self) -> Path:
        return self.root / "steps"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run_lock(self) -> Path:
        """Held (flock) by the one `scaler run` of this experiment (scaler.run.locks)."""
        return self.root / "run.lock"

    @property
    def attempts_log(self) -> Path:
        """One JSON line per attempt at a step and per end of one, with its host and pid."""
        return self.logs / "attempts.jsonl"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def database(self) -> Path:
        return self.root / "scaler.duckdb"

    @property
    def report_page(self) -> Path:
        return self.root / "report.html"

    @property
    def shared_steps(self) -> Path:
        """The steps of the SHARED_STAGES, for every experiment under this results root."""
        return self.root.parent / STORE / "steps"

    def stage_dir(self, stage: str) -> Path:
        return (self.shared_steps if stage in SHARED_STAGES else self.steps) / stage

    def step_dir(self, stage: str, name: str) -> Path:
        return self.stage_dir(stage) / name

    def failed_dir(self, stage: str, name: str) -> Path:
        return self.stage_dir(stage) / f"{FAILED_PREFIX}{name}"

    def work_dir(self, stage: str, name: str) -> Path:
        return self.stage_dir(stage) / f"{WORK_PREFIX}{name}"

    def damaged_dir(self, stage: str, name: str) -> Path:
        """Where a finished step that failed its check is moved (scaler.manifest.set_aside)."""
        return self.stage_dir(stage) / f"{DAMAGED_PREFIX}{name}"

    @property
    def slurm(self) -> Path:
        """Records of the jobs submitted to Slurm (the three files below)."""
        return self.root / "slurm"

    @property
    def slurm_jobs(self) -> Path:
        """One line per sbatch call: its stage, steps and their task ids."""
        return self.slurm / "jobs.jsonl"

    @property
    def submit_lock(self) -> Path:
        return self.slurm / "submit.lock"

    @property
    def cancel_marker(self) -> Path:
        """Touched by `scaler cancel`, so a `scaler run` following the jobs stops."""
        return self.slurm / "cancelled"

    @property
    def slurm_logs(self) -> Path:
        """submitit's files for Slurm jobs: pickled steps, sbatch scripts, logs."""
        return self.logs / "slurm"

    def stage_dirs(self) -> list[Path]:
        """Every stage folder this experiment's steps may be in: its own and the shared ones."""
        own = [Path(e.path) for e in _scandir(self.steps) if e.name not in SHARED_STAGES]
        return own + [Path(e.path) for e in _scandir(self.shared_steps)]

    def _entries(self) -> list[os.DirEntry]:
        """Every entry of every stage folder: one scandir per stage."""
        return [entry for stage_dir in self.stage_dirs() for entry in _scandir(stage_dir)]

    def finished_entries(self) -> list[os.DirEntry]:
        """The folder of every finished step, as os.scandir lists it."""
        return [e for e in self._entries() if not e.name.startswith(".")]

    def finished_dirs(self) -> list[Path]:
        """The folder of every finished step."""
        return [Path(e.path) for e in self.finished_entries()]

    def done_names(self) -> set[str]:
        """Names (<stage>-<id>) of every finished step."""
        return {e.name for e in self.finished_entries()}

    def failed_names(self) -> set[str]:
        """Names of steps whose last attempt failed (they may have been finished since)."""
        return {
            e.name.removeprefix(FAILED_PREFIX)
            for e in self._entries()
            if e.name.startswith(FAILED_PREFIX)
        }


def _scandir(folder: Path | str) -> list[os.DirEntry]:
    try:
        return list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []


def read_json(path: Path) -> Any:
    with open(path) as handle:
        return json.load(handle)


def write_json(path: Path, value: Any) -> None:
    # Sorted keys and no NaN: the files are read back and compared (spec.json, config.json).
    with open(path, "w") as handle:
        json.dump(value, handle, indent=1, sort_keys=True, allow_nan=False)
