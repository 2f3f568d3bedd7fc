"""Inside a verifier worker: both sides' answers read by math-verify and compared.

`Comparer(conventions, max_chars, max_depth)(gold, pred)` finds each side's answer
(runners.judging.answers.locate_answer, best place first), has math-verify's `parse` read it and
decides by the conventions (runners.judging.conventions): lists in order or as sets,
percentages, words compared as text. It returns (correct, reason, extracted, rule). It runs
sympy and may hang or grow memory: runners.judging.workers runs it in processes that can be
killed, never in the caller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from runners.judging.answer_text import (
    as_text,
    connectors_as_commas,
    decimal_comma_as_point,
    has_inner_words,
    top_level_items,
)
from runners.judging.answers import (
    LAST_EXPRESSION,
    LAST_NUMBER,
    NO_ANSWER,
    Candidate,
    locate_answer,
)
from runners.judging.conventions import Conventions

EQUIVALENT = "equivalent"
MISMATCH = "mismatch"
PARSE_FAILURE = "parse failure"
TIME_LIMIT = "time limit"
REASONS = (EQUIVALENT, MISMATCH, NO_ANSWER, PARSE_FAILURE, TIME_LIMIT)
"""Every verdict's reason, stored as it is; "equivalent" is the only one that is correct."""
_INTEGER = re.compile(r"-?[1-9]\d{0,30}|0")
_AND_JOIN = re.compile(r"\s+and\s+")


def _depth(text: str) -> int:
    depth = deepest = 0
    for c in text:
        if c in "{([":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "})]" and depth:
            depth -= 1
    return deepest


@dataclass(frozen=True)
class _Answer:
    """One side's answer as read: math-verify's parse, or the text of a words answer."""

    parsed: list | None
    text: str
    """The answer as a person reads it (math-verify's string for what it parsed)."""
    rule: str
    words: bool = False
    """Words stand between values: compared as text (answer_text.has_inner_words)."""
    items: tuple[str, ...] = ()
    """A bare list's items in the order written (one item for anything else)."""
    as_set: bool = False
    """The list is written as a set of answers (answers.Candidate.as_set, or its items name
    what they are values of: `a_3 = 2, a_{37} = 19`)."""


class _Unread(Exception):
    def __init__(self, reason: str):
        self.reason = reason


class Comparer:
    """`compare(gold, pred)` by `conventions`; math-verify is imported when one is made (in the
    worker)."""

    def __init__(self, conventions: Conventions, max_chars: int, max_depth: int):
        from latex2sympy2_extended.latex2sympy2 import NormalizationConfig
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
        from sympy import Integer

        self.conventions = conventions
        self.max_chars, self.max_depth = max_chars, max_depth
        self._parse, self._verify, self._integer = parse, verify, Integer
        # As math-verify's own tests call it (boxes first), with units dropped or kept by
        # convention.
        normalization = NormalizationConfig(
            basic_latex=True,
            units=conventions.strip_units,
            malformed_operators=True,
            nits=True,
            boxed="all",
            equations=False,
        )
        self.config: list = []
        if "latex" in conventions.extraction:
            self.config.append(
                LatexExtractionConfig(boxed_match_priority=0, normalization_config=normalization)
            )
        if "expr" in conventions.extraction:
            self.config.append(ExprExtractionConfig())
        # A gold is compared with many samples; a sample is read once, so only golds are cached.
        self.read_gold = lru_cache(maxsize=4096)(self.read)

    def __call__(self, gold: str, pred: str) -> tuple[bool, str, str | None, str | None]:
        """(correct, reason, the prediction's answer as compared, the rule that found it)."""
        try:
            answer = self.read(pred)
        except _Unread as unread:
            return False, unread.reason, None, None
        try:
            expected = self.read_gold(gold)
        except _Unread as unread:
            return False, unread.reason, answer.text, answer.rule
        if self.equal(expected, answer):
            return True, EQUIVALENT, answer.text, answer.rule
        return False, MISMATCH, answer.text, answer.rule

    def same(self, gold, pred) -> bool:
        conventions = self.conventions
        return self._verify(
            gold,
            pred,
            float_rounding=conventions.precision,
            strict=conventions.strict,
            allow_set_relation_comp=conventions.set_relation,
            timeout_seconds=None,
        )

    def parse_bare(self, answer: str) -> list:
        """An answer on its own, as the contents of a box (plain text for expr-only extraction,
        which does not read boxes)."""
        if _INTEGER.fullmatch(answer):
            # What latex2sympy makes of a plain integer, without its millisecond grammar.
            return [self._integer(int(answer)), answer]
        if self.conventions.extraction == "expr":
            return self._parse(answer, self.config, parsing_timeout=None)
        return self._parse("\\boxed{" + answer + "}", self.config, parsing_timeout=None)

    def read(self, text: str) -> _Answer:
        """The answer of `text`: the first place locate_answer finds that math-verify reads."""
        candidates = locate_answer(text, self.conventions.fallback)
        if not candidates:
            raise _Unread(NO_ANSWER)
        for candidate in candidates:
            answer = self._read_candidate(candidate)
            if answer is not None:
                return answer
        # A marker whose answer math-verify cannot read is a failure; no expression at all in
        # a text without a marker is no answer.
        fallback_only = all(c.rule in (LAST_EXPRESSION, LAST_NUMBER) for c in candidates)
        raise _Unread(NO_ANSWER if fallback_only else PARSE_FAILURE)

    def _read_candidate(self, candidate: Candidate) -> _Answer | None:
        """One place's answer, None when math-verify finds nothing there."""
        answer = candidate.text
        if _depth(answer) > self.max_depth or (
            candidate.reading == "boxed" and len(answer) > self.max_chars
        ):
            raise _Unread(PARSE_FAILURE)
        if candidate.reading == "boxed":
            if has_inner_words(answer):
                return _Answer(None, answer, candidate.rule, words=True)
            answer = connectors_as_commas(answer)
            if self.conventions.decimal_comma:
                answer = decimal_comma_as_point(answer)
            parsed = self.parse_bare(answer)
        else:
            parsed = self._parse(answer, self.config, parsing_timeout=None)
        if not parsed:
            return None
        # math-verify's normalised string of what it compared (`0.5` reads `\\frac{1}{2}`).
        shown = parsed[-1] if isinstance(parsed[-1], str) else answer
        # math-verify joins the answers it found apart with " and " (`$21,16$ or $11$` reads
        # `21,16 and 11`): items of the list too.
        items = tuple(top_level_items(_AND_JOIN.sub(", ", shown)))
        # Items that name what they are values of (`a_3 = 2, a_{37} = 19`), or a list written
        # with semicolons (`-12;-11;-10`, math-verify's suite), are a set.
        as_set = candidate.as_set or ";" in shown or any("=" in item for item in items)
        return _Answer(parsed, shown, candidate.rule, items=items, as_set=as_set)

    def same_value(self, gold: list, pred: list) -> bool:
        if self.same(gold, pred):
            return True
        if self.conventions.percent:
            # math-verify reads X% as X/100; the percent policy also accepts X itself.
            gold_plain, pred_plain = _without_percent(gold), _without_percent(pred)
            if gold_plain is not None and self.same(gold_plain, pred):
                return True
            if pred_plain is not None and self.same(gold, pred_plain):
                return True
        return False

    def equal(self, gold: _Answer, pred: _Answer) -> bool:
        if gold.words or pred.words:
            return as_text(gold.text) == as_text(pred.text)
        if self.conventions.lists == "ordered" and len(gold.items) > 1 and not gold.as_set:
            # An ordered list: the same number of items, each the same value in its place.
            if len(pred.items) != len(gold.items):
                return False
            return all(
                self.same_value(self.parse_bare(g), self.parse_bare(p))
                for g, p in zip(gold.items, pred.items, strict=True)
            )
        return self.same_value(gold.parsed, pred.parsed)


def _without_percent(parsed: list) -> list | None:
    """`[X * 1/100, "X\\%"]` -> `[X]`: the number a percentage is of; None for anything else."""
    from sympy import Mul, Rational, UnevaluatedExpr

    if not parsed or not isinstance(parsed[0], Mul) or len(parsed[0].args) != 2:
        return None
    value, scale = parsed[0].args
    if scale in (UnevaluatedExpr(Rational(1, 100)), Rational(1, 100)):
        return [value]
    return None
