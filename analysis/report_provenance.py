"""The report's last sections: how the data came to be (plan, spec) and which code made it.

For an experiment, the spec saved with the run (spec.json), the plan it expands to with the
estimated cost of its finished steps beside their measured wall time (scaler.cost_view), and
what the store's ``steps`` table says about the steps' commits, hosts, times and package versions;
for points from a CSV, a note that there is none of that.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from analysis.report_page import Html, facts_table, section
from analysis.report_page import escape as _e
from analysis.result import ScalingAnalysis
from scaler.errors import ScalerError
from scaler.layout import Layout


def plan_and_spec(layout: Layout) -> str:
    spec_path = layout.spec_file
    if not spec_path.is_file():
        body = f'<p class="muted">No spec.json in {_e(str(layout.root))}.</p>'
        return section("plan", "Plan & spec", body)
    spec = json.loads(spec_path.read_text())
    # spec.json is stored with sorted keys; the name and the description read best first.
    spec = {key: spec[key] for key in ("experiment", "description") if key in spec} | spec
    text = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=96)
    body = (
        f"<pre>{_e(_plan_text(layout, spec, spec_path))}</pre>"
        f"<details><summary>The spec ({_e(str(spec_path))}, as YAML)</summary>"
        f"<pre>{_e(text)}</pre></details>"
    )
    return section("plan", "Plan & spec", body)


def _plan_text(layout: Layout, spec: dict[str, Any], spec_path: Path) -> str:
    # The one place analysis/ reads the planner: an experiment's report shows the plan its spec
    # expands to, as `scaler plan` prints it, so the page says which steps made the points. The
    # imports are here, not at the top, as only this section needs them; scaler's own modules
    # never import the report.
    from scaler.cost_view import measured_lines, price
    from scaler.plan import expand
    from scaler.spec.schema import Spec
    from scaler.status import describe_plan, step_states

    try:
        validated = Spec.model_validate(spec)
        plan = expand(validated)
    except (ValueError, ScalerError) as error:  # a spec of an older schema still gets a report
        return f"the plan could not be rebuilt from {spec_path}: {error}"
    # The estimate beside what the finished steps took, as `scaler status` shows it.
    cost = price(validated, plan)
    states = step_states(plan, layout, as_status=False).states
    measured = measured_lines(plan, cost, layout, states)
    return "\n".join([describe_plan(plan, layout, source=str(spec_path)), "", *measured])


def csv_source(analysis: ScalingAnalysis) -> str:
    body = (
        f"<p>The points were read from <code>{_e(analysis.data)}</code>, not from an "
        "experiment's results, so there is no plan, spec or step provenance.</p>"
    )
    return section("plan", "Data", body)


def provenance(analysis: ScalingAnalysis, layout: Layout | None) -> str:
    parts = []
    if layout is not None:
        parts.append("<h3>Steps</h3>" + _step_provenance(layout))
    settings = {k: _setting(v) for k, v in analysis.fit_settings().items()}
    settings["scaler version"] = _version("scaler")
    parts.append("<h3>Analysis</h3>" + facts_table(settings))
    return section("provenance", "Provenance", "".join(parts))


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
    return facts_table(
        {
            "steps": facts["steps"],
            "git commit": Html(commits),
            "git tree": Html(tree),
            "hosts": ", ".join(f"{host or 'unknown'} ({n:,})" for host, n in facts["hosts"]),
            "first start": facts["first_start"] or "unknown",
            "last end": facts["last_end"] or "unknown",
            "total step wall time": _duration(facts["wall_s"]),
            "spec hash": ", ".join(
                f"{h or 'unknown'} ({n:,} steps)" for h, n in facts["spec_hashes"]
            ),
            "packages (latest step)": Html(versions or "unknown"),
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


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"
