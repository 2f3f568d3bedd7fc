"""Waves: a plan larger than the room in the queue goes in as room appears.

Pure tests of the room and of which arrays go in now (scaler.slurm.waves), then a chain of
light steps (tests/fixture_runner.py) on the real local Slurm, with the room made small by
`executor.max_jobs` rather than by editing slurm.conf: the plan goes in in waves, each array
waiting on the jobs of its inputs still queued, it finishes, and no step ever gets two jobs, also
with two followers at once. Submit limits are read from accounting: a temporary account with
MaxSubmitJobs, and one below an account with GrpSubmitJobs, show that they bound the waves, and
a missing or failing sacctmgr that they are then left out.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fixture_runner import Config as _Config

from conftest import SMALL_SPEC, check_small_database, requires_slurm, wait_for, write_spec
from scaler.layout import Layout, read_json
from scaler.plan import Plan, Step
from scaler.slurm import cluster
from scaler.slurm.cluster import Slurm
from scaler.slurm.follow import follow, submit_plan
from scaler.slurm.records import read_records
from scaler.slurm.render import ArrayJob
from scaler.slurm.waves import (
    ACCOUNT_FIELDS,
    ASSOC_FIELDS,
    QOS_FIELDS,
    Limits,
    Queued,
    Room,
    SubmitLimit,
    capacity,
    parse_rows,
    room,
    submit_limits,
    this_wave,
)
from scaler.spec.schema import ExecutorSettings, Resources
from scaler.stages import STAGES, Stage

TESTS = Path(__file__).resolve().parent.parent


def on_slurm(test):
    """The marks of the Slurm tests, on one test of a file that also has pure ones."""
    for mark in requires_slurm:
        test = mark(test)
    return test


LIGHT = Resources(cpus=1, mem_gb=0.5, time_min=5)


# ---------------------------------------------------------------------------- pure


MINE_IN_LAB = [Queued(True, "lab", "normal")] * 450
OTHERS_IN_LAB = [Queued(False, "lab", "normal")] * 300
LAB = frozenset({"lab"})


def test_the_room_is_the_least_any_limit_leaves():
    limits = Limits(1001, 10_000)
    assert room(limits, held=9_000, queued=MINE_IN_LAB, ours=10).tasks == 999  # held + new < max
    assert room(limits, held=9_000, queued=[], ours=0).bound == "MaxJobCount 10,000: 9,000 held"
    per_user = Limits(1001, 10_000, (SubmitLimit(500, "MaxSubmitJobs of lab/me", accounts=LAB),))
    mixed = MINE_IN_LAB + OTHERS_IN_LAB + [Queued(True, "other", "normal")] * 40
    assert room(per_user, held=100, queued=mixed, ours=0).tasks == 50  # mine, in lab
    assert room(per_user, held=100, queued=mixed, ours=0).bound.endswith(
        "lab/me 500: 450 of yours queued"
    )
    assert room(per_user, held=100, queued=[], ours=8, max_jobs=10).tasks == 2
    assert room(limits, held=20_000, queued=[], ours=0).tasks == 0  # never below nothing
    # The largest array that can ever fit: arrays are split at it as at MaxArraySize.
    assert capacity(limits) == 9_999
    assert capacity(per_user, max_jobs=4) == 4


def test_a_group_limit_counts_every_users_jobs_it_covers():
    mixed = MINE_IN_LAB + OTHERS_IN_LAB + [Queued(False, "other", "high")] * 40
    account = SubmitLimit(800, "GrpSubmitJobs of account lab", mine=False, accounts=LAB)
    assert room(Limits(1001, 10_000, (account,)), held=800, queued=mixed, ours=0) == Room(
        50, "GrpSubmitJobs of account lab 800: 750 queued"
    )
    by_qos = SubmitLimit(60, "GrpSubmitJobs of QOS high", mine=False, qos="high")
    assert room(Limits(1001, 10_000, (by_qos,)), held=800, queued=mixed, ours=0).tasks == 20
    assert capacity(Limits(1001, 10_000, (account, by_qos))) == 60


def _arrays(*sizes: int) -> list[ArrayJob]:
    step = Step("a", _Config(value=0))
    return [ArrayJob("a", LIGHT, (step,) * size) for size in sizes]


def test_a_wave_takes_whole_arrays_in_order_while_the_next_fits(chain_stages):
    arrays = _arrays(4, 2, 4, 2)
    assert this_wave(arrays, 3) == []
    assert this_wave(arrays, 4) == arrays[:1]
    assert this_wave(arrays, 7) == arrays[:2]  # not the 2 after the 4 that does not fit
    assert this_wave(arrays, 100) == arrays


# What this Slurm's sacctmgr printed (22.05) for root with a child account `probe` whose
# MaxSubmitJobs is 5, its user association inheriting it, and a QOS with MaxSubmitJobsPerUser.
ASSOCIATIONS = "probe|root|5||normal|\nroot|root|||normal|\n"
QOS = "normal|\nhigh|4\n"


def _limits(default: str, accounts: list, qos: list, **rows: str) -> tuple[SubmitLimit, ...]:
    return submit_limits(
        parse_rows(rows.get("assoc", ASSOCIATIONS), ASSOC_FIELDS),
        parse_rows(rows.get("qos_rows", QOS), QOS_FIELDS),
        parse_rows(rows.get("accounts", ACCOUNTS), ACCOUNT_FIELDS),
        default_account=default,
        accounts=accounts,
        qos=qos,
    )


def test_submit_limits_are_read_from_the_associations_and_qos_the_jobs_use():
    assert _limits("root", [None], [None]) == ()  # root/root and QOS normal set nothing
    assert _limits("root", ["probe"], [None]) == (
        SubmitLimit(5, "MaxSubmitJobs of association probe/root", accounts=frozenset({"probe"})),
    )
    assert _limits("probe", [None], ["high"])[-1] == SubmitLimit(
        4, "MaxSubmitJobsPerUser of QOS high", qos="high"
    )
    assert submit_limits([], [], [], default_account="", accounts=[None], qos=[None]) == ()


# What it printed for every association with root above `lab` (GrpSubmitJobs 7), `lab` above
# `lab-nlp` (the user's) and `lab-vision`, and `other` beside `lab`: an account's row has no user.
ACCOUNTS = (
    "root|||\nroot||root|\nlab|root||7\nlab-nlp|lab||\nlab-nlp||root|\nlab-vision|lab||\n"
    "other|root||\n"
)


def test_group_limits_are_read_from_the_accounts_above_and_the_qos():
    nlp = "lab-nlp|root|||normal|\n"
    # The account's limit covers the accounts below it, whoever's jobs they are.
    below_lab = frozenset({"lab", "lab-nlp", "lab-vision"})
    assert _limits("lab-nlp", [None], [None], assoc=nlp) == (
        SubmitLimit(7, "GrpSubmitJobs of account lab", mine=False, accounts=below_lab),
    )
    assert _limits("other", [None], [None], assoc="other|root|||normal|\n") == ()
    limits = _limits("lab-nlp", [None], ["high"], assoc=nlp, qos_rows="normal|||\nhigh||20|6\n")
    assert SubmitLimit(20, "GrpSubmitJobs of QOS high", mine=False, qos="high") in limits
    assert (
        SubmitLimit(
            6,
            "MaxSubmitJobsPerAccount of QOS high (lab-nlp)",
            mine=False,
            accounts=frozenset({"lab-nlp"}),
            qos="high",
        )
        in limits
    )
    # An association's own GrpSubmitJobs counts its user's jobs in its account.
    assert _limits("root", [None], [None], assoc="root|root||3|normal|\n") == (
        SubmitLimit(3, "GrpSubmitJobs of association root/root", accounts=frozenset({"root"})),
    )


# ---------------------------------------------------------------------------- on Slurm


@pytest.fixture
def chain_stages(monkeypatch):
    """Stages a -> b of the fixture runner, importable in the job processes too."""
    for name in ("a", "b"):
        monkeypatch.setitem(STAGES, name, Stage(name, "fixture_runner", 1))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    )


def _chain(experiment: str, per_stage: int, resources: Resources = LIGHT) -> Plan:
    """a_i -> b_i, `per_stage` of each."""
    first = [Step("a", _Config(value=i)) for i in range(per_stage)]
    second = [Step("b", _Config(value=i), (("input", a),)) for i, a in enumerate(first)]
    steps = tuple(first + second)
    return Plan(experiment, steps, {"a": resources, "b": resources})


class _MostQueued(threading.Thread):
    """The most tasks of `experiment` squeue showed pending or running at once."""

    def __init__(self, experiment: str) -> None:
        super().__init__(daemon=True)
        self.names = ",".join(f"scaler-{experiment}-{stage}" for stage in ("a", "b"))
        self.most, self.stop = 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            listed = subprocess.run(
                ["squeue", "--me", "-h", "--array", f"--name={self.names}", "--format=%i"],
                capture_output=True,
                text=True,
            )
            self.most = max(self.most, len(listed.stdout.split()))
            time.sleep(0.1)


def _cancel(layout: Layout) -> None:
    jobs = {r["tasks"][0].split("_")[0] for r in read_records(layout)}
    if jobs:
        subprocess.run(["scancel", *jobs], capture_output=True)


def _check_ran_in_order(plan: Plan, layout: Layout) -> None:
    """Every step done, each b after its a ended: its dependency held across the waves."""
    times = {}
    for step in plan.steps:
        provenance = read_json(layout.step_dir(step.stage, step.name) / "provenance.json")
        times[step.name] = provenance["started_at"], provenance["ended_at"]
    for step in plan.steps:
        for _, needed in step.inputs:
            assert times[step.name][0] >= times[needed.name][1]


@on_slurm
def test_a_plan_three_times_the_room_goes_in_waves_and_finishes(tmp_path, chain_stages):
    plan = _chain("waves", 6)  # 12 steps, room for 4
    layout = Layout(tmp_path / plan.experiment)
    slurm, settings = Slurm(layout.slurm_logs), ExecutorSettings(max_jobs=4, poll_s=0.3)
    watcher = _MostQueued(plan.experiment)
    watcher.start()
    lines: list[str] = []
    try:
        first = submit_plan(plan, layout, slurm, settings)
        assert [tasks for _, _, tasks in first.arrays] == [4]  # a's first 4; the next 2 wait
        assert len(first.waiting) == 8 and first.next_tasks == 2
        report = follow(plan, layout, slurm, settings, first=first, say=lines.append)
    finally:
        watcher.stop.set()
        _cancel(layout)
    assert len(report.ran) == 12 and not report.failed and not report.skipped
    assert 0 < watcher.most <= 4
    assert sum("next wave: submitted" in line for line in lines) >= 2, lines
    records = read_records(layout)
    # Each step in one sbatch call, once: 2 (stage, resources) groups x 2 chunks of at most 4.
    assert sorted(name for r in records for name in r["steps"]) == sorted(
        s.name for s in plan.steps
    )
    assert sorted(len(r["tasks"]) for r in records) == [2, 2, 4, 4]
    _check_ran_in_order(plan, layout)


@on_slurm
def test_a_later_wave_waits_on_the_inputs_still_queued(tmp_path, chain_stages):
    held = LIGHT.model_copy(update={"sbatch": {"hold": True}})
    plan = _chain("waves4", 6)
    plan.resources["a"] = held  # a's tasks start only when the test releases them
    layout = Layout(tmp_path / plan.experiment)
    slurm, settings = Slurm(layout.slurm_logs), ExecutorSettings(max_jobs=8, poll_s=0.3)
    reports: list = []
    try:
        first = submit_plan(plan, layout, slurm, settings)
        assert [tasks for _, _, tasks in first.arrays] == [6] and first.next_tasks == 6
        follower = threading.Thread(
            target=lambda: reports.append(
                follow(plan, layout, slurm, settings, first=first, say=lambda _: None)
            ),
            daemon=True,
        )
        follower.start()
        job = first.arrays[0][1]
        _release(*(f"{job}_{i}" for i in range(4)))  # 4 drain; a_4 and a_5 stay queued
        b = wait_for(
            lambda: [r for r in read_records(layout) if r["stage"] == "b"], "the next wave"
        )
        # The next wave went in as soon as 4 drained, waiting on the 2 still queued.
        assert len(b) == 1 and b[0]["after"] == [f"{job}_4", f"{job}_5"]
        _release(f"{job}_4", f"{job}_5")
        follower.join(timeout=120)
    finally:
        _cancel(layout)
    assert reports and len(reports[0].ran) == 12
    _check_ran_in_order(plan, layout)


def _release(*tasks: str) -> None:
    subprocess.run(["scontrol", "release", *tasks], check=True, capture_output=True)


@on_slurm
def test_two_followers_at_once_never_give_a_step_two_jobs(tmp_path, chain_stages):
    plan = _chain("waves2", 5)  # 10 steps, room for 3
    layout = Layout(tmp_path / plan.experiment)
    settings = ExecutorSettings(max_jobs=3, poll_s=0.2)
    reports, errors = [], []

    def run_and_follow() -> None:
        try:
            slurm = Slurm(layout.slurm_logs)
            first = submit_plan(plan, layout, slurm, settings)
            reports.append(follow(plan, layout, slurm, settings, first=first, say=lambda _: None))
        except BaseException as error:  # noqa: BLE001 - reported below, in the test's thread
            errors.append(error)

    runs = [threading.Thread(target=run_and_follow) for _ in range(2)]
    try:
        for run in runs:
            run.start()
        for run in runs:
            run.join(timeout=300)
    finally:
        _cancel(layout)
    assert not errors, errors
    assert [len(r.ran) for r in reports] == [10, 10]
    submitted = [name for r in read_records(layout) for name in r["steps"]]
    assert sorted(submitted) == sorted(s.name for s in plan.steps)  # one job each, in all
    assert max(len(r["tasks"]) for r in read_records(layout)) <= 3
    _check_ran_in_order(plan, layout)


@on_slurm
def test_detach_says_scaler_run_again_submits_the_next_wave(cli, results, tmp_path):
    spec = write_spec(tmp_path / "small.yaml", SMALL_SPEC | {"executor": {"name": "slurm"}})
    room = ["executor.max_jobs=2", "executor.poll_s=0.5"]
    try:
        detached = cli(["run", str(spec), "--detach", *room])
        assert detached.code == 0, detached.err
        # The generate step alone: the two train steps (one array) do not fit beside it.
        assert "submitted 1 steps in 1 jobs: generate" in detached.out
        assert "4 steps wait for room in the queue (room now: executor.max_jobs 2" in detached.out
        assert "`scaler run` again with this spec submits it" in detached.out
        followed = cli(["run", str(spec), *room])
        assert followed.code == 0, followed.err
        assert "next wave: submitted 2 steps in 1 jobs" in followed.out
    finally:
        cli("cancel small")
    check_small_database(results)
    records = read_records(Layout(results / "small"))
    assert sorted(len(r["tasks"]) for r in records) == [1, 2, 2]  # generate, train, evaluate
    assert len({name for r in records for name in r["steps"]}) == 5


@contextmanager
def _temporary_accounts(*accounts: tuple[str, str]) -> Iterator[str]:
    """Accounts (name, options) each below the one before (the first below root), this user in
    the last one; removed afterwards."""
    user = _user()

    def sacctmgr(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["sacctmgr", "-i", *args], capture_output=True, text=True)

    made: list[str] = []
    try:
        for name, options in accounts:
            parent = made[-1] if made else "root"
            added = sacctmgr("add", "account", name, f"parent={parent}", *options.split())
            if added.returncode != 0:
                pytest.skip(f"cannot add an account to accounting: {added.stderr.strip()}")
            made.append(name)
        sacctmgr("add", "user", user, f"account={made[-1]}")
        deadline = time.time() + 30
        while made[-1] not in _associations(user) and time.time() < deadline:
            time.sleep(0.5)
        yield made[-1]
    finally:
        sacctmgr("delete", "user", user, f"account={made[-1]}") if made else None
        for name in reversed(made):
            sacctmgr("delete", "account", name)


@pytest.fixture
def account_with_submit_limit():
    """A temporary account with MaxSubmitJobs=3 and this user in it."""
    with _temporary_accounts((f"scalerwaves{os.getpid()}", "maxsubmit=3")) as account:
        yield account


@pytest.fixture
def account_below_a_group_limit():
    """A temporary account, this user in it, below one with GrpSubmitJobs=3."""
    group = (f"scalergroup{os.getpid()}", "grpsubmit=3")
    with _temporary_accounts(group, (f"scalerteam{os.getpid()}", "")) as account:
        yield account


def _associations(user: str) -> str:
    shown = ["scontrol", "show", "assoc_mgr", f"users={user}", "flags=assoc"]
    return subprocess.run(shown, capture_output=True, text=True).stdout


@on_slurm
def test_maxsubmitjobs_from_accounting_bounds_the_waves(
    tmp_path, chain_stages, account_with_submit_limit
):
    charged = LIGHT.model_copy(update={"account": account_with_submit_limit})
    plan = _chain("waves3", 3, charged)  # 6 steps; this user may hold 3
    layout = Layout(tmp_path / plan.experiment)
    slurm, settings = Slurm(layout.slurm_logs), ExecutorSettings(poll_s=0.3)
    limits = slurm.limits([account_with_submit_limit], [None])
    assert limits.submit == (
        SubmitLimit(
            3,
            f"MaxSubmitJobs of association {account_with_submit_limit}/{_user()}",
            accounts=frozenset({account_with_submit_limit}),
        ),
    )
    # Other jobs of this user count too: the room may be less than 3, never more.
    _runs_in_waves_of_at_most_3(plan, layout, slurm, settings, bound="MaxSubmitJobs")


@on_slurm
def test_grpsubmitjobs_of_an_account_above_bounds_the_waves(
    tmp_path, chain_stages, account_below_a_group_limit
):
    charged = LIGHT.model_copy(update={"account": account_below_a_group_limit})
    plan = _chain("waves4", 3, charged)  # 6 steps; the account above holds 3 of everyone's
    layout = Layout(tmp_path / plan.experiment)
    slurm, settings = Slurm(layout.slurm_logs), ExecutorSettings(poll_s=0.3)
    (limit,) = slurm.limits([account_below_a_group_limit], [None]).submit
    group = f"scalergroup{os.getpid()}"
    assert (limit.jobs, limit.source, limit.mine) == (3, f"GrpSubmitJobs of account {group}", False)
    assert limit.accounts == {group, account_below_a_group_limit}
    _runs_in_waves_of_at_most_3(plan, layout, slurm, settings, bound="GrpSubmitJobs of account")


def _runs_in_waves_of_at_most_3(plan, layout, slurm, settings, bound: str) -> None:
    """The 6-step chain goes in under a limit of 3 named `bound...`, and runs to the end in
    order with never more than 3 tasks in a wave."""
    try:
        first = submit_plan(plan, layout, slurm, settings)
        assert first.room is not None and first.room.bound.startswith(bound)
        assert sum(tasks for _, _, tasks in first.arrays) <= 3 and first.waiting
        report = follow(plan, layout, slurm, settings, first=first, say=lambda _: None)
    finally:
        _cancel(layout)
    assert len(report.ran) == 6 and not report.failed
    assert max(len(r["tasks"]) for r in read_records(layout)) <= 3
    _check_ran_in_order(plan, layout)


def _user() -> str:
    return subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()


@on_slurm
def test_without_accounting_limits_a_wave_is_bounded_by_maxjobcount_alone(tmp_path, monkeypatch):
    # This cluster sets no per-user limit; a sacctmgr that fails (no slurmdbd) or is missing
    # leaves it out the same way.
    assert Slurm(tmp_path).limits().submit == ()
    failing = tmp_path / "bin"
    failing.mkdir()
    (failing / "sacctmgr").write_text("#!/bin/sh\necho 'Connection refused' >&2\nexit 1\n")
    (failing / "sacctmgr").chmod(0o755)
    monkeypatch.setenv("PATH", f"{failing}{os.pathsep}{os.environ['PATH']}")
    limits = Slurm(tmp_path).limits()
    assert limits.submit == () and limits.max_job_count > 0
    monkeypatch.setattr(cluster.shutil, "which", lambda name: None)
    assert cluster._submit_limits("localcluster", [None], [None]) == ()
