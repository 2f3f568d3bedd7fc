"""Waves: a plan larger than the room in the queue goes in as that room appears.

slurmctld holds at most MaxJobCount jobs, counting every array task (pending ones too, though
they share one record until they start) and every job that ended less than MinJobAge ago, of
every user; it refuses a submission that would reach that count. Accounting may also cap the
pending and running jobs of a user (MaxSubmitJobs of the association the jobs are charged to,
MaxSubmitJobsPerUser of their QOS), of an account and every account below it (GrpSubmitJobs of
the account), of a QOS (its GrpSubmitJobs) and of an account within a QOS
(MaxSubmitJobsPerAccount). The room now is the least of what each limit leaves, and of
`executor.max_jobs` (this experiment's queued and running tasks) where the spec sets it.

A submission takes whole arrays in the order scaler.slurm.render gives them (an array after
every array it waits on) for as long as the next one fits the room, so an array only ever waits
on arrays submitted before it or on jobs already queued; the rest waits for the next wave. The
follower (scaler.slurm.follow) submits it as earlier arrays drain, with dependencies on those
of its inputs still queued. Whole arrays only, and never larger than the queue can ever hold:
sbatch calls stay one per (stage, resources) group and MaxArraySize chunk in each wave, never
one per step, however the room trickles in.

Pure: the counts come from scaler.slurm.cluster (`Slurm.limits`, `Slurm.held`). What accounting
reports is read by `submit_limits` from `sacctmgr` rows; where accounting reports no limit, or
cannot be asked, those limits are left out and MaxJobCount alone bounds a wave.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scaler.slurm.render import ArrayJob


@dataclass(frozen=True)
class Queued:
    """A pending or running task, as the submit limits count it (one line of squeue)."""

    mine: bool
    """This user's."""
    account: str
    qos: str


@dataclass(frozen=True)
class SubmitLimit:
    """A cap accounting sets on pending and running jobs, where it sets it, and whose jobs it
    counts."""

    jobs: int
    source: str
    """e.g. `MaxSubmitJobs of association lab/alice` or `GrpSubmitJobs of account lab`."""
    mine: bool = True
    """Only this user's jobs count; False: every user's."""
    accounts: frozenset[str] | None = None
    """Only jobs charged to these accounts count (for an account's limit, it and every account
    below it); None: any account's."""
    qos: str | None = None
    """Only jobs of this QOS count; None: any QOS's."""

    def counted(self, queued: Iterable[Queued]) -> int:
        return sum(
            (job.mine or not self.mine)
            and (self.accounts is None or job.account in self.accounts)
            and (self.qos is None or job.qos == self.qos)
            for job in queued
        )


@dataclass(frozen=True)
class Limits:
    max_array_size: int
    """Tasks one array may hold (indices 0..MaxArraySize-1)."""
    max_job_count: int
    """Jobs slurmctld holds, every array task counting as one (MaxJobCount)."""
    submit: tuple[SubmitLimit, ...] = ()
    """The submit limits accounting sets on this plan's jobs (none where it sets none)."""


@dataclass(frozen=True)
class Room:
    tasks: int
    """Array tasks that may be submitted now."""
    bound: str
    """The limit that leaves the least room, in words, e.g. `MaxJobCount 10,000: 9,990 jobs
    held`."""


def room(
    limits: Limits,
    *,
    held: int,
    queued: Sequence[Queued],
    ours: int,
    max_jobs: int | None = None,
) -> Room:
    """The room now, given `held` (jobs slurmctld holds, every user's, ended ones included),
    `queued` (the pending and running tasks squeue shows) and `ours` (this experiment's)."""
    # slurmctld refuses a submission when held + new reaches MaxJobCount: one less fits.
    options = [
        (limits.max_job_count - 1 - held, f"MaxJobCount {limits.max_job_count:,}: {held:,} held")
    ]
    for limit in limits.submit:
        count, whose = limit.counted(queued), "of yours " if limit.mine else ""
        options.append(
            (limit.jobs - count, f"{limit.source} {limit.jobs:,}: {count:,} {whose}queued")
        )
    if max_jobs is not None:
        options.append((max_jobs - ours, f"executor.max_jobs {max_jobs:,}: {ours:,} queued"))
    tasks, bound = min(options, key=lambda option: option[0])
    return Room(max(tasks, 0), bound)


def capacity(limits: Limits, max_jobs: int | None = None) -> int:
    """The most tasks the queue can ever hold for one experiment: an array larger than this
    would never fit, so arrays are split at it as at MaxArraySize."""
    caps = [limits.max_job_count - 1]
    caps += [limit.jobs for limit in limits.submit]
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

ASSOC_FIELDS = ("Account", "User", "MaxSubmit", "GrpSubmit", "QOS", "DefaultQOS")
"""`sacctmgr show assoc where users=<user> format=...`: what `submit_limits` reads of the user's
associations. sacctmgr shows a user association's MaxSubmitJobs as it applies, inherited from
the accounts above it where the user's own is unset; a GrpSubmitJobs is not inherited."""
ACCOUNT_FIELDS = ("Account", "ParentName", "User", "GrpSubmit")
"""`sacctmgr show assoc format=...`, every association: the account tree (an account's row has
no user, and names its parent) and each account's GrpSubmitJobs."""
QOS_FIELDS = ("Name", "MaxSubmitPU", "GrpSubmit", "MaxSubmitPA")
"""`sacctmgr show qos format=...`: each QOS's MaxSubmitJobsPerUser, GrpSubmitJobs and
MaxSubmitJobsPerAccount."""


def parse_rows(output: str, fields: Sequence[str]) -> list[dict[str, str]]:
    """Rows of `sacctmgr --noheader --parsable2 show ... format=<fields>` output."""
    return [
        dict(zip(fields, line.split("|"), strict=False))
        for line in output.splitlines()
        if line.strip()
    ]


def submit_limits(
    associations: list[dict[str, str]],
    qos_rows: list[dict[str, str]],
    account_rows: list[dict[str, str]],
    *,
    default_account: str,
    accounts: Iterable[str | None],
    qos: Iterable[str | None],
) -> tuple[SubmitLimit, ...]:
    """The submit limits on jobs charged to `accounts` (None: the user's `default_account`)
    with `qos` (None: each association's default QOS, else every QOS it allows): those of the
    user's `associations`, of the accounts they are in or below (`account_rows`), and of the
    QOS. Each counts only the jobs it caps: a per-user limit this user's, in its account or
    QOS; a group limit every user's."""
    qos = list(qos)
    charged = sorted({account or default_account for account in accounts})
    found: list[SubmitLimit] = []
    qos_names = {name for name in qos if name}
    for account in charged:
        only = frozenset({account})
        for row in (row for row in associations if row.get("Account") == account):
            where = f"{account}/{row.get('User', '')}"
            if (limit := _number(row.get("MaxSubmit", ""))) is not None:
                source = f"MaxSubmitJobs of association {where}"
                found.append(SubmitLimit(limit, source, accounts=only))
            if (limit := _number(row.get("GrpSubmit", ""))) is not None:
                source = f"GrpSubmitJobs of association {where}"
                found.append(SubmitLimit(limit, source, accounts=only))
            if None in qos:  # a stage that names no QOS gets the association's default
                allowed = row.get("DefaultQOS") or row.get("QOS", "")
                qos_names |= {name for name in allowed.split(",") if name}
    found += _account_limits(account_rows, charged)
    by_name = {row.get("Name", ""): row for row in qos_rows}
    for name in sorted(qos_names):
        row = by_name.get(name, {})
        if (limit := _number(row.get("MaxSubmitPU", ""))) is not None:
            found.append(SubmitLimit(limit, f"MaxSubmitJobsPerUser of QOS {name}", qos=name))
        if (limit := _number(row.get("GrpSubmit", ""))) is not None:
            found.append(SubmitLimit(limit, f"GrpSubmitJobs of QOS {name}", mine=False, qos=name))
        if (limit := _number(row.get("MaxSubmitPA", ""))) is not None:
            found += [
                SubmitLimit(
                    limit,
                    f"MaxSubmitJobsPerAccount of QOS {name} ({account})",
                    mine=False,
                    accounts=frozenset({account}),
                    qos=name,
                )
                for account in charged
            ]
    return tuple(found)


def _account_limits(account_rows: list[dict[str, str]], charged: list[str]) -> list[SubmitLimit]:
    """GrpSubmitJobs of each account that one of `charged` is or is below, counting every
    user's jobs charged to that account or to any account below it."""
    accounts = [row for row in account_rows if not row.get("User")]
    parent = {row.get("Account", ""): row.get("ParentName", "") for row in accounts}
    group = {row.get("Account", ""): _number(row.get("GrpSubmit", "")) for row in accounts}

    def above(account: str) -> list[str]:
        """`account` and the accounts above it, up to the root."""
        chain: list[str] = []
        while account and account not in chain:
            chain.append(account)
            account = parent.get(account, "")
        return chain

    tops = {top for account in charged for top in above(account)}
    return [
        SubmitLimit(
            limit,
            f"GrpSubmitJobs of account {top}",
            mine=False,
            accounts=frozenset(account for account in parent if top in above(account)),
        )
        for top in sorted(tops)
        if (limit := group.get(top)) is not None
    ]


def _number(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None
