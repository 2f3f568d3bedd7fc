"""Symbolic answer equivalence with hard limits: math-verify (sympy) in killable workers.

`Verifier().verify(gold, pred)` finds the final answer on each side and asks math-verify
whether they are the same mathematical object. Both sides may be whole solutions or bare
answers. Where the answer is comes from runners/judging/answers.py (`locate_answer`: the GSM8K
marker, then the later of the last box run and the last final-answer statement, then a bare one-line
answer, then the world's fallback); math-verify's own `parse` reads each place, with
`LatexExtractionConfig(boxed_match_priority=0)` and `ExprExtractionConfig()` by default, the
settings its own test suite uses (`Conventions.extraction`, `strict` and `set_relation` are
its other settings). What counts as the same answer is `Conventions`: math-verify's, but for
lists, each real world's in `WORLDS` (runners/judging/conventions.py; docs/verifier.md).

Limits. Finding, parsing and comparing all run in a small pool of worker processes, reused
across calls, with math-verify's own signal timeouts off (they are in whole seconds and cannot
stop sympy inside a big-integer power): math-verify's parse runs sympy and can hang on a whole
text as well as on an answer. Each comparison (both parses and the comparison) has `time_limit`
seconds; a worker that overruns is killed and replaced, and the pair is "time limit". A worker
also has an address-space cap, so a `1000000!` that grows memory fails inside it instead of in
the machine. A text longer than `max_text_chars` is a "parse failure" before it is sent; in the
worker, an answer longer than `max_chars` or nested deeper than `max_depth` is one too.

Reasons (`Verdict.reason`, stored as they are): "equivalent" (the only one that is correct),
"mismatch", "no answer found", "parse failure", "time limit". `Verdict.rule` names the rule of
runners/judging/answers.py that found the prediction's answer (`answers.RULES`).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

from runners.judging.answers import NO_ANSWER
from runners.judging.comparison import PARSE_FAILURE, TIME_LIMIT
from runners.judging.conventions import Conventions
from runners.judging.workers import Worker, close_all


@dataclass(frozen=True)
class Verdict:
    correct: bool
    reason: str
    """One of REASONS."""
    extracted: str | None = None
    """The prediction's answer as compared (None when none was found)."""
    rule: str | None = None
    """The rule that found the prediction's answer (one of answers.RULES; None when none did)."""


class Verifier:
    """A pool of `workers` processes comparing answers under `time_limit` seconds each, by
    `conventions` (math-verify's, the MATH world's, by default).

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
        conventions: Conventions | None = None,
        max_text_chars: int = 200_000,
    ):
        if time_limit <= 0 or workers < 1 or chunk < 1:
            raise ValueError("time_limit must be > 0, workers and chunk >= 1")
        if conventions is not None and not isinstance(conventions, Conventions):
            raise ValueError(f"conventions: expected a Conventions, got {conventions!r}")
        self.time_limit = time_limit
        self.max_chars = max_chars
        self.max_depth = max_depth
        self.max_text_chars = max_text_chars
        self.memory_mb = memory_mb
        self.chunk = chunk
        self.conventions = conventions or Conventions()
        self._size = workers
        self._workers: list[Worker] = []
        self._lock = threading.Lock()
        self.replaced = 0
        """Workers killed (time limit) or found dead and replaced so far."""
        self._finalizer = weakref.finalize(self, close_all, self._workers)

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
            if not isinstance(gold, str) or not isinstance(pred, str):
                raise ValueError(f"pair {i}: gold and pred must be strings, got {gold!r}, {pred!r}")
            if not pred.strip():
                verdicts[i] = Verdict(False, NO_ANSWER)
            elif len(pred) > self.max_text_chars:
                verdicts[i] = Verdict(False, PARSE_FAILURE, pred[:200])
            elif not gold.strip():
                verdicts[i] = Verdict(False, NO_ANSWER)
            elif len(gold) > self.max_text_chars:
                verdicts[i] = Verdict(False, PARSE_FAILURE)
            else:
                tasks.append((i, gold, pred))
        if tasks:
            with self._lock:
                for i, (correct, reason, extracted, rule) in self._run(tasks).items():
                    verdicts[i] = Verdict(correct, reason, extracted, rule)
        return verdicts  # type: ignore[return-value]

    # The scheduler: chunks of tasks go to idle workers; each worker answers task by task, so a
    # task's clock starts when the one before it came back.
    def _run(self, tasks: list[tuple[int, str, str]]) -> dict[int, tuple]:
        size = max(1, min(self.chunk, -(-len(tasks) // (2 * self._size))))
        queue = deque(tasks[i : i + size] for i in range(0, len(tasks), size))
        results: dict[int, tuple] = {}
        self._ensure_workers()
        busy: dict[Connection, Worker] = {}
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
                    index, *verdict = conn.recv()
                except (EOFError, OSError):
                    # Died mid-task (killed from outside, out of memory, a crash in C).
                    self._retire(worker, busy, queue, results, PARSE_FAILURE)
                    continue
                worker.pending.popleft()
                results[index] = tuple(verdict)
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
        results[current[0]] = (False, reason, None, None)
        if worker.pending:
            queue.appendleft(list(worker.pending))
        worker.kill()
        self._workers[self._workers.index(worker)] = self._new_worker()
        self.replaced += 1

    def _ensure_workers(self) -> None:
        for i, worker in enumerate(self._workers):
            if not worker.process.is_alive():
                worker.kill()
                self._workers[i] = self._new_worker()
                self.replaced += 1
        while len(self._workers) < self._size:
            self._workers.append(self._new_worker())

    def _new_worker(self) -> Worker:
        limits = (self.max_chars, self.max_depth)
        return Worker(self.time_limit, self.memory_mb, self.conventions, limits)

    def worker_pids(self) -> list[int]:
        """The workers' process ids (for tests and diagnostics)."""
        self._ensure_workers()
        return [w.process.pid for w in self._workers]  # type: ignore[misc]


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
