"""Parquet tables the stages leave for the results store, with fixed column types.

Fixed types (not inferred from the first rows) keep every step's file loadable into one DuckDB
table, whatever its world: a column a world does not know (false positives on real data) is null.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SAMPLE_COLUMNS = {
    "problem_id": "int64",
    "sample_id": "int64",
    "extracted": "string",
    "correct": "bool_",
    "reason": "string",
    "rule": "string",
    "false_positive": "bool_",
    "first_wrong_step": "int64",
    "n_tokens": "int64",
    "text": "string",
}
"""`samples.parquet`: one row per judged completion (verify and evaluate stages). `rule` is the
extraction rule that found the answer (runners.judging.answers.RULES; null in the demo world)."""

PROBLEM_COLUMNS = {
    "problem_id": "int64",
    "correct": "bool_",
    "reason": "string",
    "rule": "string",
    "false_positive": "bool_",
    "first_wrong_step": "int64",
    "n_steps": "int64",
    "pred_answer": "string",
    "gold_answer": "string",
    "output": "string",
    "n_tokens": "int64",
    "n_samples": "int64",
    "n_correct": "int64",
    "pass_at_k": "bool_",
    "maj_at_k": "bool_",
}
"""`problems.parquet` (evaluate stage): the greedy completion's verdict per problem, and the
vote of its k samples when sampled. Demo-world step columns are null on real data."""

PIT_COLUMNS = {
    "problem_id": "int64",
    "sample_id": "int64",
    "n_steps": "int64",
    "q_values": "string",
    "pit": "int64",
    "pit_setlur": "int64",
    "pit_no_success": "int64",
    "true_pit": "int64",
    "paired": "bool_",
}
"""`pits.parquet` (build stage, per-step DPO): per negative, its Q-values (JSON list Q_0..Q_n),
the pit of the configured rule and of each rule, and the demo world's true first pit."""


def write_table(path: Path, columns: dict[str, str], rows: list[dict[str, Any]]) -> None:
    """`rows` as Parquet with the pyarrow types named in `columns`; missing keys are null."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            name: pa.array([row.get(name) for row in rows], getattr(pa, kind)())
            for name, kind in columns.items()
        }
    )
    pq.write_table(table, path)


def write_samples(path: Path, rows: list[dict[str, Any]]) -> None:
    write_table(path, SAMPLE_COLUMNS, rows)
