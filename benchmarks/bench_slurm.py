"""Slurm: submitting a 10,000-step plan (sbatch calls, seconds, MaxJobCount) and running 100
no-op steps through scaler against bare submitit, on the real Slurm cluster of this machine.

    .venv/bin/python benchmarks/bench_slurm.py

Skips (exit 0, saying why) where the Slurm commands are missing or the controller does not
answer. Every job it submits has finished or is cancelled when it returns.

Slurm counts every task of a job array against MaxJobCount, held or not, and keeps a job that
ended or was cancelled for MinJobAge: so before each large submission the script waits until the
controller has room (with MaxJobCount=10000 and MinJobAge=300 s, about 5 minutes each time).
A 10,000-step plan cannot be queued at once where MaxJobCount <= 10,000 (slurmctld refuses a
submission when held + new >= MaxJobCount): the script submits it once to show how that fails,
and times repeats of the largest chain that fits.
"""

from __future__ import annotations

import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
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
from common import machine  # noqa: E402
from scaler.layout import Layout  # noqa: E402
from scaler.plan import Plan, Step  # noqa: E402
from scaler.run.job import StepJob  # noqa: E402
from scaler.slurm.cluster import Slurm, missing_commands  # noqa: E402
from scaler.slurm.follow import cancel_experiment, follow, submit_plan  # noqa: E402
from scaler.slurm.records import submitted_tasks  # noqa: E402
from scaler.spec.schema import ExecutorSettings, Resources  # noqa: E402
from scaler.stages import STAGES, Stage  # noqa: E402

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
        {step.id: 1 for step in steps},
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
    max_array_size = Slurm(Path(".")).limits()[0]
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
            f"held): submitting anyway, to see how it fails"
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
        print("  accepted although the plan does not fit under MaxJobCount")

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
        {step.id: 1 for step in steps},
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
            submit_plan(plan, layout, slurm, settings)
            report = follow(plan, layout, slurm, settings, say=lambda _: None)
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


def main() -> None:
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
    bench_throughput(config)
    with (
        tempfile.TemporaryDirectory(prefix="bench-slurm-shim-") as tmp,
        SbatchCounter(Path(tmp)) as counter,
    ):
        baseline_s = baseline_sbatch(counter.real)
        bench_submission(config, counter, baseline_s)


if __name__ == "__main__":
    main()
