"""What the results store costs at sampling volumes: per-sample rows copied into DuckDB, or read
from the steps' own samples.parquet, or both (verdicts copied, texts read from the files).

    .venv/bin/python benchmarks/bench_store.py [--collect-rows 1000000] [--query-rows 10000000]

Verify steps with synthetic rows (benchmarks/synthetic_verify.py) are run through the job
harness (scaler.run.job.run_step), so their folders are laid out as real steps' are, 64 samples
a problem and 4 samplers (the `model` coordinate), 250,000 rows a step for the collect and
500,000 for the queries. Each store is the real `scaler.store.collect` and `scaler.store.query`
with the store's two knobs set in this process: its migrations (the table `samples` as it was
before migration 008, with the texts and a primary key) and FILE_VIEWS (what is read from the
files instead). Medians of repeats; every store in the same process, on the same folders.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

from common import machine  # noqa: E402
from runners.files import SAMPLE_COLUMNS, SAMPLES  # noqa: E402
from scaler import store  # noqa: E402
from scaler.layout import Layout  # noqa: E402
from scaler.run.job import StepJob, run_step  # noqa: E402

SAMPLES_PER_PROBLEM = 64
SAMPLERS = 4
TEXTS_TABLE = """
DROP TABLE samples;
CREATE TABLE samples (
    step_id VARCHAR, problem_id INTEGER, sample_id INTEGER, extracted VARCHAR,
    correct BOOLEAN, reason VARCHAR, false_positive BOOLEAN, first_wrong_step INTEGER,
    n_tokens INTEGER, text VARCHAR, rule VARCHAR{key}
);
"""
"""`samples` as migrations 002 and 006 made it: the texts in the table."""
VERDICTS_TABLE = """
DROP TABLE samples;
CREATE TABLE samples (
    step_id VARCHAR, problem_id INTEGER, sample_id INTEGER, extracted VARCHAR,
    correct BOOLEAN, reason VARCHAR, false_positive BOOLEAN, first_wrong_step INTEGER,
    n_tokens INTEGER, rule VARCHAR, PRIMARY KEY (step_id, problem_id, sample_id)
);
"""
"""`samples` as migration 008 makes it, with the primary key it had before."""


@dataclass(frozen=True)
class Store:
    label: str
    migrations: list[tuple[str, str]]
    file_views: tuple[store.FileView, ...]
    samples: str
    """What a query names to read the verdicts."""
    texts: str
    """SQL: the texts of one problem's failed samples ({problem})."""


def _stores() -> list[Store]:
    verdicts = tuple(c for c in SAMPLE_COLUMNS if c not in ("problem_id", "sample_id"))
    in_table = (
        "SELECT count(*), sum(length(text)) FROM samples WHERE problem_id = {problem} "
        "AND NOT correct"
    )
    return [
        Store(
            "(a) every column copied, as before (texts, primary key)",
            [
                *store.MIGRATIONS,
                (
                    "bench_texts",
                    TEXTS_TABLE.format(key=", PRIMARY KEY (step_id, problem_id, sample_id)"),
                ),
            ],  # fmt: skip
            (),
            "samples",
            in_table,
        ),
        Store(
            "(a') every column copied, no primary key",
            [*store.MIGRATIONS, ("bench_texts", TEXTS_TABLE.format(key=""))],
            (),
            "samples",
            in_table,
        ),
        Store(
            "(b) nothing copied: a view over the step files",
            store.MIGRATIONS,
            (store.FileView(SAMPLES, "samples_in_files", ("problem_id", "sample_id"), verdicts),),
            "samples_in_files",
            "SELECT count(*), sum(length(text)) FROM samples_in_files "
            "WHERE problem_id = {problem} AND NOT correct",
        ),
        Store(
            "(c') verdicts copied with the primary key, texts read from the files",
            [*store.MIGRATIONS, ("bench_key", VERDICTS_TABLE)],
            store.FILE_VIEWS,
            "samples",
            "SELECT count(*), sum(length(t.text)) FROM samples s JOIN sample_texts t "
            "USING (step_id, problem_id, sample_id) WHERE s.problem_id = {problem} "
            "AND NOT s.correct",
        ),
        Store(
            "chosen: verdicts copied (no key), texts read from the files",
            store.MIGRATIONS,
            store.FILE_VIEWS,
            "samples",
            "SELECT count(*), sum(length(t.text)) FROM samples s JOIN sample_texts t "
            "USING (step_id, problem_id, sample_id) WHERE s.problem_id = {problem} "
            "AND NOT s.correct",
        ),
    ]


@contextmanager
def _as(chosen: Store) -> Iterator[None]:
    saved = store.MIGRATIONS, store.FILE_VIEWS
    store.MIGRATIONS, store.FILE_VIEWS = chosen.migrations, chosen.file_views
    try:
        yield
    finally:
        store.MIGRATIONS, store.FILE_VIEWS = saved


def _make_steps(layout: Layout, rows: int, per_step: int, words: int) -> None:
    problems = per_step // SAMPLES_PER_PROBLEM
    for index in range(rows // per_step):
        sampler, shard = index % SAMPLERS, index // SAMPLERS
        config = {
            "first_problem": shard * problems, "problems": problems,
            "samples": SAMPLES_PER_PROBLEM, "words": words, "seed": index,
        }  # fmt: skip
        step_id = hashlib.sha256(repr(config).encode()).hexdigest()[:16]
        name = f"verify-{step_id}"
        run_step(StepJob(
            name=name, stage="verify", step_id=step_id, module="synthetic_verify", version=1,
            config=config, inputs={}, coords={"model": f"sampler-{sampler}", "size": problems},
            out_dir=str(layout.step_dir("verify", name)),
        ))  # fmt: skip


def _drop_database(layout: Layout) -> None:
    for path in (layout.database, layout.database.with_name(layout.database.name + ".wal")):
        path.unlink(missing_ok=True)


def _median(
    function: Callable[[], object], repeats: int, before: Callable[[], object] = lambda: None
) -> float:
    times = []
    for _ in range(repeats):
        before()
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _file_megabytes(layout: Layout) -> float:
    return sum(p.stat().st_size for p in layout.steps.rglob(SAMPLES)) / 1e6


def _collect_figures(layout: Layout, rows: int, stores: list[Store], repeats: int) -> None:
    print(f"\ncollect of {rows:,} sample rows ({_file_megabytes(layout):,.0f} MB of "
          f"samples.parquet), median of {repeats}, a fresh database each time:")  # fmt: skip
    for chosen in stores:
        with _as(chosen):
            seconds = _median(
                lambda: store.collect(layout), repeats, lambda: _drop_database(layout)
            )
            again = _median(lambda: store.collect(layout), repeats)
        size = layout.database.stat().st_size / 1e6
        print(f"  {chosen.label}: {seconds:.2f} s ({seconds / rows * 1e6:.2f} us a row); "
              f"again, nothing new: {again * 1e3:.0f} ms; database {size:,.0f} MB")  # fmt: skip
        _drop_database(layout)


def _query_figures(layout: Layout, rows: int, stores: list[Store], repeats: int) -> None:
    group_by = (
        "SELECT count(*) AS groups, round(avg(pass_rate), 9) FROM (SELECT st.model AS sampler, "
        "s.problem_id, avg(s.correct::INTEGER) AS pass_rate FROM {samples} s JOIN steps st "
        "USING (step_id) GROUP BY ALL)"
    )
    problem = rows // SAMPLERS // SAMPLES_PER_PROBLEM // 2
    print(f"\nqueries over {rows:,} sample rows ({_file_megabytes(layout):,.0f} MB of "
          f"samples.parquet), through `scaler query`'s path, median of {repeats}:")  # fmt: skip
    answers = set()
    for chosen in stores:
        with _as(chosen):
            start = time.perf_counter()
            store.collect(layout)
            collected = time.perf_counter() - start
            size = layout.database.stat().st_size / 1e6
            sql = group_by.format(samples=chosen.samples)
            answers.add(repr(store.query(layout, sql)[1]))
            grouped = _median(lambda sql=sql: store.query(layout, sql), repeats)
            texts = chosen.texts.format(problem=problem)
            answers.add(repr(store.query(layout, texts)[1]))
            read = _median(lambda texts=texts: store.query(layout, texts), repeats)
            opened = _median(lambda: store.query(layout, "SELECT 1"), repeats)
        print(f"  {chosen.label}: pass rate per problem and sampler (GROUP BY) {grouped:.3f} s; "
              f"texts of one problem's failed samples {read:.3f} s; `SELECT 1` {opened * 1e3:.0f} "
              f"ms; collect {collected:.1f} s, database {size:,.0f} MB")  # fmt: skip
        _drop_database(layout)
    assert len(answers) == 2, answers  # every store gives the same two answers


def _memory() -> str:
    gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{gib:.0f} GiB RAM, nproc {len(os.sched_getaffinity(0))}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collect-rows", type=int, default=1_000_000)
    parser.add_argument("--query-rows", type=int, default=10_000_000)
    parser.add_argument("--words", type=int, default=60, help="mean words of a sampled text")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import duckdb

    print(f"{machine()}, {_memory()}, duckdb {duckdb.__version__}")
    stores = _stores()
    with tempfile.TemporaryDirectory(dir="/tmp") as scratch:
        for rows, per_step, figures in (
            (args.collect_rows, 250_000, _collect_figures),
            (args.query_rows, 500_000, _query_figures),
        ):
            layout = Layout(Path(scratch) / f"rows-{rows}")
            start = time.perf_counter()
            _make_steps(layout, rows, min(per_step, rows), args.words)
            print(f"\n{rows:,} rows in {len(layout.finished_dirs())} verify steps, written in "
                  f"{time.perf_counter() - start:.0f} s")  # fmt: skip
            figures(layout, rows, stores, args.repeats)
            shutil.rmtree(layout.root)


if __name__ == "__main__":
    main()
