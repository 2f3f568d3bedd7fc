"""The results store: every finished step of an experiment, loaded into one DuckDB file.

Jobs never open the database (DuckDB has one writer); they leave result.json and Parquet in their
step directories, and `collect` loads the steps it has not loaded before, keyed by step id, in
one transaction. Loading twice changes nothing. The schema evolves through named migrations,
applied in order and recorded in `schema_migrations` (scaler.migrations).

The database is a cache of the step folders, and only of those their manifests vouch for
(scaler.manifest): `collect` checks every finished folder first, moves the damaged ones aside
(they run again with the next `scaler run`), and drops from the database every step whose folder
is no longer a finished, verified step, or is a new folder of the same name (a repaired step,
told by its manifest's hash, `steps.manifest_sha256`), before loading what is new.

Sample texts are not copied (FILE_VIEWS): at 10^7-10^8 samples they are most of the bytes and
most of collect's time (benchmarks/RESULTS.md, "The results store at sampling volumes"), and are
read a few at a time. `samples` holds every sample's verdict; each read-only connection gets a
`sample_texts` view over the collected steps' own `samples.parquet` files, and a sandboxed query
that names it may read those files and nothing else (`query`).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runners.files import ROW_COLUMNS, ROW_FILES, SAMPLES
from scaler.disk_space import disk_full, says_no_space
from scaler.errors import ArgumentError, ScalerError
from scaler.layout import Layout, read_json
from scaler.manifest import StepChecks, check_step, check_steps, set_aside_damaged
from scaler.migrations import MIGRATIONS

# ROW_FILES (runners.files): the per-row Parquet files a step may leave, and the table each is
# loaded into; the migrations' tables hold their columns (runners.files.ROW_COLUMNS).

COORDINATES = ("world", "model", "source", "algorithm", "size", "seed", "eval_set")
PROVENANCE = ("started_at", "ended_at", "wall_s", "host", "git_commit", "git_dirty", "spec_hash")
STEP_COLUMNS = [
    "step_id", "name", "stage", "experiment", *COORDINATES, "config", "inputs", "metrics",
    *PROVENANCE, "versions", "path", "manifest_sha256",
]  # fmt: skip
STEP_TABLES = ("steps", "metrics", "row_files", *ROW_FILES.values())
"""Every table with rows of a step, by step_id: what dropping a step deletes from."""
SHOWN_STEPS = 3
"""Damaged steps named in collect's line; the rest are counted."""


@dataclass(frozen=True)
class FileView:
    """Columns of a step's row file that collect leaves in the file, and the view that reads
    them from there: one row per row of every collected step's file, by step_id and `keys`."""

    file: str
    view: str
    keys: tuple[str, ...]
    columns: tuple[str, ...]

    def sql(self, files: list[str]) -> str:
        """The view's SELECT over `files` (absolute paths); typed as the store's tables are,
        so a filter on a key of the table it is joined with reaches the Parquet reader (which
        skips the row groups it misses); empty and typed when there are no files."""
        types = ROW_COLUMNS[self.file]
        names = (*self.keys, *self.columns)
        if not files:
            nulls = ", ".join(f"NULL::{_SQL_TYPES[types[c]]} AS {c}" for c in names)
            return f"SELECT NULL::VARCHAR AS step_id, {nulls} WHERE false"
        listed = ", ".join("'" + path.replace("'", "''") + "'" for path in files)
        typed = ", ".join(f"{c}::{_SQL_TYPES[types[c]]} AS {c}" for c in names)
        return (
            f"SELECT {_step_id(self.file)} AS step_id, {typed} "
            f"FROM read_parquet([{listed}], filename = true)"
        )


_SQL_TYPES = {"int64": "INTEGER", "bool_": "BOOLEAN", "string": "VARCHAR"}
"""The store's column type for each Parquet type of runners.files (as its tables declare)."""

FILE_VIEWS: tuple[FileView, ...] = (
    FileView(SAMPLES, "sample_texts", ("problem_id", "sample_id"), ("text",)),
)
"""What collect does not copy, and where it is read instead (see the module)."""


def _step_id(file: str) -> str:
    """SQL for the step id of a row read with `filename = true`: <stage>-<id>/<file>."""
    return f"regexp_extract(filename, '-([0-9a-f]+)[/\\\\]{re.escape(file)}$', 1)"


@dataclass(frozen=True)
class CollectReport:
    loaded: int
    total: int
    database: Path
    damaged: Path | None = None
    """Where a database that could not be opened was moved before this one was rebuilt."""
    set_aside: tuple[tuple[str, str], ...] = ()
    """(name, reason) of each step folder that failed its check and was moved aside."""
    dropped: int = 0
    """Steps deleted from the database: their folder is gone, damaged or a new one."""

    def line(self) -> str:
        said = f"collected {self.loaded} new steps into {self.database} ({self.total} in all)"
        if self.dropped:
            said = (
                f"dropped {self.dropped} steps from the database (their folders are gone, damaged "
                "or new); " + said
            )
        if self.set_aside:
            said = damaged_steps_line(self.set_aside, "set aside") + "; " + said
        if self.damaged is not None:
            said = (
                f"rebuilt {self.database} from the step folders (the damaged file is now "
                f"{self.damaged}); " + said
            )
        return said


def damaged_steps_line(
    steps: tuple[tuple[str, str], ...] | list[tuple[str, str]], verb: str
) -> str:
    """`set aside 2 damaged steps (a: why, b: why), which scaler run runs again`."""
    named = "; ".join(f"{name}: {reason}" for name, reason in steps[:SHOWN_STEPS])
    more = f"; and {len(steps) - SHOWN_STEPS} more" if len(steps) > SHOWN_STEPS else ""
    return f"{verb} {len(steps)} damaged steps ({named}{more}), which `scaler run` runs again"


class UnloadableStep(ScalerError):
    """A step file that matches its manifest and still cannot be loaded: a bug, in the stage
    that wrote it or in the store."""


class DamagedStore(ScalerError):
    """The database file cannot be opened as a DuckDB database (empty, truncated, not one)."""


def connect(layout: Layout, *, read_only: bool = False, config: dict | None = None):
    """The experiment's database: migrated when opened to write; with the FILE_VIEWS (as
    temporary views) when opened read-only."""
    con = _open(layout, read_only, config or {})
    if read_only:
        _add_file_views(con, layout)
    else:
        migrate(con)
    return con


def _open(layout: Layout, read_only: bool, config: dict):
    import duckdb

    if read_only and not layout.database.is_file():
        raise FileNotFoundError(layout.database)
    layout.root.mkdir(parents=True, exist_ok=True)
    try:
        return duckdb.connect(str(layout.database), read_only=read_only, config=config)
    except duckdb.IOException as error:
        first = str(error).splitlines()[0]
        if says_no_space(str(error)):
            raise  # a full disk, not a damaged file: collect names the mount and cleans up
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


def _add_file_views(con, layout: Layout) -> dict[str, list[str]]:
    """Create each FILE_VIEWS view over the files of the collected steps that are still there,
    as a temporary view of this connection (the folders' place is the layout's, wherever the
    results have moved); return view -> its files. A database collected before the store kept
    `row_files` gets none: its `samples` table still holds the texts."""
    import duckdb

    try:
        rows = con.execute(
            "SELECT r.file, s.stage, s.name FROM row_files r JOIN steps s USING (step_id) "
            "WHERE r.file IN (SELECT unnest(?::VARCHAR[])) ORDER BY s.name",
            [[view.file for view in FILE_VIEWS]],
        ).fetchall()
    except duckdb.CatalogException:
        return {}
    files: dict[str, list[str]] = {}
    for view in FILE_VIEWS:
        paths = [
            os.path.abspath(layout.step_dir(stage, name) / file)
            for file, stage, name in rows
            if file == view.file
        ]
        files[view.view] = [path for path in paths if os.path.isfile(path)]
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view.view} AS {view.sql(files[view.view])}")
    return files


def migrate(con, migrations: list[tuple[str, str]] | None = None) -> list[str]:
    """Apply the ``migrations`` this database has not seen, in order; return their names.

    The store's own tables are MIGRATIONS (the default); the analysis applies its tables' list
    (analysis.schema) through this same runner, so both are recorded in schema_migrations."""
    migrations = MIGRATIONS if migrations is None else migrations
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
    """Load every finished, verified step not yet in the database (see the module).

    The database is a cache of the step folders: one that cannot be opened (or any, with
    `rebuild`) is moved aside and rebuilt. `rebuild` also checks every folder fully (hashing
    every file, scaler.manifest), the quick check otherwise. On a full disk this raises one
    line naming the mount point, and a database it was creating is removed, not left empty."""
    import duckdb

    existed = layout.database.exists()
    try:
        return _collect(layout, rebuild)
    except (duckdb.Error, OSError) as error:
        if not says_no_space(str(error)):
            raise
        if not existed:
            for path in (layout.database, _wal(layout)):
                path.unlink(missing_ok=True)
        raise ScalerError(f"collect: {disk_full(layout.root, str(error))}") from None


def _wal(layout: Layout) -> Path:
    """DuckDB's write-ahead log, beside the database."""
    return layout.database.with_name(layout.database.name + ".wal")


def _collect(layout: Layout, rebuild: bool) -> CollectReport:
    damaged = _move_aside(layout) if rebuild and layout.database.exists() else None
    try:
        con = connect(layout)
    except DamagedStore:
        damaged = _move_aside(layout)
        con = connect(layout)
    try:
        checks = check_steps(layout, full=rebuild)
        set_aside = set_aside_damaged(layout, checks)
        known = {row[0]: row[1:] for row in con.execute(
            "SELECT name, step_id, manifest_sha256 FROM steps").fetchall()}  # fmt: skip
        stale = [
            step_id
            for name, (step_id, digest) in known.items()
            if name not in checks.verified or checks.verified[name][1] != digest
        ]
        new = {
            name: verified
            for name, verified in checks.verified.items()
            if name not in known or known[name][1] != verified[1]
        }
        late = _load_verified(con, layout, stale, new)
        total = con.execute("SELECT count(*) FROM steps").fetchone()[0]
    finally:
        con.close()
    return CollectReport(
        len(new) - len(late), total, layout.database, damaged, (*set_aside, *late), len(stale)
    )


def _load_verified(
    con, layout: Layout, stale: list[str], new: dict[str, tuple[Path, str]]
) -> list[tuple[str, str]]:
    """Drop the `stale` step ids and load the `new` folders, in one transaction; return the
    steps set aside on the way.

    A file the quick check passed may still be damaged (overwritten, its mtime set back): if
    loading fails, the new folders are checked fully and the damaged ones set aside before one
    more try. A file that matches its manifest and fails to load is a bug: UnloadableStep."""
    try:
        _replace_steps(con, stale, new)
        return []
    except _LoadError:
        pass
    reasons = {name: check_step(folder, full=True) for name, (folder, _) in new.items()}
    checks = StepChecks(
        {name: entry for name, entry in new.items() if reasons[name] is None},
        {name: (new[name][0], why) for name, why in reasons.items() if why is not None},
    )
    set_aside = set_aside_damaged(layout, checks)
    try:
        _replace_steps(con, stale, checks.verified)
    except _LoadError as error:
        raise UnloadableStep(
            f"{error.path} matches its manifest but cannot be loaded ({error.why}); this is a "
            "bug in the stage that wrote it or in scaler's store"
        ) from None
    return set_aside


class _LoadError(Exception):
    def __init__(self, path: Path | str, why: str):
        self.path, self.why = path, why


def _replace_steps(con, stale: list[str], new: dict[str, tuple[Path, str]]) -> None:
    import duckdb

    con.execute("BEGIN")
    try:
        if stale:
            for table in STEP_TABLES:
                con.execute(
                    f"DELETE FROM {table} WHERE step_id IN (SELECT unnest(?::VARCHAR[]))", [stale]
                )
        if new:
            _load(con, new)
    except duckdb.Error as error:
        con.execute("ROLLBACK")
        raise _LoadError(*_unloadable(con, new, error)) from None
    except _LoadError:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _unloadable(con, new: dict[str, tuple[Path, str]], error: Exception) -> tuple[Path | str, str]:
    """Which Parquet file of `new` DuckDB cannot read, and why; only when loading them failed."""
    import duckdb

    for folder, _ in new.values():
        for name in ROW_FILES:
            if (folder / name).is_file():
                try:
                    con.execute("SELECT count(*) FROM read_parquet(?)", [str(folder / name)])
                except duckdb.Error as file_error:
                    return folder / name, str(file_error).splitlines()[0]
    return ", ".join(sorted(new)), str(error).splitlines()[0]


def _move_aside(layout: Layout) -> Path:
    """Rename the database (and its write-ahead log) to `<name>.damaged-<UTC time>`: kept for
    a look, never read again."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = layout.database.with_name(f"{layout.database.name}.damaged-{stamp}")
    layout.database.rename(aside)
    wal = _wal(layout)
    if wal.exists():
        wal.rename(aside.with_name(aside.name + ".wal"))
    return aside


def _load(con, new: dict[str, tuple[Path, str]]) -> None:
    """Insert the steps of the folders `new` (name -> folder, manifest SHA-256), in the caller's
    transaction."""
    import pyarrow as pa

    steps, metrics = [], []
    row_files: dict[str, dict[str, str]] = {name: {} for name in ROW_FILES}
    """file name -> {path: step id} of the new steps that have it"""
    for step_dir, digest in new.values():
        row, step_metrics = _step_row(step_dir)
        steps.append(row | {"manifest_sha256": digest})
        metrics += [
            {"step_id": row["step_id"], "stage": row["stage"], "name": k, "value": v}
            for k, v in step_metrics.items()
        ]
        for name, files in row_files.items():
            if (step_dir / name).is_file():
                files[str(step_dir / name)] = row["step_id"]
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
    con.register("new_steps", steps_table)
    con.register("new_metrics", metrics_table)
    try:
        columns = ", ".join(STEP_COLUMNS)
        values = ", ".join(f"to_timestamp({c})" if c.endswith("_at") else c for c in STEP_COLUMNS)
        con.execute(f"INSERT INTO steps ({columns}) SELECT {values} FROM new_steps")
        con.execute("INSERT INTO metrics SELECT * FROM new_metrics")
        for name, files in row_files.items():
            if files:
                _load_rows(con, name, files)
    finally:
        con.unregister("new_steps")
        con.unregister("new_metrics")


def _load_rows(con, name: str, files: dict[str, str]) -> None:
    """Record which steps have a `name` file (`row_files`) and copy its rows into its table,
    but for the columns a FILE_VIEWS view reads from the files."""
    con.execute(
        "INSERT INTO row_files SELECT unnest(?::VARCHAR[]), ?", [list(files.values()), name]
    )
    views = [view for view in FILE_VIEWS if view.file == name]
    left = {column for view in views for column in view.columns}
    keys = {key for view in views for key in view.keys}
    if not set(ROW_COLUMNS[name]) - left - keys:
        return  # nothing but the keys would be copied: every column is read from the files
    excluded = ", ".join(f"'{column}'" for column in sorted(left | {"filename"}))
    con.execute(
        f"""
        INSERT INTO {ROW_FILES[name]} BY NAME
        SELECT COLUMNS(lambda c: c NOT IN ({excluded})), {_step_id(name)} AS step_id
        FROM read_parquet(?, filename = true, union_by_name = true)
        """,
        [list(files)],
    )


def _step_row(step_dir: Path) -> tuple[dict[str, Any], dict[str, float]]:
    record, result, provenance = (
        _read_record(step_dir / name) for name in ("config.json", "result.json", "provenance.json")
    )
    try:
        return _row(step_dir, record, result["metrics"], provenance)
    except (KeyError, TypeError, AttributeError) as error:
        why = f"{type(error).__name__} {error} in config.json, result.json or provenance.json"
        raise _LoadError(step_dir, why) from None


def _read_record(path: Path) -> Any:
    try:
        return read_json(path)
    except (OSError, ValueError) as error:
        raise _LoadError(path, str(error)) from None


def _row(
    step_dir: Path, record: dict, metrics: dict, provenance: dict
) -> tuple[dict[str, Any], dict[str, float]]:
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
    # the database file itself is opened before this takes effect, and the files of the
    # FILE_VIEWS a query names are allowed to it (`query`).
    "enable_external_access": False,
    # No SET, RESET or PRAGMA that changes a setting, so the above cannot be turned back on.
    "lock_configuration": True,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}
"""The configuration of a query's connection: it reads the experiment's tables (and the step
files of the views it names) and nothing else on the machine, and cannot change what it may do."""
SET_AFTER_VIEWS = ("enable_external_access", "lock_configuration")
"""SANDBOX's settings applied once the connection has made its FILE_VIEWS, in this order."""


def query(layout: Layout, sql: str, params: list | None = None):
    """Run one SQL statement on a read-only, sandboxed connection (SANDBOX); return (column
    names, rows). Bad SQL, and SQL that reaches for files or settings, is an ArgumentError
    naming `sql`: one line, nothing written anywhere.

    SQL that names a FILE_VIEWS view (`sample_texts`) may read that view's step files, which
    DuckDB would also let it write (COPY ... TO): such SQL may only be SELECT statements."""
    import duckdb

    opening = {key: value for key, value in SANDBOX.items() if key not in SET_AFTER_VIEWS}
    con = _open(layout, True, opening)
    try:
        files = _add_file_views(con, layout)
        allowed = [
            path
            for view, paths in files.items()
            if re.search(rf"\b{view}\b", sql, re.IGNORECASE)
            for path in paths
        ]
        if allowed:
            _only_selects(con, sql)
            con.execute("SET allowed_paths = ?", [allowed])
        for key in SET_AFTER_VIEWS:
            con.execute(f"SET {key} = {str(SANDBOX[key]).lower()}")
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


def _only_selects(con, sql: str) -> None:
    """Refuse SQL with any statement but a SELECT (DESCRIBE, SHOW, SUMMARIZE and FROM are)."""
    import duckdb

    for statement in con.extract_statements(sql):
        if statement.type != duckdb.StatementType.SELECT:
            kind = str(statement.type).rsplit(".", 1)[-1]
            views = ", ".join(view.view for view in FILE_VIEWS)
            raise ArgumentError(
                "query",
                "sql",
                f"refused: a query that reads {views} may only SELECT (their step files are "
                f"opened to it), not {kind}",
            )
