"""Stage `merge`: the shards of a sharded step, joined into what the unsharded step writes.

A stage that loops over problems (sample, verify, rollout, evaluate) may run as shards: steps
over fixed ranges of its problems (runners.shards). One merge step per sharded step joins them,
and it is what the later stages and the results store read: its files are the unsharded step's
files, row for row, and its metrics are the unsharded step's, computed by the same functions
(runners.summaries) from the same rows in the same order.

Inputs: `shard_<i>`, the shards in the order of their ranges (i = 0, 1, ...). Two more roles are
not read but say what the merge stands for, as the unsharded step's own inputs do (the results
store's views name them): `candidates`, the merge of the sample shards whose samples a verify
merge's shards judged, and `model`, the model an evaluate merge's shards evaluated.

What each `stage` merge writes and reports:
- sample: no file (each verify shard read its own sample shard's candidates); the samples'
  cost, from the shards' reports.
- verify: `judged.jsonl`, `train.jsonl` (each shard's in problem order, so theirs one after the
  other is), `pool.json` (their problems) and `samples.parquet` (their `shard-samples.parquet`);
  the judging report, from the judged rows.
- rollout: `negatives.jsonl`; the rollout report, from the shards' counts.
- evaluate: `problems.parquet` and, when sampled, `samples.parquet`; the evaluation report,
  from the rows.
A shard's `wall_s` is its own; a merge's is the sum of its shards'.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from runners.files import JUDGED, NEGATIVES, POOL, PROBLEMS, SAMPLES, TRAIN
from runners.stages import Input

SHARD = "shard_"
"""The role prefix of the shards: `shard_0`, `shard_1`, ... in the order of their ranges."""

INPUTS = (
    Input(SHARD, prefix=True),
    Input("candidates", required=False),
    Input("model", required=False),
)
OUTPUTS = (JUDGED, TRAIN, POOL, NEGATIVES, PROBLEMS, SAMPLES)
"""Each merge writes its stage's (see the module docstring)."""


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: Literal["sample", "verify", "rollout", "evaluate"]
    """The stage whose shards are joined."""
    world: str = "demo"
    """verify: how reasoning paths are read (the data metrics' diversity)."""


def shard_roles(inputs: dict[str, Any]) -> list[str]:
    """The shard roles of `inputs`, in the order of their ranges."""
    return sorted((r for r in inputs if r.startswith(SHARD)), key=lambda r: int(r[len(SHARD) :]))


def run(config: Config, inputs: dict[str, Path], out_dir: Path) -> dict[str, Any]:
    from runners.files import read_metrics

    out_dir.mkdir(parents=True, exist_ok=True)
    shards = [Path(inputs[role]) for role in shard_roles(inputs)]
    if not shards:
        raise ValueError("a merge needs shards (inputs shard_0, shard_1, ...)")
    merge = {"sample": _sample, "verify": _verify, "rollout": _rollout, "evaluate": _evaluate}
    reports = [read_metrics(shard) for shard in shards]
    metrics = merge[config.stage](config, shards, reports, out_dir)
    if any("wall_s" in report for report in reports):
        metrics["wall_s"] = sum(report.get("wall_s", 0.0) for report in reports)
    return metrics


def _sample(config: Config, shards: list[Path], reports: list[dict], out_dir: Path) -> dict:
    from runners.summaries import sampling_cost

    problems = sum(report["problems"] for report in reports)
    tokens = sum(report["tokens"] for report in reports)
    first = reports[0]
    return sampling_cost(problems, first["samples"], first["params"], tokens)


def _verify(config: Config, shards: list[Path], reports: list[dict], out_dir: Path) -> dict:
    from runners.files import (
        concatenate,
        concatenate_tables,
        read_jsonl,
        row_file,
        write_pool,
    )
    from runners.summaries import judging

    concatenate([shard / JUDGED for shard in shards], out_dir / JUDGED)
    concatenate([shard / TRAIN for shard in shards], out_dir / TRAIN)
    concatenate_tables([shard / row_file(SAMPLES, True) for shard in shards], out_dir / SAMPLES)
    metrics = judging(config.world, read_jsonl(out_dir / JUDGED), read_jsonl(out_dir / TRAIN))
    write_pool(out_dir, metrics["problems"])
    return metrics


def _rollout(config: Config, shards: list[Path], reports: list[dict], out_dir: Path) -> dict:
    from runners.files import concatenate
    from runners.summaries import rollouts

    concatenate([shard / NEGATIVES for shard in shards], out_dir / NEGATIVES)
    counts = [sum(report[key] for report in reports)
              for key in ("negatives", "prefixes", "rollouts", "successes")]  # fmt: skip
    return rollouts(*counts)


def _evaluate(config: Config, shards: list[Path], reports: list[dict], out_dir: Path) -> dict:
    from runners.files import concatenate_tables, read_table, row_file
    from runners.summaries import evaluation

    concatenate_tables([shard / row_file(PROBLEMS, True) for shard in shards], out_dir / PROBLEMS)
    sample_rows = None
    sampled = [shard / row_file(SAMPLES, True) for shard in shards]
    if all(part.is_file() for part in sampled):
        concatenate_tables(sampled, out_dir / SAMPLES)
        sample_rows = read_table(out_dir / SAMPLES)
    k = reports[0].get("k", 0)
    return evaluation(read_table(out_dir / PROBLEMS), sample_rows, k)
