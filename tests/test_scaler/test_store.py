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
