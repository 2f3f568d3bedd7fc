"""The DuckDB store: migrations once, and a clear error when another process holds the file."""

from __future__ import annotations

import subprocess
import sys

from scaler.layout import Layout
from scaler.store import MIGRATIONS, connect, migrate


def test_migrations_apply_once(tmp_path):
    con = connect(Layout(tmp_path / "x"))
    assert migrate(con) == []
    rows = con.execute("SELECT name FROM schema_migrations ORDER BY name").fetchall()
    applied = [row[0] for row in rows]
    assert applied == [name for name, _ in MIGRATIONS]
    con.close()


def test_a_locked_database_gives_one_clear_line(tmp_path):
    holder = connect(Layout(tmp_path / "x"))  # a writer in this process holds the lock
    try:
        result = subprocess.run(
            [sys.executable, "-m", "scaler", "--results", str(tmp_path), "query", "x", "SELECT 1"],
            capture_output=True, text=True,
        )  # fmt: skip
    finally:
        holder.close()
    assert result.returncode == 1
    assert (
        result.stderr.startswith("scaler: error: ") and "in use by another process" in result.stderr
    )
    assert result.stderr.count("\n") == 1


DUCKDB_TYPES = {"int64": "INTEGER", "bool_": "BOOLEAN", "string": "VARCHAR"}


def test_the_row_tables_hold_the_columns_the_parquet_schemas_declare(tmp_path):
    # One schema for the runners that write the files and the store that loads them; the
    # columns a file view reads from the step files are in the view, not the table.
    from runners.files import ROW_COLUMNS, ROW_FILES
    from scaler.store import FILE_VIEWS

    assert set(ROW_COLUMNS) == set(ROW_FILES)
    con = connect(Layout(tmp_path / "x"))
    try:
        for name, table in ROW_FILES.items():
            described = con.execute(f"DESCRIBE {table}").fetchall()
            types = {row[0]: row[1] for row in described}
            left = {c for view in FILE_VIEWS if view.file == name for c in view.columns}
            declared = {
                column: DUCKDB_TYPES[kind]
                for column, kind in ROW_COLUMNS[name].items()
                if column not in left
            }
            assert {c: types.get(c) for c in declared} == declared, name
            assert set(types) == set(declared) | {"step_id"}, name
    finally:
        con.close()
    for view in FILE_VIEWS:
        assert set(view.keys) | set(view.columns) <= set(ROW_COLUMNS[view.file]), view.view
