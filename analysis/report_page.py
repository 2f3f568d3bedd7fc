"""The report's markup: escaping, tables, the page and its stylesheet, inlined figures.

Design
------
A report is opened offline, mailed and archived, so the page carries everything it shows: one
stylesheet in a <style> element, no script, font or external image; figures inlined (SVG as
markup with its ids made unique, PNG as a base64 data URI). Every piece of text passes through
:func:`escape`; only markup built by :mod:`analysis.report` and this module, marked
:class:`Html`, is inserted raw.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

FIGURE_SUFFIXES = (".svg", ".png")  # preferred first


class Html(str):
    """Markup built here: inserted as is, where any other str is escaped."""


def escape(text: Any) -> str:
    return html.escape(str(text))


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{body}</section>'


def cell(value: Any) -> str:
    if isinstance(value, Html):
        return str(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f"{value:,}"
    return escape(value)


def html_table(
    headers: list[str],
    rows: list[list[Any]],
    *,
    numeric: Collection[int] = (),
    group_by: int | None = None,
    shaded: list[bool] | None = None,
) -> str:
    """A table; ``numeric`` columns right-aligned; a rule above each new value of the
    ``group_by`` column (the arm), in place of zebra rows; ``shaded`` rows highlighted."""

    def align(i: int) -> str:
        return ' class="num"' if i in numeric else ""

    head = "".join(f"<th{align(i)}>{escape(h)}</th>" for i, h in enumerate(headers))
    body = []
    for r, row in enumerate(rows):
        marks = []
        if group_by is not None and r > 0 and row[group_by] != rows[r - 1][group_by]:
            marks.append("first")
        if shaded and shaded[r]:
            marks.append("chosen")
        tr = f'<tr class="{" ".join(marks)}">' if marks else "<tr>"
        cells = "".join(f"<td{align(i)}>{cell(v)}</td>" for i, v in enumerate(row))
        body.append(f"{tr}{cells}</tr>")
    grouped = ' class="grouped"' if group_by is not None else ""
    return (
        f'<div class="scroll"><table{grouped}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def facts_table(facts: dict[str, Any]) -> str:
    """A two-column key/value table."""
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{cell(v)}</td></tr>" for k, v in facts.items())
    return f'<div class="scroll"><table class="facts"><tbody>{rows}</tbody></table></div>'


def page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>\n"
        f"<body><main>\n{body}\n</main></body></html>\n"
    )


_CSS = """
:root {
  --ink: #1f2328; --muted: #656d76; --line: #d0d7de; --zebra: #f6f8fa; --accent: #0969da;
  --warn-bg: #fff8c5; --warn-line: #d4a72c; --warn-ink: #7d4e00; --chosen: #ddf4ff;
}
* { box-sizing: border-box; }
body {
  margin: 0; color: var(--ink); background: #fff; line-height: 1.5; font-size: 15px;
  font-family: -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, "Helvetica Neue", Arial,
    "Noto Sans", "Liberation Sans", sans-serif;
}
main { max-width: 1120px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 26px; margin: 0 0 2px; }
h2 {
  font-size: 20px; margin: 40px 0 12px; padding-bottom: 6px; border-bottom: 1px solid var(--line);
}
h3 { font-size: 16px; margin: 24px 0 8px; }
h4 { font-size: 14px; margin: 16px 0 6px; color: var(--muted); }
p { margin: 8px 0; }
.made, .muted { color: var(--muted); }
.lead { color: var(--muted); font-size: 14px; max-width: 80ch; }
.ok { color: #1a7f37; }
code, pre {
  font-family: ui-monospace, SFMono-Regular, "SF Mono", Menlo, Consolas, "Liberation Mono",
    monospace;
  font-size: 13px;
}
pre {
  background: var(--zebra); border: 1px solid var(--line); border-radius: 6px; padding: 12px 14px;
  overflow-x: auto; line-height: 1.4;
}
nav {
  position: sticky; top: 0; z-index: 1; background: rgba(255, 255, 255, 0.96);
  border-bottom: 1px solid var(--line); padding: 8px 0; margin-top: 12px;
}
nav a { color: var(--accent); text-decoration: none; margin-right: 18px; font-size: 14px; }
nav a:hover { text-decoration: underline; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 14px; margin: 8px 0; }
th, td { border: 1px solid var(--line); padding: 5px 9px; text-align: left; vertical-align: top; }
thead th { background: #eaeef2; font-weight: 600; vertical-align: bottom; }
tbody tr:nth-child(even) { background: var(--zebra); }
table.grouped tbody tr:nth-child(even) { background: none; }
table.grouped tbody tr.first td { border-top: 2px solid #8c959f; }
tbody tr.chosen, table.grouped tbody tr.chosen { background: var(--chosen); }
code.formula { color: var(--muted); font-size: 12px; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
.params { font-variant-numeric: tabular-nums; white-space: nowrap; }
table.facts { min-width: 50%; }
table.facts th {
  background: var(--zebra); font-weight: 600; white-space: nowrap; color: var(--muted);
}
table.facts td { overflow-wrap: anywhere; }
.warnings {
  background: var(--warn-bg); border: 1px solid var(--warn-line); border-left-width: 6px;
  border-radius: 6px; padding: 10px 16px; color: var(--warn-ink);
}
.warnings ul { margin: 6px 0 0; padding-left: 20px; }
.warnings li { margin: 3px 0; }
.badge {
  display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 12px; font-weight: 600;
  white-space: nowrap;
}
.badge.warn {
  background: var(--warn-bg); color: var(--warn-ink); border: 1px solid var(--warn-line);
}
.figures { display: grid; gap: 20px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 12px; }
figure svg, figure img {
  display: block; width: 100%; max-width: 900px; height: auto; margin: 0 auto;
}
figcaption { color: var(--muted); font-size: 13px; text-align: center; margin-top: 6px; }
details { margin: 12px 0; }
summary { cursor: pointer; color: var(--accent); }
@media print { nav { display: none; } details > pre { display: block; } }
"""


def pick_figures(figures: list[Path]) -> list[Path]:
    """One file per stem, in the order given: the SVG where there is one, else the PNG."""
    by_stem: dict[Path, list[Path]] = {}
    for path in figures:
        if path.suffix.lower() in FIGURE_SUFFIXES and path.is_file():
            by_stem.setdefault(path.with_suffix(""), []).append(path)
    return [
        min(paths, key=lambda p: FIGURE_SUFFIXES.index(p.suffix.lower()))
        for paths in by_stem.values()
    ]


def figure_markup(path: Path, index: int) -> str:
    if path.suffix.lower() == ".png":
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'<img src="data:image/png;base64,{data}" alt="{escape(path.stem)}">'
    return inline_svg(path.read_text(encoding="utf-8"), prefix=f"fig{index}-")


def inline_svg(text: str, prefix: str) -> str:
    """The <svg> element of an SVG file, its ids made unique within the page.

    Inlined SVGs share one id space: two matplotlib figures both define clip paths and glyphs
    by id, and a reference would resolve to the other figure's definition."""
    start = text.find("<svg")
    if start < 0:
        raise ValueError("not an SVG file: no <svg> element")
    svg = re.sub(r"<metadata>.*?</metadata>", "", text[start:], flags=re.S)
    svg = re.sub(r'\bid="', f'id="{prefix}', svg)
    svg = re.sub(r'(href=")#', rf"\1#{prefix}", svg)
    return re.sub(r"url\(#", f"url(#{prefix}", svg)
