"""The one module that talks to Slurm: submitit for submission, and batched calls of squeue,
sacct, scancel, scontrol and sacctmgr. What to submit is decided in scaler.slurm.render, and
how much of it goes in now in scaler.slurm.waves (both pure).

submitit writes each task's pickled StepJob, sbatch script and logs under `<folder>/`; a task
runs `RequeueableStep()(job)` with the submitting interpreter, so the cluster needs the same
Python environment on a shared file system (as every submitit user has).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaler.errors import SubmissionError
from scaler.slurm.waves import (
    ACCOUNT_FIELDS,
    ASSOC_FIELDS,
    QOS_FIELDS,
    Limits,
    Queued,
    SubmitLimit,
    parse_rows,
    submit_limits,
)

if TYPE_CHECKING:
    from scaler.run.job import StepJob

COMMANDS = ("sbatch", "squeue", "sacct", "scancel", "scontrol", "srun")
ACTIVE_STATES = frozenset(
    "PENDING RUNNING REQUEUED REQUEUE_HOLD REQUEUE_FED RESIZING SUSPENDED COMPLETING "
    "CONFIGURING STOPPED SIGNALING STAGE_OUT".split()
)
"""squeue states of a job that still holds its step: it may yet run or is running."""
NEVER_SATISFIED = "DependencyNeverSatisfied"
"""squeue's reason for a job `kill-on-invalid-dep` cancelled: a job it waited on ended badly."""


def missing_commands() -> list[str]:
    """The Slurm commands not on PATH (empty where scaler can submit)."""
    return [command for command in COMMANDS if shutil.which(command) is None]


@dataclass(frozen=True)
class JobState:
    state: str
    """Slurm's job state, first word only ("CANCELLED by 0" -> "CANCELLED")."""
    reason: str = ""

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def killed_for_dependency(self) -> bool:
        """Cancelled by Slurm before it ran, because a job it waited on ended badly (not by a
        user: a pending job someone cancels keeps the reason "Dependency")."""
        return self.state == "CANCELLED" and self.reason == NEVER_SATISFIED


class Slurm:
    def __init__(self, folder: Path, max_timeouts: int = 3):
        self.folder = folder
        """submitit's folder: pickles, sbatch scripts and logs of every task."""
        self.max_timeouts = max_timeouts
        """How often submitit requeues a task that reached its time limit."""

    def limits(
        self, accounts: Iterable[str | None] = (None,), qos: Iterable[str | None] = (None,)
    ) -> Limits:
        """MaxArraySize and MaxJobCount (scontrol), and the submit limits accounting sets on
        jobs charged to `accounts` with `qos` (None: the defaults); none where it sets none or
        cannot be asked (no sacctmgr, accounting down)."""
        config = {}
        for line in _run(["scontrol", "show", "config"]).splitlines():
            key, _, value = line.partition("=")
            config[key.strip()] = value.strip()
        # Slurm's defaults when a value is missing.
        return Limits(
            int(config.get("MaxArraySize", 1001)),
            int(config.get("MaxJobCount", 10000)),
            _submit_limits(config.get("ClusterName", ""), accounts, qos),
        )

    def held(self) -> tuple[int, list[Queued]]:
        """(jobs slurmctld holds, every user's, ended ones not yet purged; the pending and
        running ones with their user, account and QOS), every array task counting as one,
        from one squeue call."""
        output = _run(["squeue", "-h", "--array", "--states=all", "--format=%U|%T|%a|%q"])
        me, held, queued = str(os.getuid()), 0, []
        for line in output.splitlines():
            uid, state, account, qos = (line.strip().split("|") + ["", "", ""])[:4]
            held += 1
            if state in ACTIVE_STATES:
                queued.append(Queued(uid == me, account, qos))
        return held, queued

    def check(self, parameters: dict[str, Any], what: str) -> None:
        """Ask sbatch (`--test-only`, nothing submitted) whether it accepts these resources."""
        with tempfile.TemporaryDirectory() as folder:
            script = Path(folder) / "check.sh"
            script.write_text(sbatch_script(parameters, Path(folder), tasks=1, command="true"))
            try:
                _run(["sbatch", "--test-only", str(script)])
            except SubmissionError as error:
                raise SubmissionError(f"{what}: sbatch refuses these resources: {error}") from None

    def submit(self, parameters: dict[str, Any], jobs: list[StepJob]) -> list[str]:
        """Submit `jobs` as one array (one sbatch call); return each task's job id."""
        import submitit

        from scaler.run.job import RequeueableStep

        executor = submitit.SlurmExecutor(folder=self.folder, max_num_timeout=self.max_timeouts)
        executor.update_parameters(**parameters)
        try:
            with executor.batch():
                handles = [executor.submit(RequeueableStep(), job) for job in jobs]
        except submitit.core.utils.FailedJobError as error:  # sbatch refused the array
            lines = str(error).strip().splitlines()
            raise SubmissionError(
                f"sbatch refused {len(jobs)} {jobs[0].stage} steps: {lines[-1] if lines else ''}"
            ) from None
        return [handle.job_id for handle in handles]

    def queue(self) -> dict[str, JobState]:
        """This user's jobs that slurmctld knows, one entry per array task: pending, running,
        and ended within the last MinJobAge (300 s by default), with their final state."""
        output = _run(["squeue", "--me", "-h", "--array", "--states=all", "--format=%i|%T|%r"])
        states = {}
        for line in output.splitlines():
            task, state, reason = line.strip().split("|", 2)
            states[task] = JobState(state, reason)
        return states

    def accounting(self, tasks: list[str]) -> dict[str, JobState]:
        """The final state of tasks that ended before squeue's memory, from one sacct call."""
        from submitit.slurm.slurm import SlurmInfoWatcher

        jobs = sorted({task.split("_")[0] for task in tasks})
        if not jobs:
            return {}
        output = _run(
            ["sacct", "-X", "--parsable2", "-o", "JobID,State,Reason", "-j", ",".join(jobs)]
        )
        return {
            task: _accounted(info["State"], info.get("Reason", ""))
            for task, info in SlurmInfoWatcher().read_info(output).items()
        }

    def cancel(self, jobs: list[str]) -> None:
        if jobs:
            _run(["scancel", *jobs])

    def stderr_path(self, task: str, rank: int = 0) -> Path:
        """The log of one task's rank (every task of a one-process step is rank 0)."""
        from submitit.core.utils import JobPaths

        return JobPaths(self.folder, job_id=task, task_id=rank).stderr


def _submit_limits(
    cluster: str, accounts: Iterable[str | None], qos: Iterable[str | None]
) -> tuple[SubmitLimit, ...]:
    """What accounting says of the submit limits on this user's jobs
    (scaler.slurm.waves.submit_limits); none where it sets none or cannot be asked."""
    if shutil.which("sacctmgr") is None:
        return ()
    user = pwd.getpwuid(os.getuid()).pw_name
    on_cluster = [f"clusters={cluster}"] if cluster else []

    def show(what: str, where: list[str], fields: tuple[str, ...]) -> list[dict[str, str]]:
        shown = ["sacctmgr", "-n", "-P", "show", what]
        return parse_rows(_run([*shown, *where, f"format={','.join(fields)}"]), fields)

    try:
        default = show("user", [user], ("DefaultAccount",))
        associations = show("assoc", ["where", f"users={user}", *on_cluster], ASSOC_FIELDS)
        account_rows = show("assoc", ["where", *on_cluster] if cluster else [], ACCOUNT_FIELDS)
        qos_rows = show("qos", [], QOS_FIELDS)
    except SubmissionError:  # no accounting database to ask: no submit limit known
        return ()
    return submit_limits(
        associations,
        qos_rows,
        account_rows,
        default_account=default[0].get("DefaultAccount", "") if default else "",
        accounts=accounts,
        qos=qos,
    )


def _accounted(state: str, reason: str) -> JobState:
    """sacct's state in squeue's words. sacct says "CANCELLED by <uid>" when a user cancelled
    a job, and a plain "CANCELLED" with the reason "Dependency" when Slurm did."""
    if state == "CANCELLED" and "Dependency" in reason:
        return JobState("CANCELLED", NEVER_SATISFIED)
    return JobState(state.split()[0], reason)


def sbatch_script(parameters: dict[str, Any], folder: Path, tasks: int, command: str) -> str:
    """The sbatch script submitit writes for these parameters (for checks and golden tests)."""
    from submitit.slurm.slurm import _make_sbatch_string

    map_count = tasks if tasks > 1 else None
    return _make_sbatch_string(command=command, folder=folder, map_count=map_count, **parameters)


def _run(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SubmissionError(f"{command[0]} failed: {error}") from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise SubmissionError(lines[-1] if lines else f"{' '.join(command[:2])} failed")
    return done.stdout
