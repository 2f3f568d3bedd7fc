"""What runs inside a job: one step, written atomically into its directory.

The step is written into a fresh temporary directory beside its final place and renamed into
place only when complete, so a crash or a kill at any moment leaves either a finished step or
nothing that counts. A failed attempt is kept as `.failed-<name>/` with its traceback, for
`scaler plan` and the error report; the next attempt starts from scratch. `make_job` is how
the submitting side turns a planned step into that job's plain data.

This module is imported in job processes: keep it free of heavy imports.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import os
import shutil
import socket
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runners.progress import ENVIRONMENT_VARIABLE as PROGRESS_VARIABLE
from scaler.disk_space import says_no_space
from scaler.layout import FAILED_PREFIX, TMP_PREFIX, Layout, read_json, write_json
from scaler.manifest import write_manifest
from scaler.run.lifeline import tied_to
from scaler.run.locks import step_claim
from scaler.run.ranks import Rank, RankFailed, launch_ranks, this_rank
from scaler.stages import STAGES

if TYPE_CHECKING:  # scaler.plan reads the spec models: more than a job process needs
    from scaler.plan import Plan, Step


@dataclass(frozen=True)
class StepJob:
    """Everything a job process needs to run one step; plain data, cheap to pickle."""

    name: str
    stage: str
    step_id: str
    module: str
    version: int
    config: dict[str, Any]
    inputs: dict[str, str]
    """Role -> the finished directory of the input step."""
    coords: dict[str, Any]
    out_dir: str
    cpus: int = 1
    provenance: dict[str, Any] = field(default_factory=dict)
    """What the submitting process knows: git commit, package versions, spec hash."""
    work_dir: str = ""
    """A folder that outlives attempts, for runners that checkpoint (`checkpoint_dir`); removed
    once the step is published."""
    owner: dict[str, Any] | None = None
    """The local run this job belongs to (scaler.run.lifeline): the job ends when it ends."""
    world_size: int = 1
    """Processes the step runs as, one torch.distributed rank each (scaler.run.ranks)."""


def make_job(step: Step, plan: Plan, layout: Layout, provenance: dict) -> StepJob:
    """The job of one step of `plan`, as every executor (local, Slurm) submits it."""
    stage = STAGES[step.stage]
    return StepJob(
        name=step.name,
        stage=step.stage,
        step_id=step.id,
        module=stage.module,
        version=stage.version,
        config=step.config.model_dump(mode="json"),
        inputs={role: str(layout.step_dir(i.stage, i.name)) for role, i in step.inputs},
        coords=step.coords,
        out_dir=str(layout.step_dir(step.stage, step.name)),
        cpus=plan.resources[step.stage].cpus,
        world_size=stage.world_size(plan.resources[step.stage]),
        provenance=provenance,
        work_dir=str(layout.work_dir(step.stage, step.name)),
    )


def run_step(job: StepJob) -> dict[str, Any]:
    """Run one step and return its metrics; raise what the runner raised."""
    final = Path(job.out_dir)
    if final.is_dir():  # finished meanwhile by another run
        return read_json(final / "result.json")["metrics"]
    final.parent.mkdir(parents=True, exist_ok=True)
    if job.world_size > 1:
        rank = this_rank()
        if rank is None:  # locally: start the ranks, each of which comes back here
            return _launch_locally(job, final)
        if rank.rank > 0:
            return _run_beside_rank_0(job, final, rank)
    with (
        tied_to(job.owner, partial(_note_open_attempt_stopped, job)),
        step_claim(final) as died_holding,
    ):
        if final.is_dir():  # by the process whose claim this one waited for
            return read_json(final / "result.json")["metrics"]
        if died_holding:
            _remove_attempts_of(final)
        return _run_claimed(job, final)


def _launch_locally(job: StepJob, final: Path) -> dict[str, Any]:
    logs = Path(job.work_dir or final.parent / f"{TMP_PREFIX}{final.name}-ranks") / "ranks"
    try:
        return launch_ranks(job, run_step, logs)
    except RankFailed as error:
        if final.is_dir():  # published by another run while a rank of this one waited
            return read_json(final / "result.json")["metrics"]
        # The launcher knows which rank failed first, with its traceback or its log.
        _keep_failure(_fresh_attempt_dir(final), final, str(error))
        raise


def _run_beside_rank_0(job: StepJob, final: Path, rank: Rank) -> dict[str, Any]:
    """A rank other than 0: the runner in a scratch folder of its own, removed at the end."""
    scratch = _fresh_attempt_dir(final, f"-rank{rank.rank}")
    os.environ.pop(PROGRESS_VARIABLE, None)  # rank 0 reports the progress
    try:
        _limit_threads(job.cpus)
        runner = importlib.import_module(job.module)
        config = runner.Config.model_validate(job.config)
        inputs = {role: Path(path) for role, path in job.inputs.items()}
        return runner.run(config, inputs, scratch, **_checkpointing(runner, job)) or {}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _fresh_attempt_dir(final: Path, suffix: str = "") -> Path:
    """A new temporary folder beside `final`, named as attempts are (cleaned up alike)."""
    tmp = final.parent / f"{TMP_PREFIX}{final.name}-{socket.gethostname()}-{os.getpid()}{suffix}"
    tmp.mkdir()
    return tmp


def _remove_attempts_of(final: Path) -> None:
    # Under the step's claim nobody else writes this step: what attempts left is dead. Only
    # after a holder that died: a glob of the stage folder costs ~8 ms at 10,000 steps.
    for leftover in final.parent.glob(f"{TMP_PREFIX}{final.name}-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _run_claimed(job: StepJob, final: Path) -> dict[str, Any]:
    started = time.time()
    tmp = _fresh_attempt_dir(final)
    try:  # from here on, a cancel (which can land between any two lines) removes tmp
        write_json(tmp / "config.json", _config_record(job))
        _note_attempt(job, "started")
        _limit_threads(job.cpus)
        runner = importlib.import_module(job.module)
        config = runner.Config.model_validate(job.config)
        inputs = {role: Path(path) for role, path in job.inputs.items()}
        with _progress_file(job):
            metrics = runner.run(config, inputs, tmp, **_checkpointing(runner, job))
        metrics = _finite(metrics or {})
        write_json(tmp / "result.json", {"metrics": metrics})
        write_json(tmp / "provenance.json", _provenance(job, started))
        write_manifest(tmp)  # last: it vouches for everything above
    except Exception:
        if job.world_size > 1:
            # Rank 0's error may be the echo of another rank's (a peer gone mid-collective):
            # the launcher's account, or srun's and the failed rank's log, tells which was first.
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            _keep_failure(tmp, final, traceback.format_exc())
        _note_attempt(job, "failed")
        raise
    except BaseException:
        # Interrupted, not failed: Ctrl-C, a cancel from the run (lifeline.Cancelled), or
        # submitit exiting after it requeued the job on a time limit or preemption. The next
        # attempt starts afresh (or from its checkpoints).
        shutil.rmtree(tmp, ignore_errors=True)
        _note_attempt(job, "stopped")
        raise
    _publish(tmp, final)
    _note_attempt(job, "finished")
    if job.work_dir:
        shutil.rmtree(job.work_dir, ignore_errors=True)
    return metrics


PROGRESS_FILE = "progress.json"
"""In the step's work_dir: outlives a killed attempt, removed with the folder once published."""


@contextmanager
def _progress_file(job: StepJob) -> Iterator[None]:
    """SCALER_PROGRESS_FILE set to this step's progress file while its runner runs; what it was
    before (in a process that runs step after step, another step's) is restored after."""
    if not job.work_dir:
        yield
        return
    before = os.environ.get(PROGRESS_VARIABLE)
    path = Path(job.work_dir) / PROGRESS_FILE
    path.unlink(missing_ok=True)  # a failed attempt's: not this attempt's progress
    os.environ[PROGRESS_VARIABLE] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(PROGRESS_VARIABLE, None)
        else:
            os.environ[PROGRESS_VARIABLE] = before


_open_attempts: set[str] = set()
"""The steps whose attempt this process started and has not ended."""


def _note_open_attempt_stopped(job: StepJob) -> None:
    """What an attempt that could not end itself leaves (its process exits, orphaned)."""
    if job.name in _open_attempts:
        _note_attempt(job, "stopped")


def _note_attempt(job: StepJob, event: str) -> None:
    """Log an attempt's start or end (Layout.attempts_log): how many times each step was
    executed, where, and when."""
    if event == "started":
        _open_attempts.add(job.name)
    else:
        _open_attempts.discard(job.name)
    line = {"step": job.name, "event": event, "host": socket.gethostname(), "pid": os.getpid()}
    # results/<exp>/steps/<stage>/<name>: the experiment's folder is three levels up.
    path = Layout(Path(job.out_dir).parents[2]).attempts_log
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # One write of a short line in append mode: lines from parallel jobs never interleave.
        with open(path, "a") as log:
            log.write(json.dumps(line | {"at": time.time()}) + "\n")
    except OSError:  # a full disk fails the step where it writes its results, not here
        pass


def _keep_failure(tmp: Path, final: Path, text: str) -> None:
    """Keep a failed attempt as .failed-<name>/ with its traceback (error.txt). On a full disk
    only the traceback is kept: the attempt's partial files go first, to make room (and space
    for the re-run); if even then it cannot be written, no error.txt rather than an empty one."""
    failed = final.parent / f"{FAILED_PREFIX}{final.name}"
    if not says_no_space(text):
        try:
            (tmp / "error.txt").write_text(text)
            _replace_dir(tmp, failed)
            return
        except OSError:
            pass
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(failed, ignore_errors=True)
    try:
        failed.mkdir()
        (failed / "error.txt").write_text(text)
    except OSError:
        shutil.rmtree(failed, ignore_errors=True)


class RequeueableStep:
    """`run_step` as submitted to Slurm. On a time limit or a preemption submitit calls
    `checkpoint` and requeues the same step, which resumes from what its runner saved under
    the step's work_dir (the train stage) or runs again from scratch (the others)."""

    def __call__(self, job: StepJob) -> dict[str, Any]:
        return run_step(job)

    def checkpoint(self, job: StepJob) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, job)


def _checkpointing(runner: Any, job: StepJob) -> dict[str, Path]:
    """`checkpoint_dir=` for runners that accept one, when the job has a work_dir."""
    if not job.work_dir or "checkpoint_dir" not in inspect.signature(runner.run).parameters:
        return {}
    checkpoint_dir = Path(job.work_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    return {"checkpoint_dir": checkpoint_dir}


def _finite(value: Any) -> Any:
    """Metrics with NaN or infinities (a diverged loss) are stored as null, not refused."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _publish(tmp: Path, final: Path) -> None:
    try:
        os.rename(tmp, final)
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(tmp)  # another run published the same step first; its copy is equal
    failed = final.parent / f"{FAILED_PREFIX}{final.name}"
    if failed.exists():
        shutil.rmtree(failed, ignore_errors=True)


def _replace_dir(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target, ignore_errors=True)
    os.rename(source, target)


# Progress bars of datasets/transformers fill job logs with carriage returns; scaler prints its
# own progress. A user's environment still wins (setdefault).
QUIET_ENVIRONMENT = {
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def _limit_threads(cpus: int) -> None:
    # Steps running side by side must not each take every core: two torch processes with two
    # threads each on two cores ran 7-11x slower than one. The variables reach libraries
    # imported later in this process; torch, if already imported, is told directly.
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(cpus)
    for variable, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(variable, value)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(cpus)


def _config_record(job: StepJob) -> dict[str, Any]:
    record = asdict(job)
    record.pop("provenance")
    record.pop("owner")  # which process ran it is provenance, not what the step is
    return record


def _provenance(job: StepJob, started: float) -> dict[str, Any]:
    ended = time.time()
    return job.provenance | {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "python": sys.version.split()[0],
        "started_at": started,
        "ended_at": ended,
        "wall_s": round(ended - started, 4),
    }
