"""`scaler query` reads the experiment's tables and nothing else on the machine: every way SQL
reaches files, other databases, extensions or settings is refused with one line and exit 2, and
leaves nothing behind."""

from __future__ import annotations

import pytest

from scaler.cli import main
from scaler.layout import Layout
from scaler.store import connect

OUTSIDE = "outside"  # a folder beside the experiment that no query may touch


# What each query tries; {out} is a folder beside the experiment.
ESCAPES = {
    "copy a table to a file": "COPY steps TO '{out}/steps.csv'",
    "copy a query over a step's result.json": "COPY (SELECT 1) TO '{out}/result.json'",
    "export the database": "EXPORT DATABASE '{out}/export'",
    "read a system file": "SELECT * FROM read_csv('/etc/passwd')",
    "read a file as text": "SELECT * FROM read_text('/etc/hostname')",
    "glob a folder": "SELECT * FROM glob('/root/*')",
    "attach another database": "ATTACH '{out}/other.duckdb' AS other",
    "install an extension": "INSTALL httpfs",
    "load an extension": "LOAD httpfs",
    "turn file access back on": "SET enable_external_access = true",
    "change a setting": "SET threads = 1",
    "change a setting by pragma": "PRAGMA threads = 1",
    "reset a setting": "RESET threads",
}


@pytest.fixture
def experiment(tmp_path):
    connect(Layout(tmp_path / "x")).close()  # an experiment's database, with its tables
    (tmp_path / OUTSIDE).mkdir()
    return tmp_path


def _query(results, sql, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--results", str(results), "query", "x", sql])
    return exit_.value.code, capsys.readouterr().err


@pytest.mark.parametrize("name", list(ESCAPES))
def test_an_escape_is_refused_in_one_line_and_touches_nothing(experiment, name, capsys):
    before = sorted(p.name for p in experiment.rglob("*"))
    sql = ESCAPES[name].format(out=experiment / OUTSIDE)
    code, err = _query(experiment, sql, capsys)
    assert code == 2
    assert err.startswith("scaler: error: command line: sql: refused: a query reads")
    assert err.count("\n") == 1
    assert sorted(p.name for p in experiment.rglob("*")) == before
    assert not any((experiment / OUTSIDE).iterdir())


def test_reading_the_tables_still_works(experiment, capsys):
    main(["--results", str(experiment), "query", "x", "SELECT count(*) AS n FROM steps"])
    assert capsys.readouterr().out.split() == ["n", "-", "0"]


def test_bad_sql_is_one_line_naming_the_query(experiment, capsys):
    code, err = _query(experiment, "SELEC 1", capsys)
    assert code == 2
    assert err.startswith("scaler: error: command line: sql: Parser Error")
    assert err.count("\n") == 1
