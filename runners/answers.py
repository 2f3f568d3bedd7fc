"""Final-answer extraction from model solutions and gold records.

`extract_answer(text)` tries these rules in order and returns the answer with the rule's name:

1. ``gsm8k``: the text after the last ``####`` marker, to the end of its line (GSM8K's format).
2. ``boxed``: the contents of the last brace-matched ``\\boxed{...}`` or ``\\fbox{...}`` (MATH's
   format). Nested braces are matched; an unclosed box is skipped for the one before it.
3. ``answer is``: what follows the last "the answer is" / "the final answer is" (any case), to
   the end of its line, without a trailing period or ``$...$`` wrapper.

When none applies the answer is None and the reason "no answer found".

Everything here is linear in the length of the text: the braces are matched in one pass with a
stack, and the only regular expression is a fixed phrase, so a megabyte of adversarial text costs
milliseconds, never a backtracking blow-up. Pure Python; no sympy.
"""

from __future__ import annotations

import re
from typing import Any

NO_ANSWER = "no answer found"
_BOX_COMMANDS = ("\\boxed", "\\fbox")
_ANSWER_IS = re.compile(r"the\s{1,5}(?:final\s{1,5})?answer\s{1,5}is\s{0,5}:?", re.IGNORECASE)


def extract_answer(text: str) -> tuple[str | None, str]:
    """The final answer in `text` and the rule that found it, or (None, "no answer found")."""
    marker = text.rfind("####")
    if marker >= 0:
        answer = _rest_of_line(text, marker + 4)
        if answer:
            return answer, "gsm8k"
    boxed = last_boxed(text)
    if boxed is not None and boxed.strip():
        return boxed.strip(), "boxed"
    last = None
    for last in _ANSWER_IS.finditer(text):  # noqa: B007 - we want the last match
        pass
    if last is not None:
        answer = clean_sentence(_rest_of_line(text, last.end()))
        if answer:
            return answer, "answer is"
    return None, NO_ANSWER


def last_boxed(text: str) -> str | None:
    """The contents of the last `\\boxed{...}` or `\\fbox{...}` whose braces close, else None."""
    starts = []
    for command in _BOX_COMMANDS:
        at = text.find(command)
        while at >= 0:
            brace = at + len(command)
            while brace < len(text) and text[brace] == " ":
                brace += 1
            if brace < len(text) and text[brace] == "{":
                starts.append(brace)
            at = text.find(command, at + 1)
    if not starts:
        return None
    closes = _matching_braces(text)
    for brace in sorted(starts, reverse=True):
        close = closes.get(brace)
        if close is not None:
            return text[brace + 1 : close]
    return None


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


def drop_thousands_separators(text: str) -> str:
    """`1,450,000` -> `1450000`; commas between other things (`(1,2)`, `1,23`) stay."""
    return _THOUSANDS.sub("", text)


_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def _rest_of_line(text: str, start: int) -> str:
    end = text.find("\n", start)
    return text[start : end if end >= 0 else len(text)].strip()


def clean_sentence(answer: str) -> str:
    """Drop what a sentence wraps an answer in: a trailing period, `$...$`, `\\(...\\)`."""
    answer = answer.strip()
    while answer.endswith((".", " ")) and not answer.endswith("..."):
        answer = answer[:-1].rstrip()
    if len(answer) >= 2 and answer.startswith("$") and answer.endswith("$"):
        answer = answer.strip("$").strip()
    elif answer.startswith("\\(") and answer.endswith("\\)"):
        answer = answer[2:-2].strip()
    return answer


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
