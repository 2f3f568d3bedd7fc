"""Slurm: submitting a 10,000-step plan (sbatch calls, seconds, MaxJobCount), running 100
no-op steps through scaler against bare submitit, on the real Slurm cluster of this machine;
and a 100,000-step plan submitted in waves under MaxJobCount 10,000.

    .venv/bin/python benchmarks/bench_slurm.py [throughput] [submission] [waves]

Skips (exit 0, saying why) where the Slurm commands are missing or the controller does not
answer. Every job it submits has finished or is cancelled when it returns.

Slurm counts every task of a job array against MaxJobCount, held or not, and keeps a job that
ended or was cancelled for MinJobAge: so before each large submission the script waits until the
controller has room (with MaxJobCount=10000 and MinJobAge=300 s, about 5 minutes each time).
Where the 10,000-step plan does not fit under MaxJobCount, submit_plan submits its first wave;
the script then times repeats of the largest chain that fits.

Waves (about 20 minutes on 2 cores, as root): a second slurmctld and slurmd of this machine's
Slurm, on free ports with their own state folder, MaxJobCount 10,000 and MinJobAge 2 s, so the
shared test cluster is left as it is. Every job is held; the script plays the jobs' part between
waves (`Drainer`: runs their steps in-process, then cancels them), and scaler's own follower
finds them done and submits the next wave as slurmctld drops the cancelled jobs.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
# Job processes import noop_runner (and scaler) too: sbatch passes the environment on.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")]
)

import noop_runner  # noqa: E402
from common import machine, median_seconds  # noqa: E402
from scaler.layout import Layout  # noqa: E402
from scaler.plan import Plan, Step  # noqa: E402
from scaler.run.job import StepJob, make_job, run_step  # noqa: E402
from scaler.slurm.cluster import Slurm, missing_commands  # noqa: E402
from scaler.slurm.follow import cancel_experiment, follow, submit_plan  # noqa: E402
from scaler.slurm.records import read_records, submission_lock, submitted_tasks  # noqa: E402
from scaler.spec.schema import ExecutorSettings, Resources  # noqa: E402
from scaler.stages import STAGES, Stage  # noqa: E402
from scaler.status import step_states  # noqa: E402

CHAIN = ("a", "b", "c", "d")
"""The benchmark's stages, each step of one needing one step of the one before."""
FULL_PER_STAGE = 2_500  # 4 x 2,500 = 10,000 steps
ROOM_FOR_OTHERS = 300
"""Job records left to other users when choosing the size of the timed chain."""
MARGIN = 100
"""Records that may appear while a submission is under way (other users' jobs)."""
REPEATS = 3
THROUGHPUT_STEPS = 100
POLL_S = 0.5

HELD = Resources(cpus=1, mem_gb=1, time_min=5, sbatch={"hold": True})
SMALL = Resources(cpus=1, mem_gb=1, time_min=10)
LARGE = Resources(cpus=2, mem_gb=2, time_min=20)
CHAIN_RESOURCES = {"a": HELD, "b": SMALL, "c": SMALL, "d": LARGE}
"""b and c ask for the same; the held first stage keeps the whole chain from starting."""
NOOP_RESOURCES = Resources(cpus=1, mem_gb=1, time_min=5)


# ---------------------------------------------------------------------------- the cluster


def slurm_config() -> dict[str, str]:
    output = subprocess.run(
        ["scontrol", "show", "config"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    config = {}
    for line in output.splitlines():
        key, equals, value = line.partition("=")
        if equals:
            config[key.strip()] = value.strip()
    return config


def _squeue_tasks(*options: str) -> list[str]:
    command = ["squeue", "--noheader", "--array", "--format=%i", *options]
    return subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()


def records_held() -> int:
    """Jobs slurmctld holds in memory, counting every array task, as MaxJobCount does:
    pending, running, and ended less than MinJobAge ago; every user's."""
    return len(_squeue_tasks("--states=all"))


def pending_or_running() -> set[str]:
    """This user's tasks that squeue lists by default: pending, running, completing."""
    return set(_squeue_tasks("--me"))


def wait_for_room(tasks: int, max_job_count: int, min_job_age_s: int) -> None:
    """Wait until `tasks` more fit under MaxJobCount with MARGIN to spare; for more than can
    ever fit, until the controller holds at most ROOM_FOR_OTHERS records."""
    allowed = max(max_job_count - 1 - tasks - MARGIN, ROOM_FOR_OTHERS)
    deadline = time.time() + 2 * min_job_age_s + 300
    held, said = records_held(), False
    while held > allowed:
        if not said:
            print(
                f"  (waiting for slurmctld to drop ended jobs: {held:,} records held, "
                f"at most {allowed:,} leave room for {tasks:,} tasks; MinJobAge "
                f"{min_job_age_s} s)",
            )
            said = True
        if time.time() > deadline:
            sys.exit(f"no room for {tasks:,} tasks after waiting: {held:,} job records held")
        time.sleep(5)
        held = records_held()


class SbatchCounter:
    """Counts real sbatch invocations: a shim first on PATH logs each call and execs sbatch.
    Restores PATH on leaving its `with` block."""

    def __init__(self, folder: Path) -> None:
        real = shutil.which("sbatch")
        assert real is not None  # main() skips where Slurm is missing
        self.real = real
        self.log = folder / "sbatch-calls.txt"
        shim_dir = folder / "bin"
        shim_dir.mkdir()
        shim = shim_dir / "sbatch"
        shim.write_text(
            "#!/bin/sh\n"
            f"printf '%s\\n' \"$*\" >> {shlex.quote(str(self.log))}\n"
            f'exec {shlex.quote(real)} "$@"\n'
        )
        shim.chmod(0o755)
        self.path = os.environ["PATH"]
        os.environ["PATH"] = f"{shim_dir}{os.pathsep}{self.path}"

    def __enter__(self) -> SbatchCounter:
        return self

    def __exit__(self, *exc: object) -> None:
        os.environ["PATH"] = self.path

    def take(self) -> tuple[int, int]:
        """(submissions, `--test-only` checks) since the last take."""
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        self.log.write_text("")
        checks = sum("--test-only" in line.split() for line in lines)
        return len(lines) - checks, checks


class TimedSlurm(Slurm):
    """The real seam, timing each array it submits (submitit's pickles, then one sbatch)."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.calls: list[tuple[int, float]] = []
        """(tasks, seconds) per submit; when submission failed, the last is the refused one."""

    def submit(self, parameters: dict[str, Any], jobs: list[StepJob]) -> list[str]:
        start = time.perf_counter()
        try:
            return super().submit(parameters, jobs)
        finally:
            self.calls.append((len(jobs), time.perf_counter() - start))


def baseline_sbatch(real_sbatch: str) -> float:
    """One `sbatch --hold --wrap true`, timed alone (median of REPEATS), then cancelled."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        done = subprocess.run(
            [real_sbatch, "--parsable", "--hold", "-J", "bench-slurm-baseline", "-o", "/dev/null"]
            + ["--wrap", "true"],
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(time.perf_counter() - start)
        subprocess.run(["scancel", done.stdout.strip().split(";")[0]], check=True)
    return statistics.median(times)


# ---------------------------------------------------------------------------- submission


def register_stages() -> None:
    for name in (*CHAIN, "noop"):
        STAGES[name] = Stage(name, "noop_runner", 1)


def chain_plan(per_stage: int) -> Plan:
    """a -> b -> c -> d, `per_stage` steps each; step i of a stage needs step i of the last."""
    steps: list[Step] = []
    previous: list[Step] = []
    for stage in CHAIN:
        current = [
            Step(
                stage,
                noop_runner.Config(index=i),
                (("input", previous[i]),) if previous else (),
            )
            for i in range(per_stage)
        ]
        steps += current
        previous = current
    return Plan(
        f"bench-slurm-{per_stage * len(CHAIN)}",
        tuple(steps),
        dict(CHAIN_RESOURCES),
    )


def expected_arrays(plan: Plan, max_array_size: int) -> tuple[int, int]:
    """((stage, resources) groups, sbatch calls once each group is split at max_array_size)."""
    groups = Counter((s.stage, plan.resources[s.stage].model_dump_json()) for s in plan.steps)
    return len(groups), sum(math.ceil(n / max_array_size) for n in groups.values())


@dataclass
class SubmissionRun:
    seconds: float
    sbatch: int
    checks: int
    queued: int
    """Tasks of this submission the scheduler held right after it."""
    held_after: int
    """Job records slurmctld held right after it, every user's."""
    calls: list[tuple[int, float]] = field(default_factory=list)
    error: str = ""


def submit_once(plan: Plan, counter: SbatchCounter) -> SubmissionRun:
    """Submit `plan` into a fresh folder, look at the queue, cancel everything."""
    with tempfile.TemporaryDirectory(prefix="bench-slurm-") as tmp:
        layout = Layout(Path(tmp) / plan.experiment)
        slurm = TimedSlurm(layout.slurm_logs)
        counter.take()
        error = ""
        start = time.perf_counter()
        try:
            submit_plan(plan, layout, slurm, ExecutorSettings(name="slurm"))
        except Exception as caught:  # a refused sbatch: reported as measured
            lines = str(caught).strip().splitlines() or [""]
            error = f"{type(caught).__module__}.{type(caught).__name__}: {lines[-1]}"
        seconds = time.perf_counter() - start
        try:
            sbatch, checks = counter.take()
            queued = len(set(submitted_tasks(layout).values()) & pending_or_running())
            held_after = records_held()
        finally:
            cancel_experiment(layout, slurm)
            _wait_until_gone(layout)
    return SubmissionRun(seconds, sbatch, checks, queued, held_after, slurm.calls, error)


def _wait_until_gone(layout: Layout) -> None:
    ours = set(submitted_tasks(layout).values())
    deadline = time.time() + 120
    while ours & pending_or_running():
        if time.time() > deadline:
            sys.exit(f"jobs of {layout.root} still queued after scancel")
        time.sleep(0.5)


def bench_submission(config: dict[str, str], counter: SbatchCounter, baseline_s: float) -> None:
    max_job_count = int(config["MaxJobCount"])
    min_job_age_s = int(config["MinJobAge"].split()[0])
    max_array_size = Slurm(Path(".")).limits().max_array_size
    full = chain_plan(FULL_PER_STAGE)
    groups, expected = expected_arrays(full, max_array_size)
    print(
        f"plan: {len(full.steps):,} steps, {len(CHAIN)} stages of {FULL_PER_STAGE:,}, "
        f"{groups} (stage, resources) groups; MaxArraySize {max_array_size} -> expected "
        f"{expected} sbatch calls (+ {len(CHAIN)} --test-only checks)"
    )

    # The requested 10,000 steps, once. slurmctld refuses a submission when the tasks it holds
    # plus the new ones reach MaxJobCount, so at most MaxJobCount - 1 fit, on an empty cluster.
    fits = len(full.steps) < max_job_count
    if not fits:
        print(
            f"  {len(full.steps):,} tasks cannot all be held under MaxJobCount "
            f"{max_job_count:,} (at most {max_job_count - 1:,}, fewer while other jobs are "
            f"held): submit_plan submits the first wave that fits and leaves the rest waiting"
        )
    wait_for_room(len(full.steps), max_job_count, min_job_age_s)
    run = submit_once(full, counter)
    accepted = sum(tasks for tasks, _ in run.calls[: len(run.calls) - bool(run.error)])
    print(
        f"submit {len(full.steps):,} steps: {run.sbatch} sbatch calls + {run.checks} "
        f"--test-only (expected {expected} + {len(CHAIN)}), {run.seconds:.1f} s; "
        f"{accepted:,} tasks accepted, {run.queued:,} queued right after; job records held "
        f"then: {run.held_after:,} of MaxJobCount {max_job_count:,}"
    )
    if run.error:
        refused_tasks, refused_s = run.calls[-1] if run.calls else (0, 0.0)
        print(
            f"  REFUSED: array {len(run.calls)} ({refused_tasks:,} tasks), after "
            f"{run.seconds - refused_s:.1f} s of accepted submissions, failed after "
            f"{refused_s:.1f} s of sbatch retrying: {run.error}"
        )
    elif not fits:
        print(f"  first wave only: {accepted:,} of {len(full.steps):,} tasks; the rest waits")

    # Timed repeats of the largest chain that fits, in fresh folders, cancelled after each.
    per_stage = min(
        FULL_PER_STAGE, (max_job_count - 1 - ROOM_FOR_OTHERS) // len(CHAIN) // 100 * 100
    )
    plan = full if per_stage == FULL_PER_STAGE else chain_plan(per_stage)
    groups, expected = expected_arrays(plan, max_array_size)
    runs = []
    for _ in range(REPEATS):
        wait_for_room(len(plan.steps), max_job_count, min_job_age_s)
        runs.append(submit_once(plan, counter))
    refused = [run.error for run in runs if run.error]
    seconds = statistics.median(run.seconds for run in runs)
    in_submit = statistics.median(sum(s for _, s in run.calls) for run in runs)
    sbatch = Counter(run.sbatch for run in runs).most_common(1)[0][0]
    checks = Counter(run.checks for run in runs).most_common(1)[0][0]
    queued = min(run.queued for run in runs)
    print(
        f"submit {len(plan.steps):,} steps ({len(CHAIN)} x {per_stage:,}), median of "
        f"{REPEATS}: {seconds:.2f} s (runs: {', '.join(f'{r.seconds:.2f}' for r in runs)}); "
        f"{sbatch} sbatch calls + {checks} --test-only (expected {expected} + {len(CHAIN)}); "
        f"of which {in_submit:.2f} s inside the {sbatch} Slurm.submit calls (pickles + sbatch)"
    )
    print(
        f"  one `sbatch --hold --wrap true` alone: {baseline_s * 1000:.0f} ms; "
        f"{sbatch + checks} calls of it: {(sbatch + checks) * baseline_s:.2f} s "
        f"= {(sbatch + checks) * baseline_s / seconds:.0%} of the submission"
    )
    print(
        f"  queued right after: {queued:,} of {len(plan.steps):,} tasks; job records held: "
        f"{max(run.held_after for run in runs):,} of MaxJobCount {max_job_count:,}; "
        + (f"REFUSED: {refused[0]}" if refused else "nothing refused")
    )


# ---------------------------------------------------------------------------- throughput


def noop_plan(count: int) -> Plan:
    steps = tuple(Step("noop", noop_runner.Config(index=i)) for i in range(count))
    return Plan(
        f"bench-slurm-noop-{count}",
        steps,
        {"noop": NOOP_RESOURCES},
    )


def run_scaler(plan: Plan) -> float:
    """Seconds from submission until every step is done: submit_plan + follow."""
    settings = ExecutorSettings(name="slurm", poll_s=POLL_S)
    with tempfile.TemporaryDirectory(prefix="bench-slurm-") as tmp:
        layout = Layout(Path(tmp) / plan.experiment)
        slurm = Slurm(layout.slurm_logs)
        start = time.perf_counter()
        try:
            submitted = submit_plan(plan, layout, slurm, settings)
            report = follow(plan, layout, slurm, settings, first=submitted, say=lambda _: None)
        except BaseException:
            cancel_experiment(layout, slurm)
            raise
        seconds = time.perf_counter() - start
        if report.failed or len(report.ran) != len(plan.steps):
            first = report.failed[0] if report.failed else "steps skipped"
            sys.exit(f"scaler: {len(report.ran)} of {len(plan.steps)} steps ran: {first}")
    return seconds


def run_bare(count: int) -> float:
    """The same with bare submitit: one map_array, polled every POLL_S until all are done."""
    import submitit

    with tempfile.TemporaryDirectory(prefix="bench-slurm-") as tmp:
        executor = submitit.AutoExecutor(folder=Path(tmp) / "bare", cluster="slurm")
        executor.update_parameters(
            timeout_min=NOOP_RESOURCES.time_min,
            cpus_per_task=NOOP_RESOURCES.cpus,
            mem_gb=NOOP_RESOURCES.mem_gb,
            slurm_array_parallelism=ExecutorSettings().array_parallelism,
        )
        start = time.perf_counter()
        jobs = executor.map_array(noop_runner.bare, range(count))
        try:
            while not all(job.done() for job in jobs):
                time.sleep(POLL_S)
            results = [job.result() for job in jobs]
        except BaseException:
            subprocess.run(["scancel", jobs[0].job_id.split("_")[0]], check=False)
            raise
        seconds = time.perf_counter() - start
    if results != [{"index": i} for i in range(count)]:
        sys.exit("bare submitit: wrong results")
    return seconds


def bench_throughput(config: dict[str, str]) -> None:
    max_job_count = int(config["MaxJobCount"])
    min_job_age_s = int(config["MinJobAge"].split()[0])
    plan = noop_plan(THROUGHPUT_STEPS)
    ours, bare = [], []
    for _ in range(REPEATS):  # alternated, so both see the same cluster
        wait_for_room(2 * THROUGHPUT_STEPS, max_job_count, min_job_age_s)
        ours.append(run_scaler(plan))
        bare.append(run_bare(THROUGHPUT_STEPS))
    ours_rate = THROUGHPUT_STEPS / statistics.median(ours)
    bare_rate = THROUGHPUT_STEPS / statistics.median(bare)
    node = subprocess.run(
        ["sinfo", "--noheader", "--format=%c CPUs x %D node(s)"], capture_output=True, text=True
    ).stdout.split("\n")[0]
    print(
        f"{THROUGHPUT_STEPS} no-op steps, 1 CPU each ({node}), median of {REPEATS}: "
        f"scaler submit_plan + follow (poll {POLL_S} s): {ours_rate:.2f} steps/s "
        f"({', '.join(f'{s:.1f}' for s in ours)} s); bare submitit map_array: "
        f"{bare_rate:.2f} steps/s ({', '.join(f'{s:.1f}' for s in bare)} s); "
        f"ratio {ours_rate / bare_rate:.2f}"
    )


# ---------------------------------------------------------------------------- waves

WAVE_PER_STAGE = 25_000  # 4 x 25,000 = 100,000 steps
WAVE_MAX_JOB_COUNT = 10_000
WAVE_MIN_JOB_AGE_S = 2
"""The private controller's limits: Slurm's default MaxJobCount; ended jobs dropped soon."""
WAVE_POLL_S = 1.0
WAVE_RESOURCES = {
    stage: r.model_copy(update={"sbatch": {"hold": True}}) for stage, r in CHAIN_RESOURCES.items()
}
"""Every stage held: no job of the plan ever starts; the benchmark plays their part."""


class PrivateCluster:
    """A second slurmctld and slurmd of this machine's Slurm, on free ports and with a state
    folder of their own, with MaxJobCount 10,000 and MinJobAge 2 s and no accounting: the
    shared test cluster (MaxJobCount 100,000) is left as it is. Inside the `with` block,
    SLURM_CONF points every Slurm command (and submitit's) at it; leaving stops both daemons
    (the ones this started, by their pid) and removes the folder."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="bench-slurm-waves-"))
        self.conf = self.folder / "slurm.conf"
        self.previous = os.environ.get("SLURM_CONF")
        self.pids: list[int] = []

    def __enter__(self) -> PrivateCluster:
        controller, node = _free_port(), _free_port()
        for sub in ("state", "spool", "log"):
            (self.folder / sub).mkdir()
        f = self.folder
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=wavebench",
                    "SlurmctldHost=localhost(127.0.0.1)",
                    f"SlurmctldPort={controller}",
                    f"SlurmdPort={node}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"StateSaveLocation={f}/state",
                    f"SlurmdSpoolDir={f}/spool",
                    f"SlurmctldPidFile={f}/slurmctld.pid",
                    f"SlurmdPidFile={f}/slurmd.pid",
                    f"SlurmctldLogFile={f}/log/slurmctld.log",
                    f"SlurmdLogFile={f}/log/slurmd.log",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "MpiDefault=none",
                    "ReturnToService=2",
                    "MailProg=/bin/true",
                    "SchedulerType=sched/backfill",
                    "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core",
                    f"MinJobAge={WAVE_MIN_JOB_AGE_S}",
                    f"MaxJobCount={WAVE_MAX_JOB_COUNT}",
                    "AccountingStorageType=accounting_storage/none",
                    "JobCompType=jobcomp/none",
                    f"NodeName=wavenode NodeAddr=127.0.0.1 CPUs={os.cpu_count()} "
                    "RealMemory=4000 State=UNKNOWN",
                    "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )
        os.environ["SLURM_CONF"] = str(self.conf)
        try:
            self._start("slurmctld", ["-f", str(self.conf)])
            self._start("slurmd", ["-f", str(self.conf), "-N", "wavenode"])
            deadline = time.time() + 60
            while "idle" not in _sinfo_states():
                if time.time() > deadline:
                    raise RuntimeError(f"the private node never came up ({f}/log)")
                time.sleep(0.5)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self, daemon: str, arguments: list[str]) -> None:
        binary = shutil.which(daemon) or f"/usr/sbin/{daemon}"
        subprocess.run([binary, *arguments], check=True, capture_output=True, timeout=60)
        pid_file = self.folder / f"{daemon}.pid"
        deadline = time.time() + 30
        while not pid_file.is_file() or not pid_file.read_text().strip():
            if time.time() > deadline:
                raise RuntimeError(f"{daemon} wrote no pid file ({self.folder}/log)")
            time.sleep(0.2)
        self.pids.append(int(pid_file.read_text()))

    def log(self) -> str:
        path = self.folder / "log" / "slurmctld.log"
        return path.read_text(errors="replace") if path.is_file() else ""

    def __exit__(self, *exc: object) -> None:
        for pid in reversed(self.pids):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.time() + 30
            while time.time() < deadline and _alive(pid):
                time.sleep(0.2)
        self.pids.clear()
        if self.previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = self.previous
        shutil.rmtree(self.folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _sinfo_states() -> str:
    done = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return done.stdout


class Drainer(threading.Thread):
    """Plays the part of the plan's held jobs. Whenever new sbatch records appear, and holding
    the experiment's submission lock (so never while a wave goes in), it runs each of their
    steps in this process (noop_runner through scaler's own `run_step`: a real step folder,
    published by rename, with its manifest) and then cancels their jobs in one scancel. The
    follower then finds those steps done and, once slurmctld drops the cancelled jobs, room for
    the next wave."""

    def __init__(self, plan: Plan, layout: Layout, slurm: Slurm) -> None:
        super().__init__(daemon=True)
        self.plan, self.layout, self.slurm = plan, layout, slurm
        self.steps = {step.name: step for step in plan.steps}
        self.stop = threading.Event()
        self.drains: list[tuple[float, float, int, int]] = []
        """(start, end, tasks drained, jobs slurmctld held just before the scancel)."""
        self.error: BaseException | None = None

    def run(self) -> None:
        seen = 0
        try:
            while not self.stop.is_set():
                if len(read_records(self.layout)) > seen:
                    with submission_lock(self.layout):
                        seen = self._drain(seen)
                time.sleep(0.2)
        except BaseException as error:  # reported by the benchmark's thread
            self.error = error

    def _drain(self, seen: int) -> int:
        start = time.perf_counter()
        records = read_records(self.layout)
        new = records[seen:]
        for record in new:
            for name in record["steps"]:
                run_step(make_job(self.steps[name], self.plan, self.layout, {}))
        held = records_held()
        self.slurm.cancel([record["tasks"][0].split("_")[0] for record in new])
        tasks = sum(len(record["tasks"]) for record in new)
        self.drains.append((start, time.perf_counter(), tasks, held))
        return len(records)


@dataclass
class Wave:
    start: float
    calls: list[tuple[int, float]] = field(default_factory=list)
    """(tasks, seconds) per sbatch call (Slurm.submit) of this wave."""

    @property
    def tasks(self) -> int:
        return sum(tasks for tasks, _ in self.calls)


class WaveSlurm(TimedSlurm):
    """TimedSlurm that also remembers when each call began, to tell the waves apart."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.started: list[float] = []

    def submit(self, parameters: dict[str, Any], jobs: list[StepJob]) -> list[str]:
        self.started.append(time.perf_counter())
        return super().submit(parameters, jobs)


def bench_waves(counter: SbatchCounter) -> None:
    plan = chain_plan(WAVE_PER_STAGE)
    plan = Plan(plan.experiment, plan.steps, dict(WAVE_RESOURCES))
    with PrivateCluster() as cluster, tempfile.TemporaryDirectory(prefix="bench-slurm-") as tmp:
        config = slurm_config()
        layout = Layout(Path(tmp) / plan.experiment)
        slurm = WaveSlurm(layout.slurm_logs)
        limits = slurm.limits()
        groups, expected = expected_arrays(plan, limits.max_array_size)
        print(
            f"waves: {len(plan.steps):,} steps ({len(CHAIN)} x {WAVE_PER_STAGE:,}), {groups} "
            f"(stage, resources) groups, {expected} chunks of at most {limits.max_array_size}; "
            f"a private controller of Slurm {config.get('SLURM_VERSION')}: MaxJobCount "
            f"{config['MaxJobCount']}, MinJobAge {config['MinJobAge']}, submit limits "
            f"from accounting: {', '.join(limit.source for limit in limits.submit) or 'none'}"
        )
        settings = ExecutorSettings(name="slurm", poll_s=WAVE_POLL_S)
        drainer = Drainer(plan, layout, slurm)
        counter.take()
        start = time.perf_counter()
        first = submit_plan(plan, layout, slurm, settings)
        first_s = time.perf_counter() - start
        status_first = median_seconds(lambda: step_states(plan, layout), repeats=3)
        drainer.start()
        lines: list[tuple[float, str]] = []
        try:
            report = follow(
                plan,
                layout,
                slurm,
                settings,
                first=first,
                say=lambda line: lines.append((time.perf_counter(), line)),
            )
        finally:
            drainer.stop.set()
            drainer.join(timeout=600)
            cancel_experiment(layout, slurm)
        total_s = time.perf_counter() - start
        if drainer.error is not None:
            raise drainer.error
        sbatch, checks = counter.take()
        records = read_records(layout)
        refused = [line for line in cluster.log().splitlines() if "MaxJobCount" in line]
        status_done = median_seconds(lambda: step_states(plan, layout), repeats=3)

    # Waves: the sbatch calls between two drains.
    drain_ends = [end for _, end, _, _ in drainer.drains]
    waves: list[Wave] = []
    for began, call in zip(slurm.started, slurm.calls, strict=True):
        if not waves or any(waves[-1].start < end < began for end in drain_ends):
            waves.append(Wave(began))
        waves[-1].calls.append(call)
    in_submit = [sum(seconds for _, seconds in wave.calls) for wave in waves]
    gaps = [
        next(w.start for w in waves if w.start > end) - end
        for end in drain_ends
        if any(w.start > end for w in waves)
    ]
    drained_s = sum(end - began for began, end, _, _ in drainer.drains)
    per_task_ms = statistics.median(
        seconds / wave.tasks * 1000 for seconds, wave in zip(in_submit, waves, strict=True)
    )
    per_step = [n for r in records for n in r["steps"]]
    print(
        f"  {len(waves)} waves of {', '.join(f'{w.tasks:,}' for w in waves)} tasks; "
        f"{sbatch} sbatch calls + {checks} --test-only (one chunk each: {expected} + "
        f"{len(CHAIN)} expected); sbatch calls per wave: "
        f"{', '.join(str(len(w.calls)) for w in waves)}"
    )
    print(
        f"  every step in one sbatch call, once: {len(per_step) == len(set(per_step))} "
        f"({len(per_step):,} of {len(plan.steps):,}); steps done: {len(report.ran):,} seen "
        f"by the follower + {report.already_done:,} done before it began, "
        f"failed {len(report.failed)}, skipped {len(report.skipped)}; refused by slurmctld: "
        + (f"{len(refused)} ({refused[0]})" if refused else "none (no MaxJobCount line in its log)")
    )
    print(
        f"  most jobs slurmctld held (before a drain's scancel): "
        f"{max(held for *_, held in drainer.drains):,} of MaxJobCount {WAVE_MAX_JOB_COUNT:,}"
    )
    print(
        f"  first wave: submit_plan {first_s:.2f} s ({waves[0].tasks:,} tasks); each wave "
        f"inside its Slurm.submit calls, median {statistics.median(in_submit):.2f} s "
        f"({', '.join(f'{s:.1f}' for s in in_submit)}), {per_task_ms:.2f} ms a task"
    )
    if gaps:
        print(
            f"  from a drained wave to the next wave's first sbatch (slurmctld dropping the "
            f"cancelled jobs, then the follower's next look): median "
            f"{statistics.median(gaps):.1f} s ({min(gaps):.1f}-{max(gaps):.1f})"
        )
    print(
        f"  whole run {total_s:.0f} s: {sum(in_submit):.0f} s in sbatch calls (pickles + "
        f"sbatch), {drained_s:.0f} s the benchmark running the steps in-process and "
        f"cancelling their jobs, the rest the follower and slurmctld"
    )
    print(
        f"  step_states of the {len(plan.steps):,} steps (what `scaler status` reads, without "
        f"expanding a spec), median of 3: after the first wave {status_first:.2f} s, all done "
        f"{status_done:.2f} s"
    )


PARTS = ("throughput", "submission", "waves")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("parts", nargs="*", help=f"any of {', '.join(PARTS)}; default: all")
    parts = parser.parse_args().parts or PARTS
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; valid: {', '.join(PARTS)}")
    sys.stdout.reconfigure(line_buffering=True)  # a long run: show each figure as it comes
    missing = missing_commands()
    if missing:
        print(f"skipped: no Slurm here ({', '.join(missing)} not on PATH)")
        return
    try:
        config = slurm_config()
        subprocess.run(["sinfo"], capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as error:
        print(f"skipped: the Slurm controller does not answer ({error})")
        return
    print(f"machine: {machine()}")
    print(
        f"slurm {config.get('SLURM_VERSION')}: MaxArraySize {config.get('MaxArraySize')}, "
        f"MaxJobCount {config.get('MaxJobCount')}, MinJobAge {config.get('MinJobAge')}; "
        f"job records held now: {records_held():,}"
    )
    register_stages()
    if "throughput" in parts:
        bench_throughput(config)
    with (
        tempfile.TemporaryDirectory(prefix="bench-slurm-shim-") as tmp,
        SbatchCounter(Path(tmp)) as counter,
    ):
        if "submission" in parts:
            baseline_s = baseline_sbatch(counter.real)
            bench_submission(config, counter, baseline_s)
        if "waves" in parts:
            if os.geteuid() != 0:
                print("waves: skipped (starting a private slurmctld and slurmd needs root)")
            else:
                bench_waves(counter)


if __name__ == "__main__":
    main()
