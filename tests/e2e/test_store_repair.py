"""The database is a cache of the step folders: one that is empty, truncated or not a DuckDB
file is told apart from one in use, moved aside and rebuilt by the next collect, with a line
saying so; `scaler collect --rebuild` does the same on demand."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import check_small_database, finished_step_dirs


def _scaler(*args: str) -> subprocess.CompletedProcess:
    # A fresh process per command, as a user runs them: DuckDB keeps a file it has opened
    # cached for the life of a process.
    return subprocess.run([sys.executable, "-m", "scaler", *args], capture_output=True, text=True)


def _damage(database, how: str) -> None:
    # Truncated to its header: a file cut further on may still open, its lost rows unseen.
    data = database.read_bytes()
    database.write_bytes({"empty": b"", "truncated": data[:4096]}.get(how, os.urandom(20000)))


def test_a_damaged_database_is_rebuilt_from_the_step_folders(results, small_spec):
    assert _scaler("run", str(small_spec), "--executor", "inline").returncode == 0
    database = results / "small" / "scaler.duckdb"
    done = finished_step_dirs(results)
    for how in ("empty", "truncated", "garbage"):
        _damage(database, how)
        query = _scaler("query", "small", "SELECT count(*) FROM steps")
        assert query.returncode == 1 and "is damaged" in query.stderr
        assert "in use" not in query.stderr and query.stderr.count("\n") == 1

        rerun = _scaler("run", str(small_spec), "--executor", "inline")
        assert rerun.returncode == 0, rerun.stderr
        assert "rebuilt" in rerun.stdout and "collected 5 new steps" in rerun.stdout
        assert finished_step_dirs(results) == done  # no step ran again
    aside = sorted(p.name for p in database.parent.glob("scaler.duckdb.damaged-*"))
    assert len(aside) >= 1  # kept for a look (one name per second)

    rebuilt = _scaler("collect", "small", "--rebuild")
    assert rebuilt.returncode == 0 and "rebuilt" in rebuilt.stdout
    assert "collected 5 new steps" in rebuilt.stdout
    check_small_database(results)
