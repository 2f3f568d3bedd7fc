"""Per-sample rows in the results store: verdicts copied into `samples`, texts read from the
steps' own samples.parquet through `sample_texts`; collect twice changes nothing; a query that
reads the texts may read those files and do nothing else."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from runners.files import SAMPLE_COLUMNS, SAMPLES
from scaler.errors import ArgumentError
from scaler.layout import Layout
from scaler.migrations import MIGRATIONS
from scaler.run.job import StepJob, run_step
from scaler.store import collect, connect, migrate, query

VERDICTS = [c for c in SAMPLE_COLUMNS if c != "text"]
ALL_ROWS = (
    "SELECT s.step_id, {columns}, t.text FROM samples s "
    "FULL JOIN sample_texts t USING (step_id, problem_id, sample_id) ORDER BY ALL"
)


def _step(layout: Layout, stage: str, seed: int, **config) -> Path:
    step_id = hashlib.sha256(f"{stage}{seed}{config}".encode()).hexdigest()[:16]
    name = f"{stage}-{step_id}"
    run_step(
        StepJob(
            name=name, stage=stage, step_id=step_id, module="samples_runner", version=1,
            config={"seed": seed, **config}, inputs={}, coords={"model": f"m{seed}"},
            out_dir=str(layout.step_dir(stage, name)),
        )
    )  # fmt: skip
    return layout.step_dir(stage, name)


def _written(folders: list[Path]) -> list[tuple]:
    """Every row of the folders' samples.parquet, read back as pyarrow reads it."""
    rows = []
    for folder in folders:
        step_id = folder.name.split("-", 1)[1]
        for row in pq.read_table(folder / SAMPLES).to_pylist():
            rows.append((step_id, *(row[c] for c in VERDICTS), row["text"]))
    return sorted(rows, key=repr)


def _stored(layout: Layout) -> list[tuple]:
    columns = ", ".join(f"coalesce(s.{c}, t.{c})" if c in ("problem_id", "sample_id") else
                        f"s.{c}" for c in VERDICTS)  # fmt: skip
    return sorted(query(layout, ALL_ROWS.format(columns=columns))[1], key=repr)


@pytest.fixture
def layout(tmp_path) -> Layout:
    return Layout(tmp_path / "results" / "x")


def test_the_samples_rows_are_what_the_steps_wrote(layout):
    folders = [
        _step(layout, "verify", 0),
        _step(layout, "verify", 1, problems=4, samples=3),
        _step(layout, "evaluate", 2),
    ]
    collect(layout)
    stored = _stored(layout)
    assert stored == _written(folders)
    assert len(stored) == 6 + 12 + 6
    texts = query(layout, "SELECT count(*), count(text) FROM sample_texts")[1]
    assert texts == [(24, 18)]  # the null texts stay null


def test_collect_twice_gives_the_same_rows_and_a_new_step_adds_only_its_own(layout):
    first = [_step(layout, "verify", 0), _step(layout, "evaluate", 1)]
    assert collect(layout).loaded == 2
    before = _stored(layout), query(layout, "SELECT * FROM row_files ORDER BY ALL")[1]
    again = collect(layout)
    assert (again.loaded, again.total, again.dropped) == (0, 2, 0)
    assert (_stored(layout), query(layout, "SELECT * FROM row_files ORDER BY ALL")[1]) == before
    added = _step(layout, "verify", 2)
    assert collect(layout).loaded == 1
    assert _stored(layout) == _written([*first, added])
    counts = query(layout, "SELECT count(*), count(DISTINCT (step_id, problem_id, sample_id)) "
                           "FROM samples")[1]  # fmt: skip
    assert counts == [(18, 18)]


def test_a_removed_step_takes_its_verdicts_and_texts_with_it(layout):
    kept, removed = _step(layout, "verify", 0), _step(layout, "verify", 1)
    collect(layout)
    shutil.rmtree(removed)
    # Until the next collect the verdicts stay, and the texts of a folder gone are not read.
    assert query(layout, "SELECT count(*) FROM sample_texts")[1] == [(6,)]
    assert collect(layout).dropped == 1
    assert _stored(layout) == _written([kept])
    assert query(layout, "SELECT count(*) FROM row_files")[1] == [(1,)]


def test_the_texts_follow_the_results_folder_when_it_moves(layout, tmp_path):
    written = _written([_step(layout, "verify", 0)])
    collect(layout)
    moved = Layout(tmp_path / "elsewhere" / "x")
    shutil.copytree(layout.root, moved.root)
    shutil.rmtree(layout.root)
    assert _stored(moved) == written


def test_an_experiment_without_samples_has_an_empty_typed_view(layout):
    connect(layout).close()
    columns, rows = query(layout, "SELECT * FROM sample_texts")
    assert (columns, rows) == (["step_id", "problem_id", "sample_id", "text"], [])


def test_a_database_from_before_keeps_its_samples_readable(layout):
    # Collected when `samples` held the texts and had no row_files: the migration keeps the
    # verdicts, and the texts are read from the very files they had been copied from.
    folder = _step(layout, "verify", 0)
    import duckdb

    before = [(name, sql) for name, sql in MIGRATIONS if name < "008"]
    layout.root.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(layout.database))
    migrate(con, before)
    step_id = folder.name.split("-", 1)[1]
    con.execute(
        "INSERT INTO steps (step_id, name, stage, path) VALUES (?, ?, 'verify', ?)",
        [step_id, folder.name, str(folder)],
    )
    con.execute(
        "INSERT INTO samples BY NAME SELECT *, ? AS step_id FROM read_parquet(?)",
        [step_id, str(folder / SAMPLES)],
    )
    con.close()
    assert query(layout, "SELECT count(text) FROM samples")[1] == [(5,)]  # read as it was
    connect(layout).close()  # a writer migrates
    assert "text" not in query(layout, "SELECT * FROM samples LIMIT 0")[0]
    assert _stored(layout) == _written([folder])


ESCAPES = {
    "copy the texts out": "COPY (SELECT * FROM sample_texts) TO '{out}/texts.csv'",
    "overwrite a step's file": "COPY (SELECT 1 AS a FROM sample_texts) TO '{file}' "
    "(FORMAT parquet, USE_TMP_FILE false)",
    "the same under EXPLAIN ANALYZE": "EXPLAIN ANALYZE COPY (SELECT 1 AS a FROM sample_texts) "
    "TO '{file}' (FORMAT parquet, USE_TMP_FILE false)",
    "a setting after the texts": "SELECT count(*) FROM sample_texts; SET threads = 1",
    "another file beside the texts": "SELECT * FROM sample_texts, read_text('{config}')",
    "a file outside beside the texts": "SELECT * FROM sample_texts, read_text('/etc/hostname')",
}


@pytest.mark.parametrize("name", list(ESCAPES))
def test_a_query_of_the_texts_reads_their_files_and_nothing_else(layout, tmp_path, name):
    folder = _step(layout, "verify", 0)
    collect(layout)
    (tmp_path / "out").mkdir()
    before = {p: p.read_bytes() for p in folder.iterdir()}
    sql = ESCAPES[name].format(
        out=tmp_path / "out", file=folder / SAMPLES, config=folder / "config.json"
    )
    with pytest.raises(ArgumentError, match="refused"):
        query(layout, sql)
    assert {p: p.read_bytes() for p in folder.iterdir()} == before
    assert not any((tmp_path / "out").iterdir())
