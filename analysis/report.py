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
through :func:`html.escape`, and only markup built here is inserted raw (:class:`Html`); the
markup itself is :mod:`analysis.report_page`, every figure formatted by :mod:`analysis.format`.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from analysis.format import estimate, number, percent, size
from analysis.report_page import (
    Html,
    facts_table,
    figure_markup,
    html_table,
    page,
    pick_figures,
    section,
)
from analysis.report_page import escape as _e
from analysis.report_provenance import csv_source, plan_and_spec, provenance
from analysis.result import (
    FORM_FORMULAS,
    SHARED_REJECTION_LEVEL,
    ArmAnalysis,
    FormFit,
    ScalingAnalysis,
)
from scaler.layout import Layout

_PARAM_NAMES = {"alpha": "α"}


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
        plan_and_spec(layout) if layout is not None else csv_source(analysis),
        provenance(analysis, layout),
    ]
    return page(f"Scaling report: {name}", "\n".join(s for s in sections if s))


def _experiment_name(analysis: ScalingAnalysis, layout: Layout | None) -> str:
    if layout is None:
        return Path(analysis.data).stem or analysis.data
    spec = layout.spec_file
    if spec.is_file():
        return str(json.loads(spec.read_text()).get("experiment") or layout.root.name)
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
        "eval set": analysis.eval_set
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
        f'<p class="made">made {_e(made)}</p>{facts_table(facts)}</header>'
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
        return section("warnings", "Warnings", '<p class="ok">None.</p>')
    items = "".join(f"<li>{_e(w)}</li>" for w in shown)
    count = f"{len(shown)} warning{'s' if len(shown) > 1 else ''}"
    body = f'<div class="warnings"><strong>{count}</strong><ul>{items}</ul></div>'
    return section("warnings", "Warnings", body)


def _figures(figures: list[Path]) -> str:
    chosen = pick_figures(figures)
    if not chosen:
        return section("figures", "Figures", '<p class="muted">No figures.</p>')
    body = "".join(
        f"<figure>{figure_markup(path, i)}<figcaption>{_e(path.stem)}</figcaption></figure>"
        for i, path in enumerate(chosen)
    )
    return section("figures", "Figures", f'<div class="figures">{body}</div>')


def _multipliers(analysis: ScalingAnalysis) -> str:
    title = "Effective data multipliers"
    if not analysis.multipliers:
        return section("multipliers", title, '<p class="muted">No multipliers.</p>')
    rows = []
    for m in analysis.multipliers:
        flag = Html(
            '<span class="badge warn">extrapolated</span>'
            if m.extrapolated
            else '<span class="muted">within</span>'
        )
        rows.append(
            [
                m.arm,
                m.baseline,
                size(m.size),
                estimate(m.value, m.low, m.high),
                flag,
                m.method,
                percent(m.unbounded_share),
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
    table = html_table(
        ["arm", "baseline", "D", "m(D) [interval]", "fitted sizes", "method",
         "unbounded resamples"],
        rows,
        numeric={2, 3, 6},
        group_by=0,
    )  # fmt: skip
    return section("multipliers", title, f'<p class="lead">{lead}</p>{table}{_shared(analysis)}')


def _shared(analysis: ScalingAnalysis) -> str:
    """The shared-exponent fits and the test of their shared exponent."""
    if not analysis.shared:
        return ""
    rows = []
    for fit in analysis.shared:
        params = [
            f"{_e(_PARAM_NAMES.get(name, name))} = "
            f"{_e(estimate(value, *fit.intervals.get(name, (None, None))))}"
            for name, value in fit.params.items()
        ]
        rejected = fit.p_value is not None and fit.p_value < SHARED_REJECTION_LEVEL
        verdict = Html('<span class="badge warn">rejected</span>') if rejected else "not rejected"
        rows.append(
            [
                fit.arm,
                fit.baseline,
                Html('<span class="params">' + "<br>".join(params) + "</span>"),
                number(fit.f_statistic),
                number(fit.p_value),
                verdict if fit.p_value is not None else "-",
            ]
        )
    lead = (
        "Each arm fitted jointly with its baseline, "
        f"<code>{_e(FORM_FORMULAS['shared'])}</code>: m is a parameter, identified by both "
        "arms' points. F test against separate power curves (sums of squared log residuals); "
        f"p &lt; {SHARED_REJECTION_LEVEL:g}: the data reject the shared exponent."
    )
    table = html_table(
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
    table = html_table(
        ["arm", "form", "parameters [interval]", "loss", "R²", "RMS log resid.", "hold-out error",
         "converged"],
        [_fit_row(arm, fit) for arm, fit in fits],
        numeric={3, 4, 5, 6},
        group_by=0,
        shaded=[fit.form == chosen for _, fit in fits],
    )  # fmt: skip
    return section("fits", "Fits", f'<p class="lead">{lead}</p>{table}')


def _fit_row(arm: ArmAnalysis, fit: FormFit) -> list[Any]:
    params = []
    for name, value in fit.params.items():
        low, high = fit.intervals.get(name, (None, None))
        params.append(f"{_e(_PARAM_NAMES.get(name, name))} = {_e(estimate(value, low, high))}")
    quality = fit.quality
    converged = "yes" if fit.converged else Html('<span class="badge warn">no</span>')
    return [
        arm.arm,
        Html(f'{_e(fit.form)}<br><code class="formula">{_e(_formula(fit.form))}</code>'),
        Html('<span class="params">' + "<br>".join(params) + "</span>"),
        number(quality.get("loss")),
        number(quality.get("r_squared")),
        number(quality.get("rmse_log")),
        percent(quality.get("holdout_error"), signed=True),
        converged,
    ]


def _means(analysis: ScalingAnalysis) -> str:
    rows = []
    for arm in analysis.arms:
        for mean in arm.means:
            value, low, high = analysis.score_of(mean)
            drawn = math.isfinite(low) and math.isfinite(high)  # else the value alone
            shown = estimate(value, low, high) if drawn else number(value)
            rows.append([arm.arm, size(mean.size), mean.seeds, shown])
    lead = f"The seed mean of {_e(analysis.metric)} at each size, with its bootstrap interval."
    headers = ["arm", "D", "seeds", f"{analysis.metric} [interval]"]
    table = html_table(headers, rows, numeric={1, 2, 3}, group_by=0)
    return section("means", "Means per size", f'<p class="lead">{lead}</p>{table}')


# --------------------------------------------------------------------------------------------
# Small helpers.


def _formula(form: str) -> str:
    return FORM_FORMULAS.get(form, form)
