"""Waves: a plan larger than the room in the queue goes in as room appears.

Pure tests of the room and of which arrays go in now (scaler.slurm.waves), then a chain of
light steps (tests/fixture_runner.py) on the real local Slurm, with the room made small by
`executor.max_jobs` rather than by editing slurm.conf: the plan goes in in waves, each array
waiting on the jobs of its inputs still queued, it finishes, and no step ever gets two jobs, also
with two followers at once. Per-user limits are read from accounting: a temporary account with
MaxSubmitJobs shows that they bound the waves, and a missing or failing sacctmgr that they are
then left out.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
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
    ASSOC_FIELDS,
    QOS_FIELDS,
    Limits,
    SubmitLimit,
    capacity,
    parse_rows,
    room,
    submit_limit,
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


def test_the_room_is_the_least_any_limit_leaves():
    limits = Limits(1001, 10_000)
    assert room(limits, held=9_000, mine=50, ours=10) == room(limits, held=9_000, mine=0, ours=0)
    assert room(limits, held=9_000, mine=50, ours=10).tasks == 999  # held + new < MaxJobCount
    assert room(limits, held=9_000, mine=50, ours=10).bound == "MaxJobCount 10,000: 9,000 held"
    per_user = Limits(1001, 10_000, SubmitLimit(500, "MaxSubmitJobs of association lab/me"))
    assert room(per_user, held=100, mine=450, ours=0).tasks == 50
    assert "lab/me 500: 450 of yours queued" in room(per_user, held=100, mine=450, ours=0).bound
    assert room(per_user, held=100, mine=0, ours=8, max_jobs=10).tasks == 2
    assert room(limits, held=20_000, mine=0, ours=0).tasks == 0  # never below nothing
    # The largest array that can ever fit: arrays are split at it as at MaxArraySize.
    assert capacity(limits) == 9_999
    assert capacity(per_user, max_jobs=4) == 4


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
ASSOCIATIONS = "probe|root|5|normal|\nroot|root||normal|\n"
QOS = "normal|\nhigh|4\n"


def test_submit_limits_are_read_from_the_associations_and_qos_the_jobs_use():
    rows, qos = parse_rows(ASSOCIATIONS, ASSOC_FIELDS), parse_rows(QOS, QOS_FIELDS)
    limit = submit_limit(rows, qos, default_account="root", accounts=[None], qos=[None])
    assert limit is None  # root/root and QOS normal set nothing
    limit = submit_limit(rows, qos, default_account="root", accounts=["probe"], qos=[None])
    assert limit == SubmitLimit(5, "MaxSubmitJobs of association probe/root")
    limit = submit_limit(rows, qos, default_account="probe", accounts=[None], qos=["high"])
    assert limit == SubmitLimit(4, "MaxSubmitJobsPerUser of QOS high")
    assert submit_limit([], [], default_account="", accounts=[None], qos=[None]) is None


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


@pytest.fixture
def account_with_submit_limit():
    """A temporary account with MaxSubmitJobs=3 and this user in it; removed afterwards."""
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    account = f"scalerwaves{os.getpid()}"

    def sacctmgr(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["sacctmgr", "-i", *args], capture_output=True, text=True)

    added = sacctmgr("add", "account", account, "parent=root", "maxsubmit=3")
    if added.returncode != 0:
        pytest.skip(f"cannot add an account to accounting: {added.stderr.strip()}")
    try:
        sacctmgr("add", "user", user, f"account={account}")
        deadline = time.time() + 30
        while account not in _associations(user) and time.time() < deadline:
            time.sleep(0.5)
        yield account
    finally:
        sacctmgr("delete", "user", user, f"account={account}")
        sacctmgr("delete", "account", account)


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
    assert limits.submit == SubmitLimit(
        3, f"MaxSubmitJobs of association {account_with_submit_limit}/{_user()}"
    )
    try:
        first = submit_plan(plan, layout, slurm, settings)
        # Other jobs of this user count too: the room may be less than 3, never more.
        assert first.room is not None and first.room.bound.startswith("MaxSubmitJobs")
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
    assert Slurm(tmp_path).limits().submit is None
    failing = tmp_path / "bin"
    failing.mkdir()
    (failing / "sacctmgr").write_text("#!/bin/sh\necho 'Connection refused' >&2\nexit 1\n")
    (failing / "sacctmgr").chmod(0o755)
    monkeypatch.setenv("PATH", f"{failing}{os.pathsep}{os.environ['PATH']}")
    limits = Slurm(tmp_path).limits()
    assert limits.submit is None and limits.max_job_count > 0
    monkeypatch.setattr(cluster.shutil, "which", lambda name: None)
    assert cluster._submit_limit("localcluster", [None], [None]) is None
