"""The verifier's worker processes: each compares answers under a time and a memory limit.

A worker is forked with math-verify already imported (spawned where there is no fork), serves
chunks of (index, gold, pred) tasks over a pipe and answers task by task with a
runners.judging.comparison.Comparer. math-verify's own signal timeouts are off: they are in whole
seconds and cannot stop sympy inside a big-integer power, so the parent (runners.judging.
equivalence.Verifier) kills a worker that overruns. An address-space cap makes a `1000000!` that
grows memory fail inside the worker instead of in the machine.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import deque
from multiprocessing.connection import Connection
from pathlib import Path

from runners.judging.comparison import PARSE_FAILURE, Comparer
from runners.judging.conventions import Conventions

# Extra time a new worker gets for its first task: a forked one has math-verify already; a
# spawned one (no fork on this platform) imports it first.
STARTUP_S = {"fork": 0.5, "spawn": 10.0}


def _context():
    # fork: a worker starts in milliseconds with math-verify already imported by the parent
    # (see Worker), and unlike spawn/forkserver it never re-runs the caller's __main__. The
    # parent is the single-threaded CLI or stage; elsewhere fall back to spawn.
    if "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


class Worker:
    """One worker process, the chunk of tasks it holds and the deadline of the current one."""

    def __init__(
        self,
        time_limit: float,
        memory_mb: int | None,
        conventions: Conventions,
        limits: tuple[int, int],
    ):
        import math_verify  # noqa: F401 - imported once here, inherited by every forked worker

        self.time_limit = time_limit
        self.conn, child = _context().Pipe()
        self.process = _context().Process(
            target=_serve,
            args=(child, memory_mb, conventions, limits),
            daemon=True,
            name="scaler-verify",
        )
        self.process.start()
        child.close()
        self.pending: deque = deque()
        self.deadline = 0.0
        self.fresh = True
        self.startup_s = STARTUP_S[_context().get_start_method()]

    def start_chunk(self, chunk: list[tuple[int, str, str]]) -> None:
        self.pending = deque(chunk)
        # The first task's clock also covers a fresh worker's start, so allow for that once.
        self.deadline = time.monotonic() + self.time_limit + (self.startup_s if self.fresh else 0.0)
        self.fresh = False
        self.conn.send(chunk)

    def kill(self) -> None:
        try:
            self.process.kill()
            self.process.join(5)
        finally:
            self.conn.close()


def close_all(workers: list[Worker]) -> None:
    """Ask every worker to end, kill those that do not within a second; empty the list."""
    for worker in workers:
        try:
            worker.conn.send(None)
        except OSError:
            pass
    for worker in workers:
        worker.process.join(1)
        if worker.process.is_alive():
            worker.kill()
    workers.clear()


# Inside the worker process.
def _serve(
    conn: Connection, memory_mb: int | None, conventions: Conventions, limits: tuple[int, int]
) -> None:
    import logging

    if memory_mb:
        import resource

        # On top of what the worker inherited: a parent that loaded torch has gigabytes of
        # address space mapped before a single comparison runs.
        limit = _address_space_bytes() + memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    compare = Comparer(conventions, *limits)
    while True:
        try:
            chunk = conn.recv()
        except EOFError:
            return
        if chunk is None:
            return
        for index, gold, pred in chunk:
            try:
                verdict = compare(gold, pred)
            except (Exception, RecursionError, MemoryError):
                verdict = (False, PARSE_FAILURE, None, None)
            conn.send((index, *verdict))


def _address_space_bytes() -> int:
    """This process's virtual memory size (Linux /proc; 0 where there is none)."""
    import os

    try:
        pages = int(Path("/proc/self/statm").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")
