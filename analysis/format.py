"""How a figure reads, wherever a person reads it: `scaler fit`'s tables, the report, the plots.

One rule, so the same multiplier is the same text in the terminal, the page and a legend:

* ``digits`` significant digits (3 in tables, 2 in a legend): ``3.55``, ``0.0123``;
* a number that reaches 10**digits, up to 1e5, shown whole and without a thousands separator
  (a comma would read as a list inside ``[low, high]``): ``1234``, ``72855``;
* beyond 1e5 or below 1e-3, scientific with the same digits: ``8.00e-11``, ``1.23e+05``;
* ``∞`` and ``-∞`` for infinities (a multiplier whose arm beats every baseline size), ``–`` for
  no value (None or nan: an interval that could not be drawn).
"""

from __future__ import annotations

import math
from typing import Any

NONE = "–"
_PLAIN_UP_TO = 1e5
_PLAIN_DOWN_TO = 1e-3


def number(value: Any, digits: int = 3) -> str:
    """``value`` by the module's rule."""
    if value is None or math.isnan(float(value)):
        return NONE
    value = float(value)
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if value == 0:
        return "0"
    rounded = abs(float(f"{value:.{digits}g}"))
    if rounded >= _PLAIN_UP_TO or abs(value) < _PLAIN_DOWN_TO:
        return f"{value:.{digits - 1}e}"
    if rounded >= 10**digits:
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def estimate(value: Any, low: Any, high: Any, digits: int = 3) -> str:
    """``3.55 [1.37, 8.58]``; the value alone where there is no interval."""
    if _missing(low) or _missing(high):
        return number(value, digits)
    return f"{number(value, digits)} [{number(low, digits)}, {number(high, digits)}]"


def percent(share: float | None, *, signed: bool = False) -> str:
    """A share as a percentage with one decimal, ``+12.5%`` when ``signed``."""
    if share is None or math.isnan(share):
        return NONE
    return f"{share:+.1%}" if signed else f"{share:.1%}"


def size(value: float) -> str:
    """A data size: a whole number with thousands separators, ``4,000`` (it stands alone)."""
    return f"{value:,.0f}" if float(value).is_integer() else number(value)


def math_number(value: Any, digits: int = 2) -> str:
    """:func:`number` as matplotlib mathtext: ``3.4\\times10^{5}`` for ``3.4e+05``."""
    text = number(value, digits)
    if text in ("∞", "-∞"):
        return text.replace("∞", r"\infty")
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    return rf"{mantissa}\times10^{{{int(exponent)}}}"


def _missing(value: Any) -> bool:
    return value is None or math.isnan(float(value))
