"""What counts as the same answer: the verifier's conventions, and each real world's.

The conventions are math-verify's but for lists, pinned by the tests:

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

A stage that judges real-world answers carries `verifier_identity` (VERIFIER_VERSION and the
conventions, with the spec's `world.verify` applied) in its config, so changing either judges
again. Pure Python.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Literal

from runners.judging.answers import LAST_EXPRESSION, LAST_NUMBER

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
the conventions it used): raise it when a change to runners/judging/ (equivalence, comparison,
answers)
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
