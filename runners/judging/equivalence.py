"""Symbolic answer equivalence with hard limits: math-verify (sympy) in killable workers.

`Verifier().verify(gold, pred)` finds the final answer on each side and asks math-verify
whether they are the same mathematical object. Both sides may be whole solutions or bare
answers. Where the answer is comes from runners/judging/answers.py (`locate_answer`: the GSM8K
marker, then the later of the last box run and the last final-answer statement, then a bare one-line
answer, then the world's fallback); math-verify's own `parse` reads each place, with
`LatexExtractionConfig(boxed_match_priority=0)` and `ExprExtractionConfig()` by default, the
settings its own test suite uses (`Conventions.extraction`, `strict` and `set_relation` are
its other settings). The conventions are math-verify's but for lists, pinned by the tests:

- numbers compare by value: `\\frac{1}{3}` matches `0.333333` (decimals are rounded to
  `Conventions.precision` places, 6 by default) but not `0.3333`; `2,125` and `25\\,000` are
  numbers; `90^\\circ` matches `90`; a trailing unit is dropped (`30\\text{ cm}^2` is 30);
- intervals keep their brackets: `(1,2)` is not `[1,2]`;
- tuples are ordered (`(1,2,3)` is not `(3,2,1)`), sets are not (`\\{1,2\\}` is `\\{2,1\\}`);
  several boxes in a row are one list. A bare list keeps its order (`10, 4, -2` is not
  `4, 10, -2`, as in MATH's is_equiv tests) unless the gold is written as a set: in set
  notation, as several boxes, as the values of a variable (`n = \\boxed{1,-2}`) or as
  assignments (`a_3 = 2, a_{37} = 19`); math-verify reads every list as a set, which
  `Conventions(lists="set")` gives;
- an assignment matches its value, both ways: `x=3` matches `3`, and gold `x=5` matches `5`;
- text answers compare as text after LaTeX normalisation: `\\text{Evelyn}` matches `Evelyn`;
  words between values in a box (`2\\text{ hours and }15\\text{ minutes}`) make the answer
  text, compared as text, never a number with its words dropped.
- **Percentages** (`Conventions.percent`). `X\\%` (or `X%`) matches both `X` and `X/100`: gold
  `35` matches `35%` (GSM8K asks "what percentage" and keeps the bare number), and gold `0.35`
  matches `35%` too, and so for non-integers (`7.5\\%` and `7.5`). A percentage never matches
  any other number (`35%` is not `0.035`). Lenient on purpose: the unit is already fixed by the
  question, and a model that writes the sign should not lose the point.

The conventions that differ between worlds are named fields of `Conventions`; `WORLDS` holds
each real world's (GSM8K: the last number of a solution with no marker is its answer; MATH:
math-verify's last expression). docs/verifier.md describes them.

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

import multiprocessing
import re
import threading
import time
import weakref
from collections import deque
from dataclasses import asdict, dataclass, fields, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Literal

from runners.judging.answers import (
    LAST_EXPRESSION,
    LAST_NUMBER,
    NO_ANSWER,
    as_text,
    connectors_as_commas,
    decimal_comma_as_point,
    has_inner_words,
    locate_answer,
    top_level_items,
)

EQUIVALENT = "equivalent"
MISMATCH = "mismatch"
PARSE_FAILURE = "parse failure"
TIME_LIMIT = "time limit"
REASONS = (EQUIVALENT, MISMATCH, NO_ANSWER, PARSE_FAILURE, TIME_LIMIT)
# Extra time a new worker gets for its first task: a forked one has math-verify already; a
# spawned one (no fork on this platform) imports it first.
STARTUP_S = {"fork": 0.5, "spawn": 10.0}
_INTEGER = re.compile(r"-?[1-9]\d{0,30}|0")
_AND_JOIN = re.compile(r"\s+and\s+")
FALLBACKS = (LAST_EXPRESSION, LAST_NUMBER, "none")
LISTS = ("ordered", "set")
EXTRACTIONS = ("latex+expr", "latex", "expr")


@dataclass(frozen=True)
class Conventions:
    """What counts as the same answer; the fields that differ between worlds are set in WORLDS."""

    precision: int = 6
    """Decimal places numbers are rounded to before comparing (math-verify's float_rounding)."""
    strip_units: bool = True
    """Drop units and unit words after a value (`30\\text{ cm}^2` is 30)."""
    percent: bool = True
    """`X%` matches `X` as well as `X/100` (see the module docstring)."""
    lists: Literal["ordered", "set"] = "ordered"
    """A bare list `a, b, c` keeps its order unless the gold is written as a set (answers
    `Candidate.as_set`, `\\{a, b\\}`, items `x = a`); "set": every list is a set."""
    fallback: Literal["last expression", "last number", "none"] = LAST_EXPRESSION
    """The answer of a text with no marker: math-verify's last expression, the last number
    (GSM8K harnesses), or none."""
    extraction: Literal["latex+expr", "latex", "expr"] = "latex+expr"
    """What math-verify's parse looks for: LaTeX and plain expressions, LaTeX only (a bare `9`
    outside math delimiters is no answer) or plain expressions only (boxes are not read)."""
    strict: bool = True
    """math-verify's strict: variables matter (`f(x)` is not `f(y)`), sets are not tuples."""
    set_relation: bool = False
    """math-verify's allow_set_relation_comp: an interval gold matches a chain of inequalities
    (`x \\in [-2,7]` and `-2 \\le x \\le 7`) whichever side is the set."""
    decimal_comma: bool = False
    """An answer that is one number with a comma not followed by three digits (`1000,99`,
    `1,22`) has a decimal comma; off, it is a list. `1,450,000` is a thousands separator
    either way."""

    def __post_init__(self):
        if not isinstance(self.precision, int) or not 0 <= self.precision <= 15:
            raise ValueError(f"precision: {self.precision!r}; expected an integer 0-15")
        for name, allowed in (
            ("lists", LISTS),
            ("fallback", FALLBACKS),
            ("extraction", EXTRACTIONS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name}: {getattr(self, name)!r}; expected one of {', '.join(allowed)}"
                )
        for name in ("strip_units", "percent", "strict", "set_relation", "decimal_comma"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: {getattr(self, name)!r}; expected true or false")

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


WORLDS = {
    "gsm8k": Conventions(fallback=LAST_NUMBER),
    "math": Conventions(fallback=LAST_EXPRESSION),
}
"""Each real world's conventions (the demo world has its own checker,
runners/judging/demo_checker.py)."""


VERIFIER_VERSION = 2
"""The verifier's version, part of the id of every step that judges real-world answers (with
the conventions it used): raise it when a change to this module or runners/judging/answers.py
can change a verdict, so cached verdicts are judged again (2: math-verify's own extraction,
ordered lists)."""


def verifier_identity(world: str, overrides: dict | None = None) -> dict:
    """What a real world's verdicts depend on: VERIFIER_VERSION and the world's conventions with
    `overrides` (the spec's `world.verify`) applied; the value of a stage config's `verifier`."""
    conventions = replace(world_conventions(world), **(overrides or {}))
    return {"version": VERIFIER_VERSION, "conventions": asdict(conventions)}


def conventions_of(world: str, verifier: dict | None = None) -> Conventions:
    """The conventions a stage judges by: its config's `verifier` (verifier_identity), or the
    world's defaults when it has none."""
    if verifier is None:
        return world_conventions(world)
    return Conventions(**verifier["conventions"])


def world_conventions(world: str) -> Conventions:
    """The conventions of a real world by name; a clear error for any other name."""
    try:
        return WORLDS[world]
    except KeyError:
        raise ValueError(
            f"world {world!r} has no answer conventions; expected one of {', '.join(WORLDS)}"
        ) from None


@dataclass(frozen=True)
class Verdict:
    correct: bool
    reason: str
    """One of REASONS."""
    extracted: str | None = None
    """The prediction's answer as compared (None when none was found)."""
    rule: str | None = None
    """The rule that found the prediction's answer (one of answers.RULES; None when none did)."""


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

    def _new_worker(self) -> _Worker:
        limits = (self.max_chars, self.max_depth)
        return _Worker(self.time_limit, self.memory_mb, self.conventions, limits)

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
    compare = _comparer(conventions, *limits)
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


@dataclass(frozen=True)
class _Answer:
    """One side's answer as read: math-verify's parse, or the text of a words answer."""

    parsed: list | None
    text: str
    """The answer as a person reads it (math-verify's string for what it parsed)."""
    rule: str
    words: bool = False
    """Words stand between values: compared as text (answers.has_inner_words)."""
    items: tuple[str, ...] = ()
    """A bare list's items in the order written (one item for anything else)."""
    as_set: bool = False
    """The list is written as a set of answers (answers.Candidate.as_set, or its items name
    what they are values of: `a_3 = 2, a_{37} = 19`)."""


class _Unread(Exception):
    def __init__(self, reason: str):
        self.reason = reason


def _comparer(conventions: Conventions, max_chars: int, max_depth: int):
    from functools import lru_cache

    from latex2sympy2_extended.latex2sympy2 import NormalizationConfig
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
    from sympy import Integer

    # As math-verify's own tests call it (boxes first), with units dropped or kept by convention.
    normalization = NormalizationConfig(
        basic_latex=True,
        units=conventions.strip_units,
        malformed_operators=True,
        nits=True,
        boxed="all",
        equations=False,
    )
    config = []
    if "latex" in conventions.extraction:
        config.append(
            LatexExtractionConfig(boxed_match_priority=0, normalization_config=normalization)
        )
    if "expr" in conventions.extraction:
        config.append(ExprExtractionConfig())

    def same(gold, pred) -> bool:
        return verify(
            gold,
            pred,
            float_rounding=conventions.precision,
            strict=conventions.strict,
            allow_set_relation_comp=conventions.set_relation,
            timeout_seconds=None,
        )

    def parse_bare(answer: str) -> list:
        """An answer on its own, as the contents of a box (plain text for expr-only extraction,
        which does not read boxes)."""
        if _INTEGER.fullmatch(answer):
            # What latex2sympy makes of a plain integer, without its millisecond grammar.
            return [Integer(int(answer)), answer]
        if conventions.extraction == "expr":
            return parse(answer, config, parsing_timeout=None)
        return parse("\\boxed{" + answer + "}", config, parsing_timeout=None)

    def read(text: str) -> _Answer:
        candidates = locate_answer(text, conventions.fallback)
        if not candidates:
            raise _Unread(NO_ANSWER)
        for candidate in candidates:
            answer = candidate.text
            if _depth(answer) > max_depth or (
                candidate.reading == "boxed" and len(answer) > max_chars
            ):
                raise _Unread(PARSE_FAILURE)
            if candidate.reading == "boxed":
                if has_inner_words(answer):
                    return _Answer(None, answer, candidate.rule, words=True)
                answer = connectors_as_commas(answer)
                if conventions.decimal_comma:
                    answer = decimal_comma_as_point(answer)
                parsed = parse_bare(answer)
            else:
                parsed = parse(answer, config, parsing_timeout=None)
            if parsed:
                # math-verify's normalised string of what it compared (`0.5` reads `\\frac{1}{2}`).
                shown = parsed[-1] if isinstance(parsed[-1], str) else answer
                # math-verify joins the answers it found apart with " and " (`$21,16$ or $11$`
                # reads `21,16 and 11`): items of the list too.
                items = tuple(top_level_items(_AND_JOIN.sub(", ", shown)))
                # Items that name what they are values of (`a_3 = 2, a_{37} = 19`), or a list
                # written with semicolons (`-12;-11;-10`, math-verify's suite), are a set.
                as_set = candidate.as_set or ";" in shown or any("=" in item for item in items)
                return _Answer(parsed, shown, candidate.rule, items=items, as_set=as_set)
        # A marker whose answer math-verify cannot read is a failure; no expression at all in
        # a text without a marker is no answer.
        fallback_only = all(c.rule in (LAST_EXPRESSION, LAST_NUMBER) for c in candidates)
        raise _Unread(NO_ANSWER if fallback_only else PARSE_FAILURE)

    # A gold is compared with many samples; a sample is read once, so only golds are cached.
    read_gold = lru_cache(maxsize=4096)(read)

    def same_value(gold: list, pred: list) -> bool:
        if same(gold, pred):
            return True
        if conventions.percent:
            # math-verify reads X% as X/100; the percent policy also accepts X itself.
            gold_plain, pred_plain = _without_percent(gold), _without_percent(pred)
            if gold_plain is not None and same(gold_plain, pred):
                return True
            if pred_plain is not None and same(gold, pred_plain):
                return True
        return False

    def equal(gold: _Answer, pred: _Answer) -> bool:
        if gold.words or pred.words:
            return as_text(gold.text) == as_text(pred.text)
        if conventions.lists == "ordered" and len(gold.items) > 1 and not gold.as_set:
            # An ordered list: the same number of items, each the same value in its place.
            if len(pred.items) != len(gold.items):
                return False
            return all(
                same_value(parse_bare(g), parse_bare(p))
                for g, p in zip(gold.items, pred.items, strict=True)
            )
        return same_value(gold.parsed, pred.parsed)

    def compare(gold: str, pred: str) -> tuple[bool, str, str | None, str | None]:
        try:
            answer = read(pred)
        except _Unread as unread:
            return False, unread.reason, None, None
        try:
            expected = read_gold(gold)
        except _Unread as unread:
            return False, unread.reason, answer.text, answer.rule
        if equal(expected, answer):
            return True, EQUIVALENT, answer.text, answer.rule
        return False, MISMATCH, answer.text, answer.rule

    return compare


def _without_percent(parsed: list) -> list | None:
    """`[X * 1/100, "X\\%"]` -> `[X]`: the number a percentage is of; None for anything else."""
    from sympy import Mul, Rational, UnevaluatedExpr

    if not parsed or not isinstance(parsed[0], Mul) or len(parsed[0].args) != 2:
        return None
    value, scale = parsed[0].args
    if scale in (UnevaluatedExpr(Rational(1, 100)), Rational(1, 100)):
        return [value]
    return None


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
