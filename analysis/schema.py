"""The analysis' own tables in the experiment's DuckDB, as named migrations.

``analyses`` (one row per analysis, keyed by its settings), ``fits``, ``multipliers``,
``size_means`` and ``shared_fits`` are written by :mod:`analysis.record` and read by `scaler
query` and notebooks. They are declared here, beside their only writer, and applied by the
store's own migration runner (:func:`scaler.store.migrate`) when an analysis is saved; the
names and SQL are those the store applied before the tables moved here, so a database that has
them is not migrated twice (`schema_migrations` records each name once).
"""

from __future__ import annotations

ANALYSIS_MIGRATIONS: list[tuple[str, str]] = [
    (
        "004_scaling_analyses",
        """
        CREATE TABLE analyses (
            analysis_id VARCHAR PRIMARY KEY, created_at TIMESTAMPTZ, data VARCHAR,
            eval_set VARCHAR, metric VARCHAR, higher_is_better BOOLEAN, form VARCHAR,
            baseline VARCHAR, resamples INTEGER, confidence DOUBLE, seed INTEGER,
            n_points INTEGER, eval_size INTEGER, settings JSON, warnings JSON
        );
        CREATE TABLE fits (
            analysis_id VARCHAR, arm VARCHAR, source VARCHAR, algorithm VARCHAR, form VARCHAR,
            E DOUBLE, A DOUBLE, alpha DOUBLE, intercept DOUBLE, slope DOUBLE,
            E_low DOUBLE, E_high DOUBLE, A_low DOUBLE, A_high DOUBLE,
            alpha_low DOUBLE, alpha_high DOUBLE, intercept_low DOUBLE, intercept_high DOUBLE,
            slope_low DOUBLE, slope_high DOUBLE,
            loss DOUBLE, huber_delta DOUBLE, r_squared DOUBLE, rmse_log DOUBLE,
            holdout_error DOUBLE,
            n_points INTEGER, n_sizes INTEGER, size_min DOUBLE, size_max DOUBLE,
            converged BOOLEAN, formula VARCHAR, warnings JSON,
            PRIMARY KEY (analysis_id, arm, form)
        );
        CREATE TABLE multipliers (
            analysis_id VARCHAR, arm VARCHAR, baseline VARCHAR, form VARCHAR, size DOUBLE,
            multiplier DOUBLE, low DOUBLE, high DOUBLE, extrapolated BOOLEAN,
            unbounded_share DOUBLE,
            PRIMARY KEY (analysis_id, arm, size)
        );
        CREATE TABLE size_means (
            analysis_id VARCHAR, arm VARCHAR, size DOUBLE, seeds INTEGER,
            error DOUBLE, low DOUBLE, high DOUBLE,
            PRIMARY KEY (analysis_id, arm, size)
        );
        """,
    ),
    (
        "005_shared_fits_and_single_points",
        """
        CREATE TABLE shared_fits (
            analysis_id VARCHAR, arm VARCHAR, baseline VARCHAR,
            E DOUBLE, A DOUBLE, alpha DOUBLE, m DOUBLE,
            E_low DOUBLE, E_high DOUBLE, A_low DOUBLE, A_high DOUBLE,
            alpha_low DOUBLE, alpha_high DOUBLE, m_low DOUBLE, m_high DOUBLE,
            loss DOUBLE, huber_delta DOUBLE, f_statistic DOUBLE, p_value DOUBLE,
            converged BOOLEAN, warnings JSON,
            PRIMARY KEY (analysis_id, arm)
        );
        ALTER TABLE multipliers ADD COLUMN method VARCHAR;
        """,
    ),
]
