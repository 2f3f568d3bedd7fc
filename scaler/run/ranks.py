"""Steps that run as several processes (torch.distributed ranks): which rank this process is,
and how a local run starts the ranks of a step.

A train or pretrain step whose resources give it a world of N processes (scaler.stages
`world_size`) runs its runner in N processes at once. On Slurm that is one job of N tasks
(scaler.slurm.render); each task calls `run_step`, reads its place from submitit's job
environment and exports it as torch's env:// variables (MASTER_ADDR, MASTER_PORT, RANK,
WORLD_SIZE, LOCAL_RANK), from which the trainers set up their process group. Locally,
`run_step` starts the N processes with torch's elastic launcher (what `torchrun` uses), each
calling `run_step` again with those variables set.

Rank 0 is the step: it takes the step's claim, writes the temporary folder and renames it into
place. The other ranks train beside it into scratch folders of their own, removed when they
end, and write nothing of the step. Checkpoints go to the step's work_dir, which every rank
sees (the trainers save their shards and random states there and all resume from it).

Failure: the launcher stops every rank when one fails, and the step's error names the rank
that failed first with the tail of its log. On Slurm, srun's `--kill-on-bad-exit` does the
stopping, and the step's error comes from the failed task's log (scaler.slurm.records).
Collectives time out (the trainers' `ddp_timeout`), so a rank whose peer vanished without
srun or the launcher noticing ends too.

This module is imported in job processes: torch is imported only by the launcher.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scaler.run.job import StepJob

LOG_TAIL_LINES = 30


@dataclass(frozen=True)
class Rank:
    rank: int
    world_size: int


def this_rank() -> Rank | None:
    """This process's place in a step of several processes; None in a one-process step."""
    if "TORCHELASTIC_RUN_ID" in os.environ:  # a worker of the local launcher
        return Rank(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]))
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SUBMITIT_EXECUTOR" in os.environ:
        from submitit.helpers import TorchDistributedEnvironment

        # Each task sees every GPU of its node; the rank's own is the one of its local rank.
        env = TorchDistributedEnvironment().export(overwrite=True)
        return Rank(env.rank, env.world_size)
    return None


class RankFailed(RuntimeError):
    """A rank of a step failed; the message names it and ends with its log's tail."""


def launch_ranks(job: StepJob, entrypoint: Any, log_dir: Path) -> Any:
    """Run `entrypoint(job)` in `job.world_size` local processes; rank 0's return value, or
    RankFailed naming the first rank that failed."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, Std
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    run_id = uuid.uuid4().hex[:12]
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=job.world_size,
        run_id=run_id,
        # torchrun --standalone: a rendezvous on this machine, on a free port.
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",
        max_restarts=0,  # a retry is the executor's decision, with a fresh attempt
        monitor_interval=0.1,
        start_method="spawn",
        logs_specs=DefaultLogsSpecs(log_dir=str(log_dir), redirects=Std.ALL, tee=Std.ALL),
    )
    try:
        return elastic_launch(config, entrypoint)(job)[0]
    except ChildFailedError as error:
        rank, failure = error.get_first_failure()
        how = (
            f"killed by {failure.signal_name()}"
            if failure.exitcode < 0
            else f"exit code {failure.exitcode}"
        )
        # A Python error's traceback is in the error file the launcher has each rank write; a
        # kill leaves none, and the rank's log says how far it got.
        traceback = _callstack(failure.error_file_data)
        if traceback:
            raise RankFailed(
                f"rank {rank} of {job.world_size} failed ({how}):\n{traceback}"
            ) from None
        logs = sorted(log_dir.glob(f"{run_id}*/attempt_*/{rank}/std*.log"))
        tail = "\n".join(line for log in logs for line in _tail(log))
        raise RankFailed(
            f"rank {rank} of {job.world_size} failed ({how}); its log ends:\n{tail}"
        ) from None


def _callstack(error_file_data: dict) -> str:
    message = (error_file_data or {}).get("message", {})
    return message.get("extraInfo", {}).get("py_callstack", "") if isinstance(message, dict) else ""


def _tail(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
