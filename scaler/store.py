"""The results store: every finished step of an experiment, loaded into one DuckDB file.

Jobs never open the database (DuckDB has one writer); they leave result.json and Parquet in their
step directories, and `collect` loads the steps it has not loaded before, keyed by step id, in
one transaction. Loading twice changes nothing. The schema evolves through named migrations,
applied in order and recorded in `schema_migrations`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runners.files import ROW_FILES
from scaler.errors import ArgumentError, ScalerError
from scaler.layout import Layout, read_json

MIGRATIONS: list[tuple[str, str]] = [
    (
        "001_initial",
        """
        CREATE TABLE steps (
            step_id VARCHAR PRIMARY KEY, name VARCHAR, stage VARCHAR, experiment VARCHAR,
            world VARCHAR, model VARCHAR, source VARCHAR, algorithm VARCHAR,
            size INTEGER, seed INTEGER, eval_set VARCHAR,
            config JSON, inputs JSON, metrics JSON,
            started_at TIMESTAMPTZ, ended_at TIMESTAMPTZ, wall_s DOUBLE,
            host VARCHAR, git_commit VARCHAR, git_dirty BOOLEAN, versions JSON, spec_hash VARCHAR,
            path VARCHAR
        );
        CREATE TABLE metrics (
            step_id VARCHAR, stage VARCHAR, name VARCHAR, value DOUBLE,
            PRIMARY KEY (step_id, name)
        );
        CREATE TABLE eval_problems (
            step_id VARCHAR, problem_id INTEGER, correct BOOLEAN, false_positive BOOLEAN,
            first_wrong_step INTEGER, n_steps INTEGER, pred_answer VARCHAR, gold_answer VARCHAR,
            output VARCHAR,
            PRIMARY KEY (step_id, problem_id)
        );
        CREATE VIEW evals AS
        SELECT s.step_id, s.experiment, s.world, s.model, s.source, s.algorithm, s.size, s.seed,
               s.eval_set, m.accuracy, m.false_positive_rate, m.n, s.inputs->>'$.model' AS train_id
        FROM steps s
        JOIN (PIVOT (SELECT step_id, name, value FROM metrics WHERE stage = 'evaluate')
              ON name IN ('accuracy', 'false_positive_rate', 'n') USING first(value)) m
          USING (step_id)
        WHERE s.stage = 'evaluate';
        """,
    ),
    (
        "002_samples_and_votes",
        """
        ALTER TABLE eval_problems ADD COLUMN reason VARCHAR;
        ALTER TABLE eval_problems ADD COLUMN n_tokens INTEGER;
        ALTER TABLE eval_problems ADD COLUMN n_samples INTEGER;
        ALTER TABLE eval_problems ADD COLUMN n_correct INTEGER;
        ALTER TABLE eval_problems ADD COLUMN pass_at_k BOOLEAN;
        ALTER TABLE eval_problems ADD COLUMN maj_at_k BOOLEAN;
        CREATE TABLE samples (
            step_id VARCHAR, problem_id INTEGER, sample_id INTEGER, extracted VARCHAR,
            correct BOOLEAN, reason VARCHAR, false_positive BOOLEAN, first_wrong_step INTEGER,
            n_tokens INTEGER, text VARCHAR,
            PRIMARY KEY (step_id, problem_id, sample_id)
        );
        CREATE OR REPLACE VIEW evals AS
        SELECT s.step_id, s.experiment, s.world, s.model, s.source, s.algorithm, s.size, s.seed,
               s.eval_set, m.accuracy, m.false_positive_rate, m.n, s.inputs->>'$.model' AS train_id,
               m.pass_at_k, m.maj_at_k, m.k
        FROM steps s
        JOIN (PIVOT (SELECT step_id, name, value FROM metrics WHERE stage = 'evaluate')
              ON name IN ('accuracy', 'false_positive_rate', 'n', 'pass_at_k', 'maj_at_k', 'k')
              USING first(value)) m
          USING (step_id)
        WHERE s.stage = 'evaluate';
        """,
    ),
    (
        "003_data_metrics_and_pits",
        """
        CREATE TABLE pits (
            step_id VARCHAR, problem_id INTEGER, sample_id INTEGER, n_steps INTEGER,
            q_values VARCHAR, pit INTEGER, pit_setlur INTEGER, pit_no_success INTEGER,
            true_pit INTEGER, paired BOOLEAN,
            PRIMARY KEY (step_id, problem_id, sample_id)
        );
        CREATE VIEW data_metrics AS
        SELECT v.step_id, v.experiment, v.world, v.model AS sampler, v.source, v.size, v.seed,
               v.inputs->>'$.candidates' AS candidates_id,
               m.k, m.problems, m.pass_rate, m.coverage_at_k, m.diversity_at_k,
               m.false_positive_rate, m.mean_tokens, g.params, g.sampling_flops,
               g.flops_per_problem
        FROM steps v
        JOIN (PIVOT (SELECT step_id, name, value FROM metrics WHERE stage = 'verify')
              ON name IN ('k', 'problems', 'pass_rate', 'coverage_at_k', 'diversity_at_k',
                          'false_positive_rate', 'mean_tokens')
              USING first(value)) m USING (step_id)
        LEFT JOIN (PIVOT (SELECT step_id, name, value FROM metrics WHERE stage = 'sample')
              ON name IN ('params', 'sampling_flops', 'flops_per_problem')
              USING first(value)) g ON g.step_id = v.inputs->>'$.candidates'
        WHERE v.stage = 'verify';
        CREATE VIEW first_pits AS
        SELECT s.step_id, s.experiment, s.source, s.size, s.seed,
               s.config->>'$.pit' AS rule, m.negatives, m.pairs, m.first_pit_accuracy,
               m.first_pit_accuracy_setlur, m.first_pit_accuracy_no_success
        FROM steps s
        JOIN (PIVOT (SELECT step_id, name, value FROM metrics WHERE stage = 'build')
              ON name IN ('negatives', 'pairs', 'first_pit_accuracy',
                          'first_pit_accuracy_setlur', 'first_pit_accuracy_no_success')
              USING first(value)) m USING (step_id)
        WHERE s.stage = 'build' AND s.config->>'$.kind' = 'per_step_dpo';
        """,
    ),
    # 004_scaling_analyses and 005_shared_fits_and_single_points are the analysis' own tables,
    # declared with it (analysis/schema.py) and applied when an analysis is saved.
    (
        "006_verdict_rule",
        """
        ALTER TABLE samples ADD COLUMN rule VARCHAR;
        ALTER TABLE eval_problems ADD COLUMN rule VARCHAR;
        """,
    ),
]

# ROW_FILES (runners.files): the per-row Parquet files a step may leave, and the table each is
# loaded into; the migrations' tables hold their columns (runners.files.ROW_COLUMNS).

COORDINATES = ("world", "model", "source", "algorithm", "size", "seed", "eval_set")
PROVENANCE = ("started_at", "ended_at", "wall_s", "host", "git_commit", "git_dirty", "spec_hash")
STEP_COLUMNS = [
    "step_id", "name", "stage", "experiment", *COORDINATES, "config", "inputs", "metrics",
    *PROVENANCE, "versions", "path",
]  # fmt: skip


@dataclass(frozen=True)
class CollectReport:
    loaded: int
    total: int
    database: Path
    damaged: Path | None = None
    """Where a database that could not be opened was moved before this one was rebuilt."""

    def line(self) -> str:
        said = f"collected {self.loaded} new steps into {self.database} ({self.total} in all)"
        if self.damaged is not None:
            said = (
                f"rebuilt {self.database} from the step folders (the damaged file is now "
                f"{self.damaged}); " + said
            )
        return said


class DamagedStore(ScalerError):
    """The database file cannot be opened as a DuckDB database (empty, truncated, not one)."""


def connect(layout: Layout, *, read_only: bool = False, config: dict | None = None):
    import duckdb

    if read_only and not layout.database.is_file():
        raise FileNotFoundError(layout.database)
    layout.root.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(layout.database), read_only=read_only, config=config or {})
    except duckdb.IOException as error:
        first = str(error).splitlines()[0]
        if "lock" in first.lower():
            # DuckDB has one writer: another scaler process is collecting into this file.
            raise ScalerError(
                f"{layout.database} is in use by another process ({first}); "
                "try again when it is done"
            ) from None
        raise DamagedStore(
            f"{layout.database} is damaged ({first}); `scaler collect` moves it aside and "
            "rebuilds it from the step folders"
        ) from None
    if not read_only:
        migrate(con)
    return con


def migrate(con, migrations: list[tuple[str, str]] = MIGRATIONS) -> list[str]:
    """Apply the ``migrations`` this database has not seen, in order; return their names.

    The store's own tables are MIGRATIONS; the analysis applies its tables' list
    (analysis.schema) through this same runner, so both are recorded in schema_migrations."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ)"
    )
    applied = {row[0] for row in con.execute("SELECT name FROM schema_migrations").fetchall()}
    new = [(name, sql) for name, sql in migrations if name not in applied]
    for name, sql in new:
        con.execute("BEGIN")
        con.execute(sql)
        con.execute("INSERT INTO schema_migrations VALUES (?, now())", [name])
        con.execute("COMMIT")
    return [name for name, _ in new]


def collect(layout: Layout, *, rebuild: bool = False) -> CollectReport:
    """Load every finished step not yet in the database. The database is a cache of the step
    folders: one that cannot be opened (or any, with `rebuild`) is moved aside and rebuilt."""
    damaged = _move_aside(layout) if rebuild and layout.database.exists() else None
    try:
        con = connect(layout)
    except DamagedStore:
        damaged = _move_aside(layout)
        con = connect(layout)
    try:
        known = {row[0] for row in con.execute("SELECT name FROM steps").fetchall()}
        new_dirs = [d for d in layout.finished_dirs() if d.name not in known]
        if new_dirs:
            _load(con, new_dirs)
        total = con.execute("SELECT count(*) FROM steps").fetchone()[0]
    finally:
        con.close()
    return CollectReport(len(new_dirs), total, layout.database, damaged)


def _move_aside(layout: Layout) -> Path:
    """Rename the database (and its write-ahead log) to `<name>.damaged-<UTC time>`: kept for
    a look, never read again."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = layout.database.with_name(f"{layout.database.name}.damaged-{stamp}")
    layout.database.rename(aside)
    wal = layout.database.with_name(layout.database.name + ".wal")
    if wal.exists():
        wal.rename(aside.with_name(aside.name + ".wal"))
    return aside


def _load(con, step_dirs: list[Path]) -> None:
    import pyarrow as pa

    steps, metrics = [], []
    row_files: dict[str, list[str]] = {name: [] for name in ROW_FILES}
    for step_dir in step_dirs:
        row, step_metrics = _step_row(step_dir)
        steps.append(row)
        metrics += [
            {"step_id": row["step_id"], "stage": row["stage"], "name": k, "value": v}
            for k, v in step_metrics.items()
        ]
        for name, files in row_files.items():
            if (step_dir / name).is_file():
                files.append(str(step_dir / name))
    steps_table = pa.Table.from_pylist(steps)
    metrics_table = pa.Table.from_pylist(
        metrics,
        schema=pa.schema(
            [
                ("step_id", pa.string()),
                ("stage", pa.string()),
                ("name", pa.string()),
                ("value", pa.float64()),
            ]
        ),
    )
    con.execute("BEGIN")
    con.register("new_steps", steps_table)
    con.register("new_metrics", metrics_table)
    columns = ", ".join(STEP_COLUMNS)
    values = ", ".join(f"to_timestamp({c})" if c.endswith("_at") else c for c in STEP_COLUMNS)
    con.execute(f"INSERT INTO steps ({columns}) SELECT {values} FROM new_steps")
    con.execute("INSERT INTO metrics SELECT * FROM new_metrics")
    for name, files in row_files.items():
        if files:
            # The step id is in the folder's name: <stage>-<id>/<name>.
            con.execute(
                f"""
                INSERT INTO {ROW_FILES[name]} BY NAME
                SELECT * EXCLUDE (filename),
                       regexp_extract(filename, '-([0-9a-f]+)[/\\\\]{name}$', 1) AS step_id
                FROM read_parquet(?, filename = true, union_by_name = true)
                """,
                [files],
            )
    con.execute("COMMIT")
    con.unregister("new_steps")
    con.unregister("new_metrics")


def _step_row(step_dir: Path) -> tuple[dict[str, Any], dict[str, float]]:
    record = read_json(step_dir / "config.json")
    metrics = read_json(step_dir / "result.json")["metrics"]
    provenance = read_json(step_dir / "provenance.json")
    coords = record["coords"]
    row = {
        "step_id": record["step_id"],
        "name": record["name"],
        "stage": record["stage"],
        "experiment": provenance.get("experiment"),
        **{key: coords.get(key) for key in COORDINATES},
        "config": json.dumps(record["config"]),
        "inputs": json.dumps(
            {role: Path(p).name.split("-", 1)[1] for role, p in record["inputs"].items()}
        ),
        "metrics": json.dumps(metrics),
        **{key: provenance.get(key) for key in PROVENANCE},
        "versions": json.dumps(provenance.get("versions")),
        "path": str(step_dir),
    }
    numeric = {
        key: float(value)
        for key, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    }
    return row, numeric


SANDBOX = {
    # No file system from SQL (COPY ... TO, EXPORT DATABASE, read_csv, glob, ATTACH, INSTALL):
    # the database file itself is opened before this takes effect.
    "enable_external_access": False,
    # No SET, RESET or PRAGMA that changes a setting, so the above cannot be turned back on.
    "lock_configuration": True,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}
"""The configuration of a query's connection: it reads the experiment's tables and nothing
else on the machine, and cannot change what it may do."""


def query(layout: Layout, sql: str, params: list | None = None):
    """Run one SQL statement on a read-only, sandboxed connection (SANDBOX); return (column
    names, rows). Bad SQL, and SQL that reaches for files or settings, is an ArgumentError
    naming `sql`: one line, nothing written anywhere."""
    import duckdb

    con = connect(layout, read_only=True, config=SANDBOX)
    try:
        result = con.execute(sql, params)
        columns = [d[0] for d in result.description] if result.description else []
        return columns, result.fetchall()
    except (duckdb.PermissionException, duckdb.InvalidInputException) as error:
        first = str(error).splitlines()[0]
        if "disabled" not in first and "locked" not in first:
            raise ArgumentError("query", "sql", first) from None
        raise ArgumentError(
            "query",
            "sql",
            "refused: a query reads this experiment's tables only (no files, no ATTACH, COPY, "
            f"EXPORT or INSTALL, no settings): {first}",
        ) from None
    except duckdb.Error as error:
        raise ArgumentError("query", "sql", str(error).splitlines()[0]) from None
    finally:
        con.close()
