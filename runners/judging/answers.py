"""Where the final answer is in a model solution or gold record, before any sympy runs.

`locate_answer(text)` returns the places an answer may be, best first, each as a `Candidate`
(the piece of text, how math-verify should read it, and the name of the rule that found it).
The worker in runners/judging/equivalence.py hands them to math-verify in that order and
keeps the first that parses. The rules, in order:

1. ``gsm8k marker``: the text after the last ``####``, to the end of its line (GSM8K's format).
2. ``boxed`` and ``final answer``: the last run of ``\\boxed{...}`` / ``\\fbox{...}`` and the
   last final-answer statement ("the final answer is", "The answer is", "Answer:",
   "**Final answer:**", Minerva's "Final Answer: The final answer is X. I hope it is correct.").
   Whichever comes later in the text is tried first: a solution that boxes an intermediate value
   and then states its answer means the statement. A run is several boxes with only separators
   between them (``\\boxed{-1}, \\boxed{3}``, ``\\boxed{1} and \\boxed{2}``); together they are
   one answer, a list. A statement is read by math-verify's own extraction from the statement
   to the end of the text (it knows where "The answer is 28, so we are done." stops).
3. ``whole answer``: a one-line text with no marker that is an answer rather than a sentence
   (``x=3``, ``\\frac{1}{2}``, ``10, 4, -2``), read as if boxed.
4. The fallback for a text with no marker, a convention of the world (`Conventions.fallback`):
   ``last expression`` (math-verify's extraction over the whole text: the last LaTeX
   environment or number it can parse) or ``last number`` (the last number in the text, the
   convention of most GSM8K harnesses).

Before any rule, chat tokens end the text (``<|im_end|>``, ``</s>``, ``<|eot_id|>``: what follows
is another turn), and digit groups written with LaTeX spaces (``25\\,000``, ``25{,}000``,
``12 500``) are joined, which math-verify would otherwise read as a product.

A box whose words sit between values (``\\boxed{2\\text{ hours and }15\\text{ minutes}}``) is not
a number with a unit: `has_inner_words` tells the worker to compare it as text, since dropping
the words (math-verify's unit handling) would change its meaning.

Everything here is linear in the length of the text: braces are matched in one pass with a stack
and the regular expressions are fixed phrases or bounded character runs, so a megabyte of
adversarial text costs milliseconds, never a backtracking blow-up. Pure Python; no sympy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from runners.judging.answer_text import (
    clean_sentence,
    connectors_as_commas,
    end_of_turn,
    has_words,
    join_digit_groups,
)

NO_ANSWER = "no answer found"

GSM8K_MARKER = "gsm8k marker"
BOXED = "boxed"
FINAL_ANSWER = "final answer"
WHOLE_ANSWER = "whole answer"
LAST_EXPRESSION = "last expression"
LAST_NUMBER = "last number"
RULES = (GSM8K_MARKER, BOXED, FINAL_ANSWER, WHOLE_ANSWER, LAST_EXPRESSION, LAST_NUMBER)
"""Names of the rules that can find an answer; a Verdict's `rule` is one of them."""

_BOX_COMMANDS = ("\\boxed", "\\fbox")
_STATEMENT = re.compile(
    r"final\s{0,5}answer|the\s{1,5}answer\s{1,5}is|\banswer\s{0,5}\**\s{0,5}:", re.IGNORECASE
)
_STATEMENT_LEAD = re.compile(r"^\**\s{0,5}(?:is\s{0,5})?:?\s{0,5}\**\s{0,5}")
# Where a statement's sentence goes on past its answer: "28, so we are done", "5. Then".
_SENTENCE_END = re.compile(r"[.;]\s|,\s{1,3}(?=[A-Za-z]{2,})(?!(?:and|or)\s{1,3}[-\d\\$(])")
# What may stand between the boxes of one run: spaces, commas, `and`/`or`, math delimiters.
_RUN_GAP = re.compile(
    r"(?:\s|[,;.$]|\\[()\[\]]|\\q?quad|\\text\{\s{0,3}(?:and|or|,)?\s{0,3}\}|\band\b|\bor\b|&)*"
)
_RUN_GAP_CHARS = 40
# Words between two boxes that say the second replaces the first ("\\boxed{5}, no, \\boxed{7}").
_REVISION = re.compile(
    r"\b(?:then|but|wait|actually|no|not|instead|correct(?:ion|ed)?|so|hence|therefore|thus|"
    r"answer|is|was|should|mistake|wrong|check|recheck)\b",
    re.IGNORECASE,
)
# A variable named just before a box: `$n = \\boxed{1,-2}$` lists the values of n, a set.
_VALUES_OF = re.compile(
    r"(?<![\\A-Za-z])[A-Za-z](?:_\{?\w{1,5}\}?)?\s{0,3}=\s{0,3}(?:\$|\\\(|\\\[)?\s{0,3}$"
)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")

Reading = Literal["boxed", "extract"]
"""How math-verify reads a candidate: as the contents of one box, or by its own extraction."""


@dataclass(frozen=True)
class Candidate:
    text: str
    reading: Reading
    rule: str
    """One of RULES."""
    as_set: bool = False
    """A list written as several answers: a run of boxes (`\\boxed{1} and \\boxed{-2}`) or the
    values of a variable (`n = \\boxed{1,-2}`). Such a gold is a set whatever `Conventions.lists`
    says; a single bare list (`10, 4, -2`) keeps its order."""


def locate_answer(text: str, fallback: str = LAST_EXPRESSION) -> list[Candidate]:
    """The places the final answer of `text` may be, best first (empty: no answer found)."""
    text = join_digit_groups(end_of_turn(text))
    candidates: list[Candidate] = []
    marker = text.rfind("####")
    if marker >= 0:
        line = _rest_of_line(text, marker + 4)
        if line:
            candidates.extend(_answer_text(line, GSM8K_MARKER))
    run = last_box_run(text)
    statement = None
    for statement in _STATEMENT.finditer(text):  # noqa: B007 - we want the last match
        pass
    boxed = []
    if run is not None:
        contents, start, _ = run
        parts = [c.strip() for c in contents if c.strip()]
        if parts:
            several = len(parts) > 1 or _VALUES_OF.search(text[max(0, start - 40) : start])
            boxed = [Candidate(", ".join(parts), "boxed", BOXED, as_set=bool(several))]
    stated = []
    if statement is not None:
        stated = [Candidate(text[statement.start() :], "extract", FINAL_ANSWER)]
        quoted = _quote(text, statement)
        if quoted and not has_words(connectors_as_commas(quoted)):
            # An answer without delimiters or words ("The answer is 3\\sqrt{13}.", "is 1,-2"):
            # math-verify's extraction sees LaTeX only inside delimiters, and would read a 3.
            stated.insert(0, Candidate(quoted, "boxed", FINAL_ANSWER))
        elif quoted:
            stated.append(Candidate(quoted, "boxed", FINAL_ANSWER))
    if run is not None and statement is not None and statement.start() > run[2]:
        candidates.extend(stated + boxed)
    else:
        candidates.extend(boxed + stated)
    if not candidates and not any(command in text for command in _BOX_COMMANDS):
        if "\n" not in text.strip():
            whole = _answer_text(text, WHOLE_ANSWER)
            if len(whole) > 1 and fallback != "none":
                # A sentence, not an answer: the world's fallback reads it ("Therefore $x \\geq
                # 5$ is the solution."), and only then the line as if boxed ("Evelyn").
                return _fallback(text, fallback) + whole[1:]
            candidates.extend(whole)
    return candidates + _fallback(text, fallback)


def _fallback(text: str, fallback: str) -> list[Candidate]:
    """The answer of a text no marker points at, by the world's convention."""
    if fallback == LAST_NUMBER:
        number = None
        for number in _NUMBER.finditer(text):  # noqa: B007 - we want the last match
            pass
        if number is not None:
            return [Candidate(number.group().replace(",", ""), "boxed", LAST_NUMBER)]
    elif fallback == LAST_EXPRESSION and text.strip():
        return [Candidate(text, "extract", LAST_EXPRESSION)]
    return []


def _answer_text(answer: str, rule: str) -> list[Candidate]:
    """An answer on its own (a marker's line, a bare line): boxed, unless it has words."""
    bare = clean_sentence(answer)
    if not bare:
        return []
    boxed = Candidate(bare, "boxed", rule)
    if has_words(answer):
        # "12 apples", "$1$ and $2$", "x = 3 (she has 3 left)": math-verify's extraction finds
        # the value, in the text as written (its delimiters tell it where the math is).
        return [Candidate(answer.strip(), "extract", rule), boxed]
    return [boxed]


def extract_answer(text: str) -> tuple[str | None, str]:
    """The first place `locate_answer` would try and its rule, or (None, "no answer found").

    Pure Python, for display and tests: what math-verify then makes of it is the worker's.
    """
    candidates = locate_answer(text, fallback="none")
    if not candidates:
        return None, NO_ANSWER
    first = candidates[0]
    if first.rule == FINAL_ANSWER and first.reading == "extract":
        phrase = _STATEMENT.match(first.text)
        answer = _quote(first.text, phrase) if phrase else ""
        return (answer or None), (FINAL_ANSWER if answer else NO_ANSWER)
    return first.text, first.rule


def _quote(text: str, statement: re.Match) -> str:
    """The answer a statement quotes: the rest of its line up to the end of the sentence."""
    rest = _STATEMENT_LEAD.sub("", _rest_of_line(text, statement.end()))
    end = _SENTENCE_END.search(rest)
    return clean_sentence(rest[: end.start()] if end else rest)


def last_boxed(text: str) -> str | None:
    """The contents of the last `\\boxed{...}` or `\\fbox{...}` whose braces close, else None."""
    boxes = _boxes(text)
    return text[boxes[-1][0] + 1 : boxes[-1][1]] if boxes else None


def last_box_run(text: str) -> tuple[list[str], int, int] | None:
    """The contents of the last run of boxes with only separators between them, with the run's
    start and end positions; None when the text has no closed box."""
    boxes = _boxes(text)
    if not boxes:
        return None
    first = len(boxes) - 1
    while first > 0:
        gap_start, gap_end = boxes[first - 1][1] + 1, boxes[first][2]
        if not _joins_boxes(text[gap_start:gap_end]):
            break
        first -= 1
    run = boxes[first:]
    return [text[open_ + 1 : close] for open_, close, _ in run], run[0][2], run[-1][1]


def _joins_boxes(gap: str) -> bool:
    """Whether the text between two boxes makes them one answer: only separators
    (`, `, `and`, `\\quad`, math delimiters), or a few words on one line that label the parts
    ("papers and", "for part (a) and", "\\) and \\( y_2 =") without revising the first."""
    if _RUN_GAP.fullmatch(gap):
        return True
    return (
        len(gap) <= _RUN_GAP_CHARS
        and not any(c in gap for c in "\n.!?:")
        and _REVISION.search(gap) is None
    )


def _boxes(text: str) -> list[tuple[int, int, int]]:
    """(open brace, close brace, command start) of each box whose braces close, in order."""
    starts = []
    for command in _BOX_COMMANDS:
        at = text.find(command)
        while at >= 0:
            brace = at + len(command)
            while brace < len(text) and text[brace] == " ":
                brace += 1
            if brace < len(text) and text[brace] == "{":
                starts.append((brace, at))
            at = text.find(command, at + 1)
    if not starts:
        return []
    closes = _matching_braces(text)
    boxes = [(brace, closes[brace], at) for brace, at in sorted(starts) if brace in closes]
    # A box inside another box is part of it, not an answer of its own.
    outer: list[tuple[int, int, int]] = []
    for box in boxes:
        if not outer or box[0] > outer[-1][1]:
            outer.append(box)
    return outer


def _matching_braces(text: str) -> dict[int, int]:
    """Position of each `{` that closes -> position of its `}`; escaped `\\{` `\\}` are skipped."""
    closes: dict[int, int] = {}
    stack: list[int] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in "{}":
            i += 2  # a literal brace in LaTeX (`\{1, 2\}`) is content, not grouping
            continue
        if c == "{":
            stack.append(i)
        elif c == "}" and stack:
            closes[stack.pop()] = i
        i += 1
    return closes


def _rest_of_line(text: str, start: int) -> str:
    end = text.find("\n", start)
    return text[start : end if end >= 0 else len(text)].strip()


def gsm8k_gold(answer_field: str) -> str:
    """GSM8K's gold final answer: the text after the last `####`, without thousands commas."""
    marker = answer_field.rfind("####")
    if marker < 0:
        raise ValueError("a GSM8K answer field ends with '#### <answer>'; no '####' found")
    return answer_field[marker + 4 :].strip().replace(",", "")


def math_gold(record: dict[str, Any]) -> str:
    """MATH's gold final answer: the record's `answer`, else the last boxed of its `solution`."""
    answer = record.get("answer")
    if isinstance(answer, str) and answer.strip():
        return answer.strip()
    boxed = last_boxed(record.get("solution") or "")
    if boxed is None:
        raise ValueError("a MATH record needs an 'answer' or a \\boxed{} in its 'solution'")
    return boxed.strip()
