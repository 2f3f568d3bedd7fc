"""Orchestrator speed: planning a 100,000-cell grid, re-running a finished 10,000-step plan,
`scaler status` of a 100,000-step experiment, and the per-step overhead of the inline and local
executors.

    .venv/bin/python benchmarks/bench_orchestrator.py [plan | status]

Each figure is a median of repeats, with a baseline measured in the same process: building the
same pydantic configs without hashing (planning), one directory listing (re-run), `scaler
--help` in a fresh process (status), and calling the step function directly or through a bare
submitit executor (per-step overhead).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
# Job processes of the local executor import noop_runner too.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")]
)

from common import machine, median_seconds  # noqa: E402
from runners.stages import evaluate, train  # noqa: E402
from scaler.bulk import collector_paused  # noqa: E402
from scaler.cost_view import price  # noqa: E402
from scaler.layout import Layout  # noqa: E402
from scaler.manifest import damaged_steps  # noqa: E402
from scaler.plan import expand  # noqa: E402
from scaler.run.job import StepJob, run_step  # noqa: E402
from scaler.run.local import InlineExecutor, LocalExecutor, execute  # noqa: E402
from scaler.spec.schema import Resources, Spec  # noqa: E402
from scaler.step_index import read_index, save_spec  # noqa: E402

GRID = {
    "experiment": "bench",
    "world": {"name": "demo"},
    "sizes": list(range(100, 10_100, 100)),  # 100 sizes
    "seeds": list(range(100)),  # x 100 seeds = 10,000 cells
}


STATUS_GRID = GRID | {"experiment": "bench-status", "seeds": list(range(500))}
"""100 sizes x 500 seeds: 50,000 cells, 100,001 steps."""
STATUS_DONE = 10_000
"""Steps of it finished (no-op step folders under the plan's step names, manifests and all)."""


PLAN_GRID = GRID | {"experiment": "bench-plan", "seeds": list(range(1000))}
"""100 sizes x 1,000 seeds: 100,000 cells, 200,001 steps."""


def bench_plan() -> None:
    """Expanding a 100,000-cell grid, in this process (a fresh plan each time, as a person's
    `scaler plan` builds one), beside building the same configs without hashing or steps."""
    spec = Spec.model_validate(PLAN_GRID)
    cells = len(spec.sizes) * len(spec.seeds)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        plan = expand(spec)
        times.append(time.perf_counter() - start)
        steps = len(plan.steps)
        del plan  # freed outside the timing, as a process that ends frees it

    def configs_only():
        settings = spec.stages.train.model_dump()
        for size in spec.sizes:
            for seed in spec.seeds:
                train.Config(**settings, model=spec.model, size=size, seed=seed)
                evaluate.Config(split="test")

    baseline = median_seconds(configs_only, repeats=3)
    seconds = statistics.median(times)
    print(
        f"plan: {cells:,} cells -> {steps:,} steps in {seconds:.2f} s "
        f"({', '.join(f'{t:.2f}' for t in times)}; building the configs alone: {baseline:.2f} s, "
        f"ratio {seconds / baseline:.2f}x)"
    )


def bench_finished_rerun(plan) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        layout = Layout(Path(tmp) / "bench")
        for step in plan.steps[:10_000]:
            layout.step_dir(step.stage, step.name).mkdir(parents=True)
        finished = type(plan)(plan.experiment, plan.steps[:10_000], plan.resources)
        seconds = median_seconds(
            lambda: execute(finished, layout, InlineExecutor(), say=lambda _: None)
        )
        baseline = median_seconds(layout.done_names)
        print(
            f"re-run of a finished {len(finished.steps)}-step plan: {seconds * 1000:.1f} ms "
            f"(listing the step folders alone: {baseline * 1000:.1f} ms)"
        )


def bench_status(repeats: int = 3) -> None:
    """`scaler status` of a 100,000-step experiment with STATUS_DONE steps finished and no Slurm
    jobs, in a fresh process as a person runs it: the first one after they finished (it checks
    each new folder's manifest), then again; beside it, in this process, what it did before the
    step index: expanding and pricing the saved spec."""
    spec = Spec.model_validate(STATUS_GRID)
    plan = expand(spec)
    with tempfile.TemporaryDirectory() as tmp:
        layout = Layout(Path(tmp) / spec.experiment)
        save_spec(layout, spec, plan)  # what a run writes: spec.json and the step index
        for step in plan.steps[:STATUS_DONE]:
            out_dir = layout.step_dir(step.stage, step.name)
            run_step(
                StepJob(step.name, step.stage, step.id, "noop_runner", 1, {}, {}, {}, str(out_dir))
            )
        env = dict(os.environ, SCALER_RESULTS=tmp)

        def fresh(*args: str) -> float:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "scaler", *args], env=env, check=True,
                           capture_output=True)  # fmt: skip
            return time.perf_counter() - start

        first = fresh("status", spec.experiment)
        runs = [fresh("status", spec.experiment) for _ in range(repeats)]
        help_s = statistics.median(fresh("--help") for _ in range(repeats))
        spec_json = spec.model_dump(mode="json")

        def read() -> None:
            with collector_paused():  # as `scaler status` reads it
                read_index(layout, spec_json)

        index_s = median_seconds(read, repeats=repeats)
        expand_s = median_seconds(lambda: price(spec, expand(spec)), repeats=repeats)
        checks_s = median_seconds(lambda: damaged_steps(layout), repeats=repeats)
    print(
        f"scaler status of {len(plan.steps):,} steps ({STATUS_DONE:,} done, no Slurm jobs), "
        f"fresh process: {statistics.median(runs):.2f} s ({', '.join(f'{r:.2f}' for r in runs)}); "
        f"the first after the steps finished: {first:.2f} s; `scaler --help`: {help_s:.2f} s. "
        f"In this process: reading the step index {index_s * 1000:.0f} ms, against expanding "
        f"and pricing the spec {expand_s:.2f} s; checking every finished folder's manifest "
        f"{checks_s:.2f} s"
    )


def _noop_jobs(root: Path, count: int) -> list[StepJob]:
    return [
        StepJob(
            name=f"noop-{i:06d}",
            stage="noop",
            step_id=f"{i:06d}",
            module="noop_runner",
            version=1,
            config={"index": i},
            inputs={},
            coords={},
            out_dir=str(root / "noop" / f"noop-{i:06d}"),
        )
        for i in range(count)
    ]


def bench_inline_overhead(count: int = 300) -> None:
    import noop_runner

    with tempfile.TemporaryDirectory() as tmp:
        jobs = _noop_jobs(Path(tmp), count)
        start = time.perf_counter()
        for job in jobs:
            run_step(job)
        per_step = (time.perf_counter() - start) / count
    bare = median_seconds(lambda: [noop_runner.bare(i) for i in range(count)]) / count
    print(
        f"inline executor: {per_step * 1000:.2f} ms per no-op step "
        f"(calling the function bare: {bare * 1e6:.2f} us)"
    )


def bench_local_overhead(count: int = 8) -> None:
    import submitit

    import noop_runner

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        executor = LocalExecutor(root / "logs", parallel=2)
        jobs = _noop_jobs(root, count)
        start = time.perf_counter()
        pending = [executor.submit(job, Resources()) for job in jobs[:2]]
        queue = jobs[2:]
        while pending:  # two at a time, as scaler.run.local runs them
            for handle in [h for h in pending if h.done()]:
                handle.result()
                pending.remove(handle)
                if queue:
                    pending.append(executor.submit(queue.pop(0), Resources()))
            time.sleep(0.01)
        ours = (time.perf_counter() - start) / count

        bare_executor = submitit.LocalExecutor(folder=root / "bare")
        start = time.perf_counter()
        for pair in range(0, count, 2):
            handles = [bare_executor.submit(noop_runner.bare, i) for i in range(pair, pair + 2)]
            for handle in handles:
                while not handle.done():
                    time.sleep(0.01)
                handle.result()
        bare = (time.perf_counter() - start) / count
    print(
        f"local executor: {ours * 1000:.0f} ms per no-op step, two at a time "
        f"(bare submitit LocalExecutor, same pattern: {bare * 1000:.0f} ms, "
        f"ratio {ours / bare:.2f})"
    )


ALONE = {"plan": bench_plan, "status": bench_status}


def main() -> None:
    print(f"machine: {machine()}")
    if sys.argv[1:2] and sys.argv[1] in ALONE:  # one alone: `bench_orchestrator.py status`
        ALONE[sys.argv[1]]()
        return
    bench_plan()
    bench_finished_rerun(expand(Spec.model_validate(GRID)))
    bench_status()
    bench_inline_overhead()
    bench_local_overhead()


if __name__ == "__main__":
    main()
