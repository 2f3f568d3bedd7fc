"""Distinct reasoning paths (Yuan et al. 2023): two correct solutions are one path when they state
the same sequence of equations.

GSM8K-style solutions carry calculator annotations (`<<48/2=24>>`): their equations are those.
Elsewhere a solution's equations are its runs of numbers and operators around an `=`, reduced
to numbers, operators and `=` (spaces, `$` and thousands commas dropped, `×`/`÷` written
`*`/`/`), so rewording the prose around the same computation does not make a new path: the
real worlds' key (runners.worlds.real). The demo world has exact step truth and its own key
(runners.judging.demo_checker.path_key). Pure Python.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from runners.judging.answer_text import drop_thousands_separators

_ANNOTATION = re.compile(r"<<([^<>]*)>>")
_KEEP = set("0123456789+-*/=().^")
# A run of numbers, operators and `=` that starts with a number (or `$`, `(`) and holds an `=`.
_EQUATION = re.compile(r"[\d$(][\d $,.+\-*/×÷^()]*=[\d $,.+\-*/×÷^()=]*")


def reasoning_path(text: str) -> tuple[str, ...]:
    """The normalised sequence of equations `text` states."""
    equations = _ANNOTATION.findall(text) or _EQUATION.findall(text)
    path = []
    for equation in equations:
        equation = drop_thousands_separators(equation.replace("×", "*").replace("÷", "/"))
        kept = "".join(c for c in equation if c in _KEEP).strip(".")
        if "=" in kept:
            path.append(kept)
    return tuple(path)


def distinct_paths(
    solutions: Sequence[Any], key: Callable[[Any], tuple[str, ...]] = reasoning_path
) -> list[int]:
    """Indices of the first solution of each distinct path, in order."""
    seen: set[tuple[str, ...]] = set()
    kept = []
    for index, solution in enumerate(solutions):
        path = key(solution)
        if path not in seen:
            seen.add(path)
            kept.append(index)
    return kept
