"""The report of a scaling analysis: one self-contained HTML file.

Design
------
:func:`write_report` renders a :class:`~analysis.scaling.ScalingAnalysis`, the figures drawn
from it and, for an experiment, its spec, plan and step provenance into a single HTML page that
can be mailed, archived or opened offline years later: no external stylesheet, script, font or
image. Figures are inlined (SVG as markup, PNG as a base64 data URI).

The page reads top to bottom as a reader checks a result: what was fitted and from which data,
what to distrust (warnings), the picture, the multipliers, the fits behind them, the means the
fits were made on, then how the data came to be (plan, spec) and which code made it
(provenance). Each section is one small function returning markup; every piece of text passes
through :func:`html.escape`, and only markup built here is inserted raw (:class:`_Html`).
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from collections.abc import Collection
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from analysis.scaling import (
    FORM_FORMULAS,
    SHARED_REJECTION_LEVEL,
    ArmAnalysis,
    FormFit,
    ScalingAnalysis,
)
from scaler.errors import ScalerError
from scaler.layout import Layout
from scaler.run.job import read_json

_PARAM_NAMES = {"alpha": "α"}
_FIGURE_SUFFIXES = (".svg", ".png")  # preferred first


class _Html(str):
    """Markup built here: inserted as is, where any other str is escaped."""


def write_report(
    analysis: ScalingAnalysis, layout: Layout | None, figures: list[Path], out: Path
) -> Path:
    """Write the report of ``analysis`` to ``out`` (an .html file) and return its path.

    ``layout`` is the experiment the points came from, or None for points from a CSV; ``figures``
    are image files (PNG and SVG pairs of one stem are shown once, the SVG preferred)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(analysis, layout, figures), encoding="utf-8")
    return out


def render_report(analysis: ScalingAnalysis, layout: Layout | None, figures: list[Path]) -> str:
    """The page's HTML (see :func:`write_report`)."""
    name = _experiment_name(analysis, layout)
    sections = [
        _header(analysis, name, "Plan & spec" if layout is not None else "Data"),
        _warnings(analysis),
        _figures(figures),
        _multipliers(analysis),
        _fits(analysis),
        _means(analysis),
        _plan_and_spec(layout) if layout is not None else _csv_source(analysis),
        _provenance(analysis, layout),
    ]
    return _page(f"Scaling report: {name}", "\n".join(s for s in sections if s))


def _experiment_name(analysis: ScalingAnalysis, layout: Layout | None) -> str:
    if layout is None:
        return Path(analysis.data).stem or analysis.data
    spec = layout.root / "spec.json"
    if spec.is_file():
        return str(read_json(spec).get("experiment") or layout.root.name)
    return layout.root.name


# --------------------------------------------------------------------------------------------
# Sections.


def _header(analysis: ScalingAnalysis, name: str, plan_title: str) -> str:
    settings = analysis.settings
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    resamples = f"{analysis.resamples:,}"
    if analysis.resamples != settings.resamples:
        resamples += f" (of {settings.resamples:,} asked)"
    facts = {
        "data": analysis.data,
        "metric": f"{analysis.metric} ({'higher' if analysis.higher_is_better else 'lower'} "
        "is better; fitted as an error)",
        "eval set": settings.eval_set
        + (f" ({analysis.eval_size:,} problems)" if analysis.eval_size else ""),
        "points": f"{analysis.n_points:,} models in {len(analysis.arms)} arms "
        f"({len(analysis.fitted_arms)} with a curve)",
        "form": f"{settings.form}: {_formula(settings.form)}",
        "baseline": settings.baseline or "each source's sft arm",
        "resamples": resamples,
        "confidence": f"{settings.confidence:.0%} percentile intervals",
    }
    return (
        f"<header><h1>Scaling report: {_e(name)}</h1>"
        f'<p class="made">made {_e(made)}</p>{_facts(facts)}</header>'
        f"{_nav(plan_title)}"
    )


def _nav(plan_title: str) -> str:
    links = [
        ("warnings", "Warnings"),
        ("figures", "Figures"),
        ("multipliers", "Multipliers"),
        ("fits", "Fits"),
        ("means", "Means"),
        ("plan", plan_title),
        ("provenance", "Provenance"),
    ]
    return "<nav>" + " ".join(f'<a href="#{a}">{_e(t)}</a>' for a, t in links) + "</nav>"


def _warnings(analysis: ScalingAnalysis) -> str:
    # analyse() already lists each fit's warnings; an analysis built otherwise may not.
    shown = list(analysis.warnings)
    for arm in analysis.arms:
        for form, fit in arm.fits.items():
            for warning in fit.warnings:
                line = f"{arm.arm} ({form}): {warning}"
                if line not in shown:
                    shown.append(line)
    if not shown:
        return _section("warnings", "Warnings", '<p class="ok">None.</p>')
    items = "".join(f"<li>{_e(w)}</li>" for w in shown)
    count = f"{len(shown)} warning{'s' if len(shown) > 1 else ''}"
    body = f'<div class="warnings"><strong>{count}</strong><ul>{items}</ul></div>'
    return _section("warnings", "Warnings", body)


def _figures(figures: list[Path]) -> str:
    chosen = _pick_figures(figures)
    if not chosen:
        return _section("figures", "Figures", '<p class="muted">No figures.</p>')
    body = "".join(
        f"<figure>{_figure_markup(path, i)}<figcaption>{_e(path.stem)}</figcaption></figure>"
        for i, path in enumerate(chosen)
    )
    return _section("figures", "Figures", f'<div class="figures">{body}</div>')


def _multipliers(analysis: ScalingAnalysis) -> str:
    title = "Effective data multipliers"
    if not analysis.multipliers:
        return _section("multipliers", title, '<p class="muted">No multipliers.</p>')
    rows = []
    for m in analysis.multipliers:
        flag = _Html(
            '<span class="badge warn">extrapolated</span>'
            if m.extrapolated
            else '<span class="muted">within</span>'
        )
        rows.append(
            [
                m.arm,
                m.baseline,
                _size(m.size),
                _estimate(m.value, m.low, m.high),
                flag,
                m.method,
                _percent(m.unbounded_share),
            ]
        )
    lead = (
        f"m(D) = D<sub>baseline</sub> / D: how many times more data the baseline needs to match "
        f"the arm trained on D, in the {_e(analysis.settings.form)} form, with its "
        f"{analysis.settings.confidence:.0%} interval. ∞: the arm beats every size of the "
        "baseline's fitted curve. Method: <em>curves</em> compares the two arms' fits (or, in "
        "the shared form, reads the joint fit's m); <em>single point</em> inverts the "
        "baseline's curve at an arm measured at one size."
    )
    table = _table(
        ["arm", "baseline", "D", "m(D) [interval]", "fitted sizes", "method",
         "unbounded resamples"],
        rows,
        numeric={2, 3, 6},
        group_by=0,
    )  # fmt: skip
    return _section("multipliers", title, f'<p class="lead">{lead}</p>{table}{_shared(analysis)}')


def _shared(analysis: ScalingAnalysis) -> str:
    """The shared-exponent fits and the test of their shared exponent."""
    if not analysis.shared:
        return ""
    rows = []
    for fit in analysis.shared:
        params = [
            f"{_e(_PARAM_NAMES.get(name, name))} = "
            f"{_e(_estimate(value, *fit.intervals.get(name, (None, None))))}"
            for name, value in fit.params.items()
        ]
        rejected = fit.p_value is not None and fit.p_value < SHARED_REJECTION_LEVEL
        verdict = _Html('<span class="badge warn">rejected</span>') if rejected else "not rejected"
        rows.append(
            [
                fit.arm,
                fit.baseline,
                _Html('<span class="params">' + "<br>".join(params) + "</span>"),
                _num(fit.f_statistic),
                _num(fit.p_value),
                verdict if fit.p_value is not None else "-",
            ]
        )
    lead = (
        "Each arm fitted jointly with its baseline, "
        f"<code>{_e(FORM_FORMULAS['shared'])}</code>: m is a parameter, identified by both "
        "arms' points. F test against separate power curves (sums of squared log residuals); "
        f"p &lt; {SHARED_REJECTION_LEVEL:g}: the data reject the shared exponent."
    )
    table = _table(
        ["arm", "baseline", "parameters [interval]", "F", "p", "shared exponent"],
        rows,
        numeric={3, 4},
        group_by=0,
    )
    return f'<h3>Shared-exponent fits</h3><p class="lead">{lead}</p>{table}'


def _fits(analysis: ScalingAnalysis) -> str:
    chosen = analysis.settings.form
    fits = [(arm, fit) for arm in analysis.arms for fit in arm.fits.values()]
    lead = (
        f"Every form fitted to every seed of each arm; the form the multipliers use ({_e(chosen)}) "
        "is highlighted. Hold-out error: the relative error of the largest size's mean, "
        "predicted by a fit without it."
    )
    table = _table(
        ["arm", "form", "parameters [interval]", "loss", "R²", "RMS log resid.", "hold-out error",
         "converged"],
        [_fit_row(arm, fit) for arm, fit in fits],
        numeric={3, 4, 5, 6},
        group_by=0,
        shaded=[fit.form == chosen for _, fit in fits],
    )  # fmt: skip
    return _section("fits", "Fits", f'<p class="lead">{lead}</p>{table}')


def _fit_row(arm: ArmAnalysis, fit: FormFit) -> list[Any]:
    params = []
    for name, value in fit.params.items():
        low, high = fit.intervals.get(name, (None, None))
        params.append(f"{_e(_PARAM_NAMES.get(name, name))} = {_e(_estimate(value, low, high))}")
    quality = fit.quality
    converged = "yes" if fit.converged else _Html('<span class="badge warn">no</span>')
    return [
        arm.arm,
        _Html(f'{_e(fit.form)}<br><code class="formula">{_e(_formula(fit.form))}</code>'),
        _Html('<span class="params">' + "<br>".join(params) + "</span>"),
        _num(quality.get("loss")),
        _num(quality.get("r_squared")),
        _num(quality.get("rmse_log")),
        _signed_percent(quality.get("holdout_error")),
        converged,
    ]


def _means(analysis: ScalingAnalysis) -> str:
    rows = []
    for arm in analysis.arms:
        for mean in arm.means:
            value, low, high = analysis.score_of(mean)
            if not (math.isfinite(low) and math.isfinite(high)):
                low = high = None
            rows.append([arm.arm, _size(mean.size), mean.seeds, _estimate(value, low, high)])
    lead = f"The seed mean of {_e(analysis.metric)} at each size, with its bootstrap interval."
    headers = ["arm", "D", "seeds", f"{analysis.metric} [interval]"]
    table = _table(headers, rows, numeric={1, 2, 3}, group_by=0)
    return _section("means", "Means per size", f'<p class="lead">{lead}</p>{table}')


def _plan_and_spec(layout: Layout) -> str:
    spec_path = layout.root / "spec.json"
    if not spec_path.is_file():
        body = f'<p class="muted">No spec.json in {_e(str(layout.root))}.</p>'
        return _section("plan", "Plan & spec", body)
    spec = read_json(spec_path)
    # spec.json is stored with sorted keys; the name and the description read best first.
    spec = {key: spec[key] for key in ("experiment", "description") if key in spec} | spec
    text = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=96)
    body = (
        f"<pre>{_e(_plan_text(layout, spec, spec_path))}</pre>"
        f"<details><summary>The spec ({_e(str(spec_path))}, as YAML)</summary>"
        f"<pre>{_e(text)}</pre></details>"
    )
    return _section("plan", "Plan & spec", body)


def _plan_text(layout: Layout, spec: dict[str, Any], spec_path: Path) -> str:
    from scaler.plan import expand
    from scaler.spec.schema import Spec
    from scaler.status import describe_plan

    try:
        plan = expand(Spec.model_validate(spec))
    except (ValueError, ScalerError) as error:  # a spec of an older schema still gets a report
        return f"the plan could not be rebuilt from {spec_path}: {error}"
    return describe_plan(plan, layout, source=str(spec_path))


def _csv_source(analysis: ScalingAnalysis) -> str:
    body = (
        f"<p>The points were read from <code>{_e(analysis.data)}</code>, not from an "
        "experiment's results, so there is no plan, spec or step provenance.</p>"
    )
    return _section("plan", "Data", body)


def _provenance(analysis: ScalingAnalysis, layout: Layout | None) -> str:
    parts = []
    if layout is not None:
        parts.append("<h3>Steps</h3>" + _step_provenance(layout))
    settings = {k: _setting(v) for k, v in analysis.fit_settings().items()}
    settings["scaler version"] = _version("scaler")
    parts.append("<h3>Analysis</h3>" + _facts(settings))
    return _section("provenance", "Provenance", "".join(parts))


def _step_provenance(layout: Layout) -> str:
    try:
        facts = step_provenance(layout)
    except FileNotFoundError:
        return f'<p class="muted">No results store at {_e(str(layout.database))}.</p>'
    except ScalerError as error:  # the store is being written by another process
        return f'<p class="muted">{_e(str(error))}</p>'
    if facts is None:
        return '<p class="muted">No steps collected yet.</p>'
    dirty = '<span class="badge warn">dirty</span>'
    commits = "<br>".join(
        f"<code>{_e(commit or 'unknown')}</code> ({n:,} steps"
        + (f", {from_dirty:,} with uncommitted changes)" if from_dirty else ")")
        for commit, n, from_dirty in facts["commits"]
    )
    n_dirty = sum(row[2] for row in facts["commits"])
    tree = (
        f"{dirty} {n_dirty:,} of {facts['steps']:,} steps ran from a tree with uncommitted changes"
        if n_dirty
        else "clean: every step ran from a committed tree"
    )
    versions = " · ".join(
        f"{_e(name)} <code>{_e(version)}</code>" for name, version in facts["versions"].items()
    )
    return _facts(
        {
            "steps": facts["steps"],
            "git commit": _Html(commits),
            "git tree": _Html(tree),
            "hosts": ", ".join(f"{host or 'unknown'} ({n:,})" for host, n in facts["hosts"]),
            "first start": facts["first_start"] or "unknown",
            "last end": facts["last_end"] or "unknown",
            "total step wall time": _duration(facts["wall_s"]),
            "spec hash": ", ".join(
                f"{h or 'unknown'} ({n:,} steps)" for h, n in facts["spec_hashes"]
            ),
            "packages (latest step)": _Html(versions or "unknown"),
        }
    )


def step_provenance(layout: Layout) -> dict[str, Any] | None:
    """What the ``steps`` table says about how the results were made; None when it is empty.

    commits: (commit, steps, steps from a dirty tree); hosts and spec_hashes: (value, steps);
    versions: the package versions of the step that ended last."""
    from scaler.store import connect

    con = connect(layout, read_only=True)
    try:
        # Timestamps leave DuckDB as text: fetching TIMESTAMPTZ values as Python needs pytz.
        n, first, last, wall = con.execute(
            "SELECT count(*), strftime(timezone('UTC', min(started_at)), '%Y-%m-%d %H:%M:%S UTC'), "
            "strftime(timezone('UTC', max(ended_at)), '%Y-%m-%d %H:%M:%S UTC'), sum(wall_s) "
            "FROM steps"
        ).fetchone()
        if not n:
            return None
        commits = con.execute(
            "SELECT git_commit, count(*), count(*) FILTER (WHERE git_dirty) FROM steps "
            "GROUP BY git_commit ORDER BY min(started_at) NULLS LAST"
        ).fetchall()
        hosts = con.execute(
            "SELECT host, count(*) FROM steps GROUP BY host ORDER BY count(*) DESC, host"
        ).fetchall()
        hashes = con.execute(
            "SELECT spec_hash, count(*) FROM steps GROUP BY spec_hash "
            "ORDER BY min(started_at) NULLS LAST"
        ).fetchall()
        latest = con.execute(
            "SELECT CAST(versions AS VARCHAR) FROM steps "
            "WHERE versions IS NOT NULL AND CAST(versions AS VARCHAR) != 'null' "
            "ORDER BY ended_at DESC NULLS LAST LIMIT 1"
        ).fetchone()
    finally:
        con.close()
    return {
        "steps": n,
        "commits": commits,
        "hosts": hosts,
        "first_start": first,
        "last_end": last,
        "wall_s": wall,
        "spec_hashes": hashes,
        "versions": json.loads(latest[0]) if latest else {},
    }


# --------------------------------------------------------------------------------------------
# Figures.


def _pick_figures(figures: list[Path]) -> list[Path]:
    """One file per stem, in the order given: the SVG where there is one, else the PNG."""
    by_stem: dict[Path, list[Path]] = {}
    for path in figures:
        if path.suffix.lower() in _FIGURE_SUFFIXES and path.is_file():
            by_stem.setdefault(path.with_suffix(""), []).append(path)
    return [
        min(paths, key=lambda p: _FIGURE_SUFFIXES.index(p.suffix.lower()))
        for paths in by_stem.values()
    ]


def _figure_markup(path: Path, index: int) -> str:
    if path.suffix.lower() == ".png":
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'<img src="data:image/png;base64,{data}" alt="{_e(path.stem)}">'
    return _inline_svg(path.read_text(encoding="utf-8"), prefix=f"fig{index}-")


def _inline_svg(text: str, prefix: str) -> str:
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


# --------------------------------------------------------------------------------------------
# Formatting.


def _e(text: Any) -> str:
    return html.escape(str(text))


def _num(value: float | None) -> str:
    """A number for a table: three significant digits, ∞ for infinity, – for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    value = float(value)
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if 1e3 <= magnitude < 1e5:
        return f"{value:.0f}"  # no thousands separator: it would read as a list inside [a, b]
    if magnitude < 1e-3 or magnitude >= 1e5:
        return f"{value:.2e}"
    return f"{value:.3g}"


def _estimate(value: float, low: float | None, high: float | None) -> str:
    """``3.55 [1.37, 8.58]``; the value alone without an interval."""
    if low is None or high is None or (math.isnan(low) and math.isnan(high)):
        return _num(value)
    return f"{_num(value)} [{_num(low)}, {_num(high)}]"


def _size(size: float) -> str:
    return f"{size:,.0f}" if float(size).is_integer() else _num(size)


def _percent(share: float | None) -> str:
    return "–" if share is None else f"{share:.1%}"


def _signed_percent(share: float | None) -> str:
    return "–" if share is None else f"{share:+.1%}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _setting(value: Any) -> str:
    if value is None:
        return "default"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


def _formula(form: str) -> str:
    return FORM_FORMULAS.get(form, form)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


# --------------------------------------------------------------------------------------------
# Markup.


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{body}</section>'


def _cell(value: Any) -> str:
    if isinstance(value, _Html):
        return str(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f"{value:,}"
    return _e(value)


def _table(
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

    head = "".join(f"<th{align(i)}>{_e(h)}</th>" for i, h in enumerate(headers))
    body = []
    for r, row in enumerate(rows):
        marks = []
        if group_by is not None and r > 0 and row[group_by] != rows[r - 1][group_by]:
            marks.append("first")
        if shaded and shaded[r]:
            marks.append("chosen")
        tr = f'<tr class="{" ".join(marks)}">' if marks else "<tr>"
        cells = "".join(f"<td{align(i)}>{_cell(v)}</td>" for i, v in enumerate(row))
        body.append(f"{tr}{cells}</tr>")
    grouped = ' class="grouped"' if group_by is not None else ""
    return (
        f'<div class="scroll"><table{grouped}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _facts(facts: dict[str, Any]) -> str:
    """A two-column key/value table."""
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_cell(v)}</td></tr>" for k, v in facts.items())
    return f'<div class="scroll"><table class="facts"><tbody>{rows}</tbody></table></div>'


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n"
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
