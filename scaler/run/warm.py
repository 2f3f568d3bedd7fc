"""The warm local executor: worker processes that import the heavy stack once and run step after
step.

submitit's local executor starts two fresh processes per step, so every demo step pays ~5 s of
torch/transformers/trl imports and every no-op step ~0.3 s. Here each of `parallel` slots owns a
`concurrent.futures.ProcessPoolExecutor` with one worker, which keeps what it imported between
steps. The standard library's pool rather than loky's reusable executor: loky cannot be installed
here, and the stdlib pool gives what is needed, a pool that reports a worker's death to the
futures it was running (BrokenProcessPool) instead of hanging. One pool per slot rather than one
pool of `parallel` workers, because a dead worker breaks its whole pool: so a step that kills its
worker (SIGKILL, `os._exit`, the kernel's out-of-memory killer, a segfault) fails alone, with the
worker's exit status as its reason, the slot gets a fresh pool, and the steps of the other slots
go on. Workers are started with "spawn" (fork and exec), never forked from this process, which
holds threads.

Every guarantee of the local executor is kept:
- Each job is tied to this run (`owner`, scaler.run.lifeline): a worker runs steps in its main
  thread, where the lifeline's SIGTERM handler turns a cancel into a clean stop, and a worker
  whose run is gone ends itself, idle or not (`_watch_owner`).
- Time limits: a handle's `done()` stops a step over `resources.time_min` (SIGTERM, then SIGKILL
  after STOP_GRACE_S) and fails it with that reason; `cancel` does the same on Ctrl-C/SIGTERM.
- Per-step thread counts are set by run_step in the worker, for each step.
- Workers ignore SIGINT: the terminal's Ctrl-C reaches every process of its group, and only the
  run answers it (by cancelling), rather than each worker printing a KeyboardInterrupt.
- What a step prints goes to its own log, logs/warm/<step>.log, not the run's terminal.
"""

from __future__ import annotations

import atexit
import faulthandler
import os
import pickle
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, suppress
from dataclasses import replace
from multiprocessing import get_context
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from scaler.layout import Layout
from scaler.run.job import StepJob, run_step
from scaler.run.lifeline import GRACE_S, WATCH_EVERY_S, interrupts_held, signals_deferred
from scaler.run.locks import is_alive, process_start, this_process
from scaler.spec.schema import Resources

STOP_GRACE_S = GRACE_S
"""How long a step told to stop (SIGTERM) gets to clean up before its worker is killed: as long
as the lifeline gives one whose run is gone. Cleaning up takes well under a second, but a step
cancelled while it imports torch stops once the import is done (scaler.run.lifeline), which
took 3-5 s on 2 busy cores."""
WORKER_CONTEXT = "spawn"
DEFERRED_WHILE_STARTING = frozenset({signal.SIGINT, signal.SIGTERM})
EXIT_ORPHANED = 70


class WorkerDied(Exception):
    """A step's worker process ended while running it; `paths.stderr` is the step's log."""

    def __init__(self, message: str, log: Path):
        super().__init__(message)
        self.paths = SimpleNamespace(stderr=log)


class StepStopped(Exception):
    """A step was stopped by the executor: over its time limit, or cancelled."""


def step_log(job: StepJob) -> Path:
    """Where a warm worker writes what a step prints: logs/warm/<step>.log."""
    # results/<exp>/steps/<stage>/<name>: the experiment's folder is three levels up.
    return Layout(Path(job.out_dir).parents[2]).logs / "warm" / f"{job.name}.log"


class WarmHandle:
    """One submitted step. `done()` also enforces its time limit and the kill after a stop."""

    def __init__(self, future: Future, worker: BaseProcess | None, job: StepJob, limit_min: float):
        self.future, self.worker, self.job, self.limit_min = future, worker, job, limit_min
        self.started = time.monotonic()
        self.stopped: str | None = None
        self._kill_at = float("inf")

    def done(self) -> bool:
        if self.future.done():
            return True
        now = time.monotonic()
        if self.stopped is None and now - self.started > self.limit_min * 60:
            self.stop(f"over its time limit of {self.limit_min:g} min")
        elif now >= self._kill_at:
            self._signal(signal.SIGKILL)
            self._kill_at = float("inf")
        return False

    def stop(self, reason: str) -> None:
        """SIGTERM to the worker (the lifeline makes it a clean stop), SIGKILL if it lingers."""
        if self.stopped is None and not self.future.done():
            self.stopped = reason
            self._kill_at = time.monotonic() + STOP_GRACE_S
            self._signal(signal.SIGTERM)

    def _signal(self, signum: int) -> None:
        # Only while the step runs: an idle worker would die of it, breaking its pool.
        if self.worker is not None and self.worker.pid and not self.future.done():
            with suppress(ProcessLookupError):
                os.kill(self.worker.pid, signum)

    def result(self) -> Any:
        try:
            return self.future.result()
        except BrokenProcessPool:
            if self.stopped:
                raise StepStopped(f"{self.stopped}: its worker was killed") from None
            raise WorkerDied(
                f"its worker process died ({self._how_worker_ended()})", step_log(self.job)
            ) from None
        except Exception:
            raise
        except SystemExit as exit:  # raised in the step, sent back by the pool's worker
            raise StepStopped(self.stopped or f"the step called sys.exit({exit.code})") from None
        except BaseException as stop:  # lifeline.Cancelled: a SIGTERM, ours or anyone's
            raise StepStopped(self.stopped or f"stopped: {stop}") from None

    def _how_worker_ended(self) -> str:
        if self.worker is None:
            return "exit status unknown"
        # The pool's own thread reaps it; wait for that rather than race it.
        deadline = time.monotonic() + 2.0
        while self.worker.exitcode is None and time.monotonic() < deadline:
            self.worker.join(0.05)
        code = self.worker.exitcode
        if code is None:
            return "exit status unknown"
        if code < 0:
            name = signal.Signals(-code).name
            hint = ": out of memory, or kill -9" if code == -signal.SIGKILL else ""
            return f"killed by {name}{hint}"
        return f"exit code {code}"


def _start_resource_tracker_quietly() -> None:
    """Start multiprocessing's resource tracker (the one process that every worker shares) with
    its stderr on /dev/null. A worker killed in a step (a cancel, Ctrl-C, SIGTERM) leaves the
    semaphores its step made; the tracker removes them when the run ends, and warns of each on
    its stderr, which would otherwise be the run's, after the run's one-line error."""
    from multiprocessing import resource_tracker

    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            resource_tracker.ensure_running()
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class WarmExecutor:
    """`parallel` warm workers on this machine, each in its own single-worker pool."""

    def __init__(self, parallel: int):
        self.slots = parallel
        self._owner = this_process()
        self._pools: list[ProcessPoolExecutor | None] = [None] * parallel
        self._handles: list[WarmHandle | None] = [None] * parallel
        self._workers: list[tuple[BaseProcess, dict[str, Any]]] = []
        """Every worker started, its pool's or a replaced pool's: all must end with the run."""
        # Before multiprocessing's own exit handler (registered earlier, so run later), which
        # waits for every child: a worker left waiting for work would hold the run forever.
        atexit.register(self.shutdown)
        _start_resource_tracker_quietly()

    def submit(self, job: StepJob, resources: Resources) -> WarmHandle:
        slot = next((i for i, h in enumerate(self._handles) if h is None or h.future.done()), None)
        if slot is None:
            raise RuntimeError(f"all {self.slots} slots of the warm executor are busy")
        job = replace(job, owner=self._owner)
        # SIGINT blocked while a pool starts its worker, which inherits that (see the module);
        # and Ctrl-C and SIGTERM deferred, not lost, until the worker has its start-up data.
        with interrupts_held(), signals_deferred(DEFERRED_WHILE_STARTING):
            future, pool = self._submit_to(slot, job)
            # Known before a Ctrl-C held meanwhile is raised, so that it is cancelled too.
            handle = WarmHandle(future, _worker_of(pool), job, resources.time_min)
            self._handles[slot] = handle
            self._remember(handle.worker)
        return handle

    def _remember(self, worker: BaseProcess | None) -> None:
        if worker is not None and worker.pid and all(w is not worker for w, _ in self._workers):
            # Its start time too: a pid reused after it ended is not it (is_alive).
            identity = {"pid": worker.pid, "process_start": process_start(worker.pid)}
            self._workers.append((worker, identity))

    @property
    def started(self) -> list[WarmHandle]:
        """The steps submitted and not done, for the scheduler's cancel."""
        return [h for h in self._handles if h is not None and not h.future.done()]

    @staticmethod
    def wait(handles: list[WarmHandle], timeout: float) -> None:
        """Return once one of `handles` is done, or after `timeout`: the scheduler's wait, which
        a fixed sleep would make ~25 ms a step."""
        futures.wait([h.future for h in handles], timeout, return_when=futures.FIRST_COMPLETED)

    def _submit_to(self, slot: int, job: StepJob) -> tuple[Future, ProcessPoolExecutor]:
        pool = self._pools[slot]
        worker = _worker_of(pool) if pool is not None else None
        # By pid, not worker.is_alive(): the pool's own thread may have reaped a dead worker,
        # after which multiprocessing cannot tell it has ended.
        if pool is not None and (worker is None or not _running(worker)):
            # Died while idle: a step given to it now would be blamed for that death.
            pool.shutdown(wait=False)
            pool = None
        if pool is not None:
            try:
                return pool.submit(_run_in_worker, job), pool
            except (BrokenProcessPool, RuntimeError):  # its worker died: a fresh pool
                pool.shutdown(wait=False)
        pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=get_context(WORKER_CONTEXT),
            initializer=_start_worker,
            initargs=(self._owner,),
        )
        self._pools[slot] = pool
        return pool.submit(_run_in_worker, job), pool

    @staticmethod
    def cancel(handle: WarmHandle) -> None:
        handle.stop("cancelled")

    def shutdown(self) -> None:
        """End the workers: each pool's own way (a sentinel in its queue), then, for a worker
        still there after STOP_GRACE_S, SIGKILL. A pool whose manager thread has ended (once seen
        after a SIGTERM of the run) never sends the sentinel, and its worker would wait for work
        while the run, exiting, waited for it."""
        for pool in self._pools:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        self._pools = [None] * self.slots
        deadline = time.monotonic() + STOP_GRACE_S
        for worker, identity in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
            if is_alive(identity):
                with suppress(ProcessLookupError):
                    os.kill(identity["pid"], signal.SIGKILL)
                worker.join(1.0)
        self._workers = []

    def worker_pids(self) -> list[int]:
        """The pids of the workers started so far (for benchmarks and tests)."""
        workers = [_worker_of(pool) for pool in self._pools if pool is not None]
        return [w.pid for w in workers if w is not None and w.pid]


def _running(worker: BaseProcess) -> bool:
    return worker.pid is not None and is_alive({"pid": worker.pid, "process_start": None})


def _worker_of(pool: ProcessPoolExecutor) -> BaseProcess | None:
    # The pool's process table is private, but it is the only place that names the worker and
    # holds its exit status (the pool reaps it). One worker per pool: the only entry.
    processes = getattr(pool, "_processes", None) or {}
    return next(iter(processes.values()), None)


# ---- in the worker process ---------------------------------------------------------------

_busy = threading.Event()


def _start_worker(owner: dict[str, Any]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    faulthandler.enable()  # a segfault's stack goes to the step's log (fd 2, _output_to)
    threading.Thread(target=_watch_owner, args=(owner,), daemon=True).start()


def _watch_owner(owner: dict[str, Any]) -> None:
    """End this worker once its run is gone. A running step is the lifeline's (tied_to): it
    stops the step cleanly, or exits the process after its grace; this waits for that."""
    if owner.get("host") != socket.gethostname():
        return
    while is_alive(owner):
        time.sleep(WATCH_EVERY_S)
    deadline = time.monotonic() + GRACE_S + 2.0
    while _busy.is_set() and time.monotonic() < deadline:
        time.sleep(WATCH_EVERY_S)
    os._exit(EXIT_ORPHANED)


def _run_in_worker(job: StepJob) -> dict[str, Any]:
    _busy.set()
    try:
        with _output_to(step_log(job)):
            return run_step(job)
    except Exception as error:
        if _round_trips(error):
            raise
        # An exception the run could not unpickle would break this slot's pool: send its text.
        raise RuntimeError(f"{type(error).__name__}: {error}") from None
    finally:
        _busy.clear()


@contextmanager
def _output_to(log: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (the file descriptors: C libraries' output too)
    to `log` while the block runs."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log, "w") as file:
        os.dup2(file.fileno(), 1)
        os.dup2(file.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _round_trips(error: BaseException) -> bool:
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001 - any failure to pickle or unpickle means no
        return False
    return True
