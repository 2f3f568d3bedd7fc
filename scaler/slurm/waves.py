"""Waves: a plan larger than the room in the queue goes in as that room appears.

slurmctld holds at most MaxJobCount jobs, counting every array task (pending ones too, though
they share one record until they start) and every job that ended less than MinJobAge ago, of
every user; it refuses a submission that would reach that count. Accounting may also cap one
user's pending and running jobs: MaxSubmitJobs of the association the jobs are charged to, or
MaxSubmitJobsPerUser of their QOS. The room now is the least of what each limit leaves, and of
`executor.max_jobs` (this experiment's queued and running tasks) where the spec sets it.

A submission takes whole arrays in the order scaler.slurm.render gives them (an array after
every array it waits on) for as long as the next one fits the room, so an array only ever waits
on arrays submitted before it or on jobs already queued; the rest waits for the next wave. The
follower (scaler.slurm.follow) submits it as earlier arrays drain, with dependencies on those
of its inputs still queued. Whole arrays only, and never larger than the queue can ever hold:
sbatch calls stay one per (stage, resources) group and MaxArraySize chunk in each wave, never
one per step, however the room trickles in.

Pure: the counts come from scaler.slurm.cluster (`Slurm.limits`, `Slurm.held`). What accounting
reports is read by `submit_limit` from `sacctmgr` rows; where accounting reports no limit, or
cannot be asked, the per-user limit is left out and MaxJobCount alone bounds a wave.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scaler.slurm.render import ArrayJob


@dataclass(frozen=True)
class SubmitLimit:
    """A per-user cap on pending and running jobs, and where accounting sets it."""

    jobs: int
    source: str
    """e.g. `MaxSubmitJobs of association lab/alice` or `MaxSubmitJobsPerUser of QOS high`."""


@dataclass(frozen=True)
class Limits:
    max_array_size: int
    """Tasks one array may hold (indices 0..MaxArraySize-1)."""
    max_job_count: int
    """Jobs slurmctld holds, every array task counting as one (MaxJobCount)."""
    submit: SubmitLimit | None = None
    """The tightest per-user limit accounting reports for this plan's jobs; None: none."""


@dataclass(frozen=True)
class Room:
    tasks: int
    """Array tasks that may be submitted now."""
    bound: str
    """The limit that leaves the least room, in words, e.g. `MaxJobCount 10,000: 9,990 jobs
    held`."""


def room(limits: Limits, *, held: int, mine: int, ours: int, max_jobs: int | None = None) -> Room:
    """The room now, given `held` (jobs slurmctld holds, every user's, ended ones included),
    `mine` (this user's pending and running tasks) and `ours` (this experiment's)."""
    # slurmctld refuses a submission when held + new reaches MaxJobCount: one less fits.
    options = [
        (limits.max_job_count - 1 - held, f"MaxJobCount {limits.max_job_count:,}: {held:,} held")
    ]
    if limits.submit is not None:
        options.append(
            (
                limits.submit.jobs - mine,
                f"{limits.submit.source} {limits.submit.jobs:,}: {mine:,} of yours queued",
            )
        )
    if max_jobs is not None:
        options.append((max_jobs - ours, f"executor.max_jobs {max_jobs:,}: {ours:,} queued"))
    tasks, bound = min(options, key=lambda option: option[0])
    return Room(max(tasks, 0), bound)


def capacity(limits: Limits, max_jobs: int | None = None) -> int:
    """The most tasks the queue can ever hold for one experiment: an array larger than this
    would never fit, so arrays are split at it as at MaxArraySize."""
    caps = [limits.max_job_count - 1]
    caps += [limits.submit.jobs] if limits.submit is not None else []
    caps += [max_jobs] if max_jobs is not None else []
    return max(min(caps), 1)


def this_wave(arrays: Sequence[ArrayJob], room_tasks: int) -> list[ArrayJob]:
    """The arrays that go in now: the longest run from the first whose tasks fit `room_tasks`.
    Stopping at the first that does not fit keeps every array after the ones it waits on."""
    taken, used = 0, 0
    for array in arrays:
        if used + len(array.steps) > room_tasks:
            break
        taken, used = taken + 1, used + len(array.steps)
    return list(arrays[:taken])


# ---------------------------------------------------------------------------- accounting

ASSOC_FIELDS = ("Account", "User", "MaxSubmit", "QOS", "DefaultQOS")
"""`sacctmgr show assoc format=...`: what `submit_limit` reads of the user's associations.
sacctmgr shows a user association's MaxSubmitJobs as it applies, inherited from the accounts
above it where the user's own is unset."""
QOS_FIELDS = ("Name", "MaxSubmitPU")
"""`sacctmgr show qos format=...`: each QOS and its MaxSubmitJobsPerUser."""


def parse_rows(output: str, fields: Sequence[str]) -> list[dict[str, str]]:
    """Rows of `sacctmgr --noheader --parsable2 show ... format=<fields>` output."""
    return [
        dict(zip(fields, line.split("|"), strict=False))
        for line in output.splitlines()
        if line.strip()
    ]


def submit_limit(
    associations: list[dict[str, str]],
    qos_rows: list[dict[str, str]],
    *,
    default_account: str,
    accounts: Iterable[str | None],
    qos: Iterable[str | None],
) -> SubmitLimit | None:
    """The tightest per-user submit limit for jobs charged to `accounts` (None: the user's
    `default_account`) with `qos` (None: each association's default QOS, else every QOS it
    allows): MaxSubmitJobs of the user's `associations` and MaxSubmitJobsPerUser of the QOS.
    None when accounting sets neither. The tightest over all of them, because the count it is
    compared with (this user's queued jobs) is not split by account or QOS either."""
    qos = list(qos)
    found: list[SubmitLimit] = []
    qos_names = {name for name in qos if name}
    for account in sorted({account or default_account for account in accounts}):
        for row in (row for row in associations if row.get("Account") == account):
            limit = _number(row.get("MaxSubmit", ""))
            if limit is not None:
                where = f"{account}/{row.get('User', '')}"
                found.append(SubmitLimit(limit, f"MaxSubmitJobs of association {where}"))
            if None in qos:  # a stage that names no QOS gets the association's default
                allowed = row.get("DefaultQOS") or row.get("QOS", "")
                qos_names |= {name for name in allowed.split(",") if name}
    per_user = {row.get("Name", ""): _number(row.get("MaxSubmitPU", "")) for row in qos_rows}
    for name in sorted(qos_names):
        limit = per_user.get(name)
        if limit is not None:
            found.append(SubmitLimit(limit, f"MaxSubmitJobsPerUser of QOS {name}"))
    return min(found, key=lambda limit: limit.jobs, default=None)


def _number(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None
