"""Write a scaling analysis into the experiment's DuckDB, so `scaler query` reaches it.

An analysis is keyed by its settings (metric, eval set, form, baseline, sizes, resamples,
confidence, seed and the fit settings): running the same analysis again, after more steps were
collected, replaces its rows; an analysis with other settings is kept beside it. The tables
(`analyses`, `fits`, `multipliers`, `size_means`, `shared_fits`) are the analysis' own
migrations (analysis.schema), applied here before the first write.
"""

from __future__ import annotations

import json
import math
from typing import Any

from analysis.result import ScalingAnalysis, SharedFit, flat_params
from analysis.schema import ANALYSIS_MIGRATIONS

# An analysis is keyed as a step is: the canonical hash of what determines it (STYLE item 2).
from scaler.fingerprint import content_hash
from scaler.layout import Layout

_TABLES = ("analyses", "fits", "multipliers", "size_means", "shared_fits")


def analysis_id(analysis: ScalingAnalysis) -> str:
    return content_hash({"data": analysis.data, "settings": analysis.fit_settings()})


def save_analysis(layout: Layout, analysis: ScalingAnalysis) -> str:
    """Replace this analysis's rows in the store; return its id."""
    from scaler.store import connect, migrate

    key = analysis_id(analysis)
    rows = {
        "analyses": [_analysis_row(key, analysis)],
        "fits": _fit_rows(key, analysis),
        "multipliers": [
            {
                "analysis_id": key,
                "arm": m.arm,
                "baseline": m.baseline,
                "form": analysis.settings.form,
                "size": m.size,
                "multiplier": m.value,
                "low": _number(m.low),
                "high": _number(m.high),
                "extrapolated": m.extrapolated,
                "unbounded_share": m.unbounded_share,
                "method": m.method,
            }
            for m in analysis.multipliers
        ],
        "shared_fits": [_shared_row(key, fit) for fit in analysis.shared],
        "size_means": [
            {"analysis_id": key, "arm": arm.arm, **{k: _number(v) for k, v in vars(m).items()}}
            for arm in analysis.arms
            for m in arm.means
        ],
    }
    con = connect(layout)
    try:
        migrate(con, ANALYSIS_MIGRATIONS)
        con.execute("BEGIN")
        for table in _TABLES:
            con.execute(f"DELETE FROM {table} WHERE analysis_id = ?", [key])
            if rows[table]:
                con.register("new_rows", _arrow_table(rows[table]))
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM new_rows")
                con.unregister("new_rows")
        con.execute("COMMIT")
    finally:
        con.close()
    return key


def _analysis_row(key: str, analysis: ScalingAnalysis) -> dict[str, Any]:
    from datetime import datetime, timezone

    settings = analysis.settings
    return {
        "analysis_id": key,
        "created_at": datetime.now(timezone.utc),
        "data": analysis.data,
        "eval_set": settings.eval_set,
        "metric": analysis.metric,
        "higher_is_better": analysis.higher_is_better,
        "form": settings.form,
        "baseline": settings.baseline,
        "resamples": analysis.resamples,
        "confidence": settings.confidence,
        "seed": settings.seed,
        "n_points": analysis.n_points,
        "eval_size": analysis.eval_size,
        "settings": json.dumps(analysis.fit_settings()),
        "warnings": json.dumps(analysis.warnings),
    }


def _fit_rows(key: str, analysis: ScalingAnalysis) -> list[dict[str, Any]]:
    rows = []
    for arm in analysis.arms:
        for form, fit in arm.fits.items():
            row: dict[str, Any] = {
                "analysis_id": key,
                "arm": arm.arm,
                "source": arm.facets.get("source"),
                "algorithm": arm.facets.get("algorithm"),
                "form": form,
                "n_points": arm.n_points,
                "n_sizes": len(arm.sizes),
                "size_min": min(arm.sizes),
                "size_max": max(arm.sizes),
                "converged": fit.converged,
                "formula": fit.formula,
                "warnings": json.dumps(fit.warnings),
            }
            row |= {k: _number(v) for k, v in flat_params(fit.params, fit.intervals).items()}
            row |= {name: _number(value) for name, value in fit.quality.items()}
            rows.append(row)
    return rows


def _shared_row(key: str, fit: SharedFit) -> dict[str, Any]:
    row: dict[str, Any] = {
        "analysis_id": key,
        "arm": fit.arm,
        "baseline": fit.baseline,
        "loss": fit.loss,
        "huber_delta": fit.delta,
        "f_statistic": fit.f_statistic,
        "p_value": fit.p_value,
        "converged": fit.converged,
        "warnings": json.dumps(fit.warnings),
    }
    return row | {k: _number(v) for k, v in flat_params(fit.params, fit.intervals).items()}


def _arrow_table(rows: list[dict[str, Any]]):
    """Rows with different keys (a power fit has E, a log-linear one a) as one table: pyarrow
    would take the columns from the first row alone."""
    import pyarrow as pa

    columns = list(dict.fromkeys(key for row in rows for key in row))
    return pa.Table.from_pylist([{key: row.get(key) for key in columns} for row in rows])


def _number(value: Any) -> Any:
    """NaN (an interval that could not be drawn) is stored as NULL; infinity stays."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
