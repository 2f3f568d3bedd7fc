"""The files stages exchange: every name once, with its reader and writer, and the Parquet schemas.

A stage writes only under its out_dir and reads its inputs' folders by these names; each stage
module declares which of them it writes (`OUTPUTS`) and which input roles it reads (`INPUTS`,
runners.stages.Input), and the plan checks the wiring against those declarations.

The Parquet tables are what the results store loads (`ROW_FILES`: file -> DuckDB table). Their
column types are fixed here, not inferred from the first rows, so every step's file loads into one
table whatever its world: a column a world does not know (false positives on real data) is null.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# --- problems and solutions (JSONL, one row per line) -----------------------------------------

TRAIN = "train.jsonl"
"""Training rows in problem order, `id` = problem id: a world's pool (generate, prepare), a
verified source's kept solutions (verify) or an algorithm's data (build)."""
VAL = "val.jsonl"
"""Validation problems (checkpoint choice)."""
TEST = "test.jsonl"
"""The demo world's test problems."""
FEWSHOT = "fewshot.jsonl"
"""Exemplars for few-shot prompts (prepare), held out of train."""
CANDIDATES = "candidates.jsonl"
"""Solutions to judge, one row per (problem_id, sample_id) (source, sample)."""
BAD_RECORDS = "bad_records.jsonl"
"""A user's records that could not be read, with their line numbers (source)."""
JUDGED = "judged.jsonl"
"""Every candidate with its verdict (verify): what build and rollout read."""
NEGATIVES = "negatives.jsonl"
"""Incorrect samples cut into steps with the Q-value of each prefix (rollout)."""

POOL = "pool.json"
"""`{"problems": n}`: the problems a TRAIN file was drawn from, kept or not (verify, build);
what data sizes count. Without it, every TRAIN row is a problem."""
VAL_CURVE = "val_curve.json"
"""Validation accuracy per evaluation of a train step."""

# --- folders ----------------------------------------------------------------------------------

MODEL = "model"
"""A train step's chosen weights and tokenizer (save_pretrained)."""
TOKENIZER = "tokenizer"
"""The demo world's word-level tokenizer (generate)."""


def split_file(split: str) -> str:
    """The JSONL file of a world's split or eval set (`train`, `val`, `test`, `math500`, ...)."""
    return f"{split}.jsonl"


def model_dir(step_dir: Path) -> Path:
    """Where a train step's folder keeps its model."""
    return Path(step_dir) / MODEL


# --- readers and writers ----------------------------------------------------------------------


CANDIDATE_ONLY = ("problem_id", "sample_id", "n_tokens", "extracted", "correct", "reason",
                  "rule", "false_positive", "first_wrong_step")  # fmt: skip
"""Fields of a candidate or judged row that are not part of a training row."""


def training_row(candidate: dict[str, Any]) -> dict[str, Any]:
    """A candidate or judged solution as a TRAIN row: `id` = its problem id, the problem's
    fields and its `solution`."""
    return {"id": candidate["problem_id"]} | {
        k: v for k, v in candidate.items() if k not in CANDIDATE_ONLY
    }


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def read_jsonl(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The first `limit` rows (all when None) of a JSONL file this project wrote."""
    rows = []
    with path.open() as f:
        for line in f:
            if limit is not None and len(rows) >= limit:
                break
            rows.append(json.loads(line))
    return rows


def read_exemplars(data_dir: Path, few_shot: int) -> list[dict[str, Any]]:
    """A world folder's few-shot exemplars when the prompt uses any (FEWSHOT), else none."""
    return read_jsonl(Path(data_dir) / FEWSHOT) if few_shot else []


def write_pool(out_dir: Path, problems: int) -> None:
    (out_dir / POOL).write_text(json.dumps({"problems": problems}))


def first_row_per_problem(folder: Path, count: int, start: int = 0) -> list[dict[str, Any]]:
    """The problems with start <= id < count of `folder/train.jsonl`, one row each (the
    first)."""
    rows, pool = read_prefix(folder, count)
    if count > pool:
        raise ValueError(f"{count} problems asked for, but {folder} holds {pool}")
    first: dict[int, dict[str, Any]] = {}
    for row in rows:
        if row["id"] >= start:
            first.setdefault(row["id"], row)
    return list(first.values())


def concatenate(parts: list[Path], path: Path) -> None:
    """The files `parts` one after the other as `path` (the JSONL files of a stage's shards,
    in shard order, as one unsharded step writes them)."""
    import shutil

    with path.open("wb") as out:
        for part in parts:
            with part.open("rb") as f:
                shutil.copyfileobj(f, out)


RESULT = "result.json"
"""What the executor writes beside a finished step's files: `{"metrics": ...}`, what its
runner returned (scaler.run.job). The merge of a stage's shards reads theirs."""


def read_metrics(step_dir: Path) -> dict[str, Any]:
    return json.loads((Path(step_dir) / RESULT).read_text())["metrics"]


def read_prefix(folder: Path, size: int) -> tuple[list[dict[str, Any]], int]:
    """The rows of `folder/train.jsonl` whose problem `id` is below `size` (a problem may have
    several solutions, one row each, in id order), and how many problems the pool holds:
    `pool.json`'s count where a stage wrote one, else one problem per row."""
    rows = []
    with (folder / TRAIN).open() as f:
        for line in f:
            row = json.loads(line)
            if row["id"] >= size:
                break
            rows.append(row)
    pool_file = folder / POOL
    if pool_file.is_file():
        return rows, json.loads(pool_file.read_text())["problems"]
    with (folder / TRAIN).open("rb") as f:
        return rows, sum(1 for _ in f)


# --- Parquet tables for the results store -----------------------------------------------------

SAMPLES = "samples.parquet"
PROBLEMS = "problems.parquet"
PITS = "pits.parquet"

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


ROW_GROUP_ROWS = 65_536
"""Rows per Parquet row group. The results store reads sample texts from the steps' files
(scaler.store.FILE_VIEWS), a few problems at a time: DuckDB skips the row groups whose problem
ids miss, so a smaller group reads less (pyarrow's default, 2^20 rows, is a whole step's file)."""


def write_table(path: Path, columns: dict[str, str], rows: list[dict[str, Any]]) -> None:
    """`rows` as Parquet with the pyarrow types named in `columns`; missing keys are null."""
    import pyarrow as pa

    table = pa.table(
        {
            name: pa.array([row.get(name) for row in rows], getattr(pa, kind)())
            for name, kind in columns.items()
        }
    )
    write_parquet(path, table)


def write_parquet(path: Path, table: Any) -> None:
    """A pyarrow table as the stages write their Parquet tables (ROW_GROUP_ROWS)."""
    import pyarrow.parquet as pq

    pq.write_table(table, path, row_group_size=ROW_GROUP_ROWS)


def write_samples(path: Path, rows: list[dict[str, Any]]) -> None:
    write_table(path, SAMPLE_COLUMNS, rows)


def read_table(path: Path) -> list[dict[str, Any]]:
    """The rows of a Parquet table written by write_table."""
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def concatenate_tables(parts: list[Path], path: Path) -> None:
    """The Parquet tables `parts` (one schema) one after the other as `path`, written as the
    stages write theirs."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    write_parquet(path, pa.concat_tables([pq.read_table(part) for part in parts]))


def row_file(name: str, sharded: bool) -> str:
    """Where a step writes its per-row table `name` (ROW_FILES): a shard as `shard-<name>`,
    which the results store does not load; the merge of the shards writes `name`, so a stage's
    rows are loaded once, with the step that stands for all of them (runners.shards)."""
    return f"shard-{name}" if sharded else name


ROW_FILES = {PROBLEMS: "eval_problems", SAMPLES: "samples", PITS: "pits"}
"""Per-row Parquet files a step may leave, and the results-store table each is loaded into."""

ROW_COLUMNS = {PROBLEMS: PROBLEM_COLUMNS, SAMPLES: SAMPLE_COLUMNS, PITS: PIT_COLUMNS}
"""Each Parquet file's columns (the store's tables have these and `step_id`)."""
