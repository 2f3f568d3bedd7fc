"""Symbolic answer equivalence with hard limits: math-verify (sympy) in killable workers.

`Verifier().verify(gold, pred)` extracts the final answer from each side (runners/answers.py;
a text with no marker is taken whole when it is one line), then asks math-verify whether they
are the same mathematical object. The conventions are math-verify's, pinned by the tests:

- numbers compare by value: `\\frac{1}{3}` matches `0.333333` (decimals are rounded to 6 places)
  but not `0.3333`; `2,125` matches `2125`; `90^\\circ` matches `90`;
- intervals keep their brackets: `(1,2)` is not `[1,2]`;
- tuples are ordered (`(1,2,3)` is not `(3,2,1)`), sets are not (`\\{1,2\\}` is `\\{2,1\\}`, and a
  bare list `1,-2` is a set);
- an assignment matches its value, both ways: `x=3` matches `3`, and gold `x=5` matches `5`;
- text answers compare as text after LaTeX normalisation: `\\text{Evelyn}` matches `Evelyn`.
- **Percentages.** `X\\%` (or `X%`) matches both `X` and `X/100`: gold `35` matches `35%` (GSM8K
  asks "what percentage" and keeps the bare number), and gold `0.35` matches `35%` too. A
  percentage never matches any other number (`35%` is not `0.035`). Lenient on purpose: the unit
  is already fixed by the question, and a model that writes the sign should not lose the point.

Limits. Parsing and comparing run in a small pool of worker processes, reused across calls, with
math-verify's own signal timeouts off (they are in whole seconds and cannot stop sympy inside a
big-integer power). Each comparison has `time_limit` seconds; a worker that overruns is killed
and replaced, and the pair is "time limit". A worker also has an address-space cap, so a
`1000000!` that grows memory fails inside it instead of in the machine. Before anything is sent,
an answer longer than `max_chars` or nested deeper than `max_depth` is a "parse failure".

Reasons: "equivalent" (the only one that is correct), "mismatch", "no answer found",
"parse failure", "time limit".
"""

from __future__ import annotations

import multiprocessing
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path

from runners.answers import NO_ANSWER, clean_sentence, extract_answer

EQUIVALENT = "equivalent"
MISMATCH = "mismatch"
PARSE_FAILURE = "parse failure"
TIME_LIMIT = "time limit"
REASONS = (EQUIVALENT, MISMATCH, NO_ANSWER, PARSE_FAILURE, TIME_LIMIT)
# Extra time a new worker gets for its first task: a forked one has math-verify already; a
# spawned one (no fork on this platform) imports it first.
STARTUP_S = {"fork": 0.5, "spawn": 10.0}


@dataclass(frozen=True)
class Verdict:
    correct: bool
    reason: str
    """One of REASONS."""
    extracted: str | None = None
    """The prediction's answer as compared (None when none was found)."""


def prepare(text: str, max_chars: int = 10_000, max_depth: int = 100) -> tuple[str | None, str]:
    """The answer to compare, or None and why not; pure and linear, runs in the caller."""
    answer, rule = extract_answer(text)
    if answer is None:
        bare = text.strip()
        if not bare or "\n" in bare:
            return None, NO_ANSWER
        answer = bare
    answer = clean_sentence(answer)
    if not answer:
        return None, NO_ANSWER
    if len(answer) > max_chars or _depth(answer) > max_depth:
        return answer[:200], PARSE_FAILURE
    return answer, rule


def _depth(text: str) -> int:
    depth = deepest = 0
    for c in text:
        if c in "{([":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "})]" and depth:
            depth -= 1
    return deepest


class Verifier:
    """A pool of `workers` processes comparing answers under `time_limit` seconds each.

    Start-up is lazy (the first call) and costs about a second; use it as a context manager or
    call close(), though workers also end with this process.
    """

    def __init__(
        self,
        time_limit: float = 2.0,
        workers: int = 2,
        max_chars: int = 10_000,
        max_depth: int = 100,
        memory_mb: int | None = 2048,
        chunk: int = 32,
    ):
        if time_limit <= 0 or workers < 1 or chunk < 1:
            raise ValueError("time_limit must be > 0, workers and chunk >= 1")
        self.time_limit = time_limit
        self.max_chars = max_chars
        self.max_depth = max_depth
        self.memory_mb = memory_mb
        self.chunk = chunk
        self._size = workers
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self.replaced = 0
        """Workers killed (time limit) or found dead and replaced so far."""
        self._finalizer = weakref.finalize(self, _close_all, self._workers)

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._finalizer()

    def verify(self, gold: str, pred: str) -> Verdict:
        """Whether `pred` (an answer or a whole solution) states the answer `gold`."""
        return self.verify_many([(gold, pred)])[0]

    def verify_many(self, pairs) -> list[Verdict]:
        """verify() for each (gold, pred), batched over the workers; results in input order."""
        pairs = list(pairs)
        verdicts: list[Verdict | None] = [None] * len(pairs)
        tasks = []
        for i, (gold, pred) in enumerate(pairs):
            g, g_reason = prepare(gold, self.max_chars, self.max_depth)
            p, p_reason = prepare(pred, self.max_chars, self.max_depth)
            if p is None or p_reason == PARSE_FAILURE:
                verdicts[i] = Verdict(False, p_reason, p)
            elif g is None or g_reason == PARSE_FAILURE:
                verdicts[i] = Verdict(False, g_reason, p)
            else:
                tasks.append((i, g, p))
        if tasks:
            preds = {i: p for i, _, p in tasks}
            with self._lock:
                for i, (correct, reason) in self._run(tasks).items():
                    verdicts[i] = Verdict(correct, reason, preds[i])
        return verdicts  # type: ignore[return-value]

    # The scheduler: chunks of tasks go to idle workers; each worker answers task by task, so a
    # task's clock starts when the one before it came back.
    def _run(self, tasks: list[tuple[int, str, str]]) -> dict[int, tuple[bool, str]]:
        size = max(1, min(self.chunk, -(-len(tasks) // (2 * self._size))))
        queue = deque(tasks[i : i + size] for i in range(0, len(tasks), size))
        results: dict[int, tuple[bool, str]] = {}
        self._ensure_workers()
        busy: dict[Connection, _Worker] = {}
        while queue or busy:
            for worker in list(self._workers):
                if queue and worker.conn not in busy:
                    busy[worker.conn] = worker
                    try:
                        worker.start_chunk(queue.popleft())
                    except OSError:  # died while idle; its first task is charged, so this ends
                        self._retire(worker, busy, queue, results, PARSE_FAILURE)
            now = time.monotonic()
            if not busy:
                continue
            soonest = min(w.deadline for w in busy.values())
            ready = wait(list(busy), timeout=max(0.0, soonest - now))
            for conn in ready:
                worker = busy[conn]
                try:
                    index, correct, reason = conn.recv()
                except (EOFError, OSError):
                    # Died mid-task (killed from outside, out of memory, a crash in C).
                    self._retire(worker, busy, queue, results, PARSE_FAILURE)
                    continue
                worker.pending.popleft()
                results[index] = (correct, reason)
                worker.deadline = time.monotonic() + self.time_limit
                if not worker.pending:
                    del busy[conn]
            now = time.monotonic()
            for worker in [w for w in busy.values() if w.deadline <= now and w.conn not in ready]:
                self._retire(worker, busy, queue, results, TIME_LIMIT)
        return results

    def _retire(self, worker, busy, queue, results, reason: str) -> None:
        """Kill `worker`, charge its current task with `reason`, requeue the rest, replace it."""
        del busy[worker.conn]
        current = worker.pending.popleft()
        results[current[0]] = (False, reason)
        if worker.pending:
            queue.appendleft(list(worker.pending))
        worker.kill()
        self._workers[self._workers.index(worker)] = _Worker(self.time_limit, self.memory_mb)
        self.replaced += 1

    def _ensure_workers(self) -> None:
        for i, worker in enumerate(self._workers):
            if not worker.process.is_alive():
                worker.kill()
                self._workers[i] = _Worker(self.time_limit, self.memory_mb)
                self.replaced += 1
        while len(self._workers) < self._size:
            self._workers.append(_Worker(self.time_limit, self.memory_mb))

    def worker_pids(self) -> list[int]:
        """The workers' process ids (for tests and diagnostics)."""
        self._ensure_workers()
        return [w.process.pid for w in self._workers]  # type: ignore[misc]


def _context():
    # fork: a worker starts in milliseconds with math-verify already imported by the parent
    # (see _Worker), and unlike spawn/forkserver it never re-runs the caller's __main__. The
    # parent is the single-threaded CLI or stage; elsewhere fall back to spawn.
    if "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


class _Worker:
    def __init__(self, time_limit: float, memory_mb: int | None):
        import math_verify  # noqa: F401 - imported once here, inherited by every forked worker

        self.time_limit = time_limit
        self.conn, child = _context().Pipe()
        self.process = _context().Process(
            target=_serve, args=(child, memory_mb), daemon=True, name="scaler-verify"
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


def _close_all(workers: list[_Worker]) -> None:
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
def _serve(conn: Connection, memory_mb: int | None) -> None:
    import logging

    if memory_mb:
        import resource

        # On top of what the worker inherited: a parent that loaded torch has gigabytes of
        # address space mapped before a single comparison runs.
        limit = _address_space_bytes() + memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    compare = _comparer()
    while True:
        try:
            chunk = conn.recv()
        except EOFError:
            return
        if chunk is None:
            return
        for index, gold, pred in chunk:
            try:
                correct, reason = compare(gold, pred)
            except (Exception, RecursionError, MemoryError):
                correct, reason = False, PARSE_FAILURE
            conn.send((index, correct, reason))


def _address_space_bytes() -> int:
    """This process's virtual memory size (Linux /proc; 0 where there is none)."""
    import os

    try:
        pages = int(Path("/proc/self/statm").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def _comparer():
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    # The answer is already extracted; boxing it makes math-verify parse exactly it.
    config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]

    def compare(gold: str, pred: str) -> tuple[bool, str]:
        gold_parsed = parse("\\boxed{" + gold + "}", config, parsing_timeout=None)
        pred_parsed = parse("\\boxed{" + pred + "}", config, parsing_timeout=None)
        if not gold_parsed or not pred_parsed:
            return False, PARSE_FAILURE
        if verify(gold_parsed, pred_parsed, float_rounding=6, timeout_seconds=None):
            return True, EQUIVALENT
        return False, MISMATCH

    return compare


# Inputs the limits exist for: each must come back "not correct" within the time limit.
# Shared by the tests and benchmarks/bench_verify.py.
PATHOLOGICAL = [
    "9^9^9^9",
    "9^{9^{9^{9}}}",
    "1000000!",
    "(10^{10^{8}})!",
    "2^{2^{2^{2^{2^{2^{2}}}}}}",
    "x" * 1_000_000,
    "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}",
    "(" * 10_000 + ")" * 10_000,
    "\\frac{" * 5_000,
    "1" * 9_000,
]
