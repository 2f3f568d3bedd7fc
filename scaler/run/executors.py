"""Interchangeable executors: the same StepJobs run in this process or through submitit.

An executor has a number of slots (steps it runs at once) and `submit(job, resources)`, which
returns a handle with `done()` and `result()` (raising what the step raised). The scheduling
itself lives in scaler.run.local, so every executor runs the whole DAG the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from scaler.run.job import StepJob, run_step
from scaler.spec.schema import Resources


class Handle(Protocol):
    def done(self) -> bool: ...
    def result(self) -> Any: ...


class Executor(Protocol):
    slots: int

    def submit(self, job: StepJob, resources: Resources) -> Handle: ...


class _Finished:
    """The outcome of a step already run in this process."""

    def __init__(self, value: Any = None, error: BaseException | None = None):
        self.value, self.error = value, error

    def done(self) -> bool:
        return True

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


class InlineExecutor:
    """Runs each step in the calling process, one at a time: for tests and debugging."""

    slots = 1

    def submit(self, job: StepJob, resources: Resources) -> Handle:
        try:
            return _Finished(run_step(job))
        except Exception as error:  # noqa: BLE001 - reported by the scheduler with the step
            return _Finished(error=error)


class LocalExecutor:
    """submitit's local executor: each step in its own process, `parallel` at a time."""

    def __init__(self, log_dir: Path, parallel: int):
        import submitit

        self.slots = parallel
        self._executor = submitit.LocalExecutor(folder=log_dir)

    def submit(self, job: StepJob, resources: Resources) -> Handle:
        self._executor.update_parameters(
            timeout_min=resources.time_min, gpus_per_node=resources.gpus
        )
        return self._executor.submit(run_step, job)


def make_executor(name: str, log_dir: Path, parallel: int) -> Executor:
    if name == "inline":
        return InlineExecutor()
    if name == "local":
        return LocalExecutor(log_dir, parallel)
    raise ValueError(f"unknown executor {name!r}; expected inline or local")
