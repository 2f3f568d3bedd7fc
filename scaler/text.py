"""Plain-text tables for the terminal: right-aligned numbers, left-aligned text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], max_rows: int = 200) -> str:
    shown = [[_cell(v) for v in row] for row in rows[:max_rows]]
    numeric = [
        all(isinstance(row[i], (int, float)) or row[i] is None for row in rows[:max_rows])
        for i in range(len(columns))
    ]
    widths = [max([len(c)] + [len(r[i]) for r in shown]) for i, c in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(cells, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [line(columns), line(["-" * w for w in widths])] + [line(r) for r in shown]
    if len(rows) > max_rows:
        out.append(f"... {len(rows) - max_rows} more rows")
    return "\n".join(out)
