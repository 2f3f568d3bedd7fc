"""The warm executor (scaler.run.warm) against submitit's local executor, in the same run:
per-step overhead on no-op steps (at 1,000 and 10,000 steps for the warm one: is it linear?),
what a torch step pays for its imports, and a worker's memory over 50 torch steps.

    .venv/bin/python benchmarks/bench_warm.py

Overhead is measured two ways: the executor alone (submit, poll every millisecond, two at a
time, as bench_orchestrator measures the local executor), and a whole plan of no-op steps through
scaler.run.local.execute, the scheduler `scaler run` uses (which polls every 50 ms).
This file is also the torch step's runner (`Config`, `run`): the workers import it by name.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
# Job processes import noop_runner and this file by name.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")]
)

from common import machine  # noqa: E402
from scaler.layout import Layout  # noqa: E402
from scaler.plan import Plan, Step  # noqa: E402
from scaler.run.job import StepJob  # noqa: E402
from scaler.run.local import LocalExecutor, execute  # noqa: E402
from scaler.run.warm import WarmExecutor  # noqa: E402
from scaler.spec.schema import Resources  # noqa: E402
from scaler.stages import STAGES, Stage  # noqa: E402

PARALLEL = 2


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    index: int = 0


def run(config: Config, inputs: dict[str, Path], out_dir: Path) -> dict:
    """A real-ish step: torch imported (once per process), a small matmul and a backward."""
    started = time.perf_counter()
    import torch

    imported = time.perf_counter() - started
    torch.manual_seed(config.index)
    weights = torch.randn(256, 256, requires_grad=True)
    loss = (torch.randn(64, 256) @ weights).square().mean()
    loss.backward()
    return {"import_s": imported, "loss": float(loss)}


def _jobs(root: Path, module: str, count: int) -> list[StepJob]:
    return [
        StepJob(
            name=f"{module}-{i:06d}",
            stage="bench",
            step_id=f"{i:06d}",
            module=module,
            version=1,
            config={"index": i},
            inputs={},
            coords={},
            out_dir=str(root / "exp" / "steps" / "bench" / f"{module}-{i:06d}"),
        )
        for i in range(count)
    ]


def _drive(executor, jobs: list[StepJob], after_each=None) -> list[dict]:
    """Run `jobs` `executor.slots` at a time, polling every millisecond; their metrics."""
    queue, pending, results = list(jobs), [], []
    while queue or pending:
        while queue and len(pending) < executor.slots:
            pending.append(executor.submit(queue.pop(0), Resources()))
        for handle in [h for h in pending if h.done()]:
            results.append(handle.result())
            pending.remove(handle)
            if after_each is not None:
                after_each()
        time.sleep(0.001)
    return results


def executor_alone(make, count: int) -> tuple[float, float, float]:
    """Seconds per no-op step through the executor alone, after its workers started: over all
    `count` steps, over the first tenth and over the last tenth (all in one stage folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        executor = make(Path(tmp))
        _drive(executor, _jobs(Path(tmp) / "warmup", "noop_runner", PARALLEL))
        marks = [time.perf_counter()]
        _drive(
            executor,
            _jobs(Path(tmp), "noop_runner", count),
            lambda: marks.append(time.perf_counter()),
        )
        getattr(executor, "shutdown", lambda: None)()
    tenth = count // 10
    return (
        (marks[-1] - marks[0]) / count,
        (marks[tenth] - marks[0]) / tenth,
        (marks[-1] - marks[-1 - tenth]) / tenth,
    )


def leftover_glob(entries: int) -> float:
    """Seconds for run_step's look for a step's leftover attempts (a glob of its stage folder)
    in a folder of `entries` finished steps."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i in range(entries):
            (folder / f"noop-{i:06d}").mkdir()
        start = time.perf_counter()
        for _ in range(20):
            list(folder.glob(".tmp-noop-000005-*"))
        return (time.perf_counter() - start) / 20


def through_scheduler(make, count: int) -> float:
    """Seconds per no-op step of a `count`-step plan run by scaler.run.local.execute."""
    import noop_runner

    STAGES.setdefault("noop", Stage("noop", "noop_runner", 1))
    steps = tuple(Step("noop", noop_runner.Config(index=i)) for i in range(count))
    plan = Plan("bench", steps, {"noop": Resources()})
    with tempfile.TemporaryDirectory() as tmp:
        executor = make(Path(tmp))
        start = time.perf_counter()
        report = execute(plan, Layout(Path(tmp) / "bench"), executor, say=lambda _: None)
        seconds = (time.perf_counter() - start) / count
        assert len(report.ran) == count, report
        getattr(executor, "shutdown", lambda: None)()
    return seconds


def torch_steps(count: int = 50) -> None:
    """One worker, `count` torch steps: the import paid once, and its memory step by step."""
    with tempfile.TemporaryDirectory() as tmp:
        executor = WarmExecutor(parallel=1)
        rss: list[int] = []

        def measure() -> None:
            (pid,) = executor.worker_pids()
            status = Path(f"/proc/{pid}/status").read_text()
            rss.append(int(status.split("VmRSS:")[1].split()[0]) // 1024)

        start = time.perf_counter()
        results = _drive(executor, _jobs(Path(tmp), "bench_warm", count), after_each=measure)
        total = time.perf_counter() - start
        executor.shutdown()
    imports = [r["import_s"] for r in results]
    print(
        f"warm executor, {count} torch steps in one worker: {total:.1f} s; `import torch` "
        f"{imports[0]:.2f} s in the first step, at most {max(imports[1:]) * 1e6:.0f} us after"
    )
    print(
        f"  worker RSS after steps 1/10/25/50: {rss[0]}/{rss[9]}/{rss[24]}/{rss[-1]} MiB "
        f"(steps 10 to 50: {rss[-1] - rss[9]:+d} MiB)"
    )


def main() -> None:
    print(f"machine: {machine()}")

    def warm(_root: Path) -> WarmExecutor:
        return WarmExecutor(PARALLEL)

    def local(root: Path) -> LocalExecutor:
        return LocalExecutor(root / "logs", PARALLEL)

    for count in (1_000, 10_000):
        every, first, last = (s * 1000 for s in executor_alone(warm, count))
        print(
            f"warm executor alone, {count} no-op steps two at a time: {every:.1f} ms per step "
            f"(first tenth {first:.1f} ms, last tenth {last:.1f} ms)"
        )
    for entries in (1_000, 10_000):
        ms = leftover_glob(entries) * 1000
        print(f"  run_step's leftover glob in a folder of {entries} steps: {ms:.2f} ms")
    every, _, _ = executor_alone(local, 100)
    print(f"local executor alone, 100 no-op steps two at a time: {every * 1000:.0f} ms per step")
    for name, make, count in (("warm", warm, 1_000), ("local", local, 100)):
        ms = through_scheduler(make, count) * 1000
        print(f"{name} executor through execute(), {count}-step plan: {ms:.1f} ms per step")
    torch_steps()


if __name__ == "__main__":
    main()
