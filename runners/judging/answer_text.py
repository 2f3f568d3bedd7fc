"""An answer's text as a reader means it: the string rewrites done before math-verify reads it.

Chat tokens end a text (`end_of_turn`); LaTeX-spaced digit groups are one number
(`join_digit_groups`); a sentence's period and `$...$` are dropped (`clean_sentence`); `and`/`or`
between values make a list (`connectors_as_commas`) whose items `top_level_items` splits; words
between values make an answer text, compared as text (`has_inner_words`, `as_text`); thousands
separators and decimal commas are told apart (`drop_thousands_separators`,
`decimal_comma_as_point`). Every function is linear in the length of the text: the regular
expressions are fixed phrases or bounded character runs. Pure Python.
"""

from __future__ import annotations

import re

# Tokens a chat model emits at the end of its turn; what follows belongs to another turn.
_END_OF_TURN = re.compile(
    r"<\|(?:im_end|im_start|eot_id|endoftext|end|end_of_text|eom_id)\|>|</s>|<eos>|<end_of_turn>"
)
# Digit groups of three after a LaTeX or plain space: `25\,000`, `25{,}000`, `25,\!000`, `12 500`.
_DIGIT_GROUP = re.compile(r"(?<=\d)(?:\\,|\\!|\\ |\{,\}|,\\!|~| )(?=\d{3}(?!\d))")
_ALL_GROUPS = re.compile(r"(?<![\d.])\d{1,3}(?:(?:\\,|\\!|\\ |\{,\}|,\\!|~| )\d{3})+(?![\d.])")
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|textit|mbox|mathrm|operatorname)\s{0,3}\{([^{}]*)\}")
_ENVIRONMENT = re.compile(r"\\(?:begin|end)\s{0,3}\{[A-Za-z*]{0,20}\}")
_CONNECTOR = re.compile(r"^\s*(?:,|,?\s*and|,?\s*or)\s*$", re.IGNORECASE)
# `and`/`or` written without \text between two values: `1 and 2`, `10, 4, and -2`.
_BARE_CONNECTOR = re.compile(r"(?<=[\d})\]])\s{0,3},?\s{1,3}(?:and|or)\s{1,3}(?=[-\d\\({\[.])")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_DECIMAL_COMMA = re.compile(r"-?\d+,(?:\d{1,2}|\d{4,})")


def has_words(answer: str) -> bool:
    """Whether `answer` is prose or delimited math rather than one bare expression."""
    if any(delimiter in answer.replace("\\$", "") for delimiter in ("$", "\\(", "\\[")):
        return True
    return _WORD.search(_ENVIRONMENT.sub("", _TEXT_COMMAND.sub("", answer))) is not None


def end_of_turn(text: str) -> str:
    """`text` up to its first end-of-turn chat token (a leading one is dropped)."""
    pieces = _END_OF_TURN.split(text)
    for piece in pieces:
        if piece.strip():
            return piece
    return ""


def join_digit_groups(text: str) -> str:
    """`25\\,000`, `25{,}000`, `25,\\!000`, `12 500` -> `25000`, `12500`; lists stay lists."""
    if not any(s in text for s in (" ", "\\,", "\\!", "\\ ", "{,}", "~")):
        return text
    return _ALL_GROUPS.sub(lambda m: _DIGIT_GROUP.sub("", m.group()), text)


def has_inner_words(answer: str) -> bool:
    """Whether words stand between two values (`2\\text{ hours and }15\\text{ minutes}`), so that
    dropping them as a unit would change the answer; a leading label or a trailing unit
    (`x=\\text{...}`, `30\\text{ cm}^2`) and a bare connector (`3\\text{ or }5`) do not count."""
    for match in _TEXT_COMMAND.finditer(answer):
        words = match.group(1)
        if not re.search(r"[A-Za-z]{2,}", words) or _CONNECTOR.match(words):
            continue
        before = answer[: match.start()]
        after = re.sub(r"^\s*\^\s*(?:\{[^{}]*\}|\w)", "", answer[match.end() :])
        if re.search(r"[\dA-Za-z]", _TEXT_COMMAND.sub("", before)) and re.search(
            r"\d", _TEXT_COMMAND.sub("", after)
        ):
            return True
    return False


def as_text(answer: str) -> str:
    """An answer reduced to its words and symbols, for comparing answers that are text."""
    answer = _TEXT_COMMAND.sub(lambda m: m.group(1), answer)
    answer = re.sub(r"\\[,!;: ]|[{}$~\s]", "", answer)
    return answer.lower()


def connectors_as_commas(answer: str) -> str:
    """`3\\text{ or }5`, `10, 4, and -2` -> `3, 5`, `10, 4, -2`: a connector in words between
    values makes a list."""
    answer = _TEXT_COMMAND.sub(
        lambda m: ", " if _CONNECTOR.match(m.group(1)) else m.group(0), answer
    )
    return _BARE_CONNECTOR.sub(", ", answer)


def drop_thousands_separators(text: str) -> str:
    """`1,450,000` -> `1450000`; commas between other things (`(1,2)`, `1,23`) stay."""
    return _THOUSANDS.sub("", text)


def decimal_comma_as_point(answer: str) -> str:
    """`1000,99` -> `1000.99`, `1,22` -> `1.22`: one number whose comma is not followed by a
    group of three digits; anything else (`1,450,000`, `1, 22`, `(1,22)`) as it is."""
    if _DECIMAL_COMMA.fullmatch(answer.strip()):
        return answer.strip().replace(",", ".")
    return answer


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


def top_level_items(answer: str) -> list[str]:
    """The items of a bare list (`3, 1, 2` -> ['3', '1', '2']), split at commas and semicolons
    outside any brackets; [answer] when it is one item or is itself bracketed (a tuple, set or
    interval)."""
    answer = answer.strip()
    if answer[:1] in "([{" or answer.startswith("\\{"):
        return [answer]
    items, depth, start = [], 0, 0
    for i, c in enumerate(answer):
        if c in "([{":
            depth += 1
        elif c in ")]}" and depth:
            depth -= 1
        elif c in ",;" and depth == 0 and not _THOUSANDS.match(answer, i):
            items.append(answer[start:i].strip())
            start = i + 1
    items.append(answer[start:].strip())
    return [item for item in items if item] or [answer]
