"""Stage `verify`: judge candidate solutions against their gold answers; keep the training data.

Input `candidates`: a folder with `candidates.jsonl` (one row per solution: problem_id,
sample_id, the problem's fields and `solution`), written by the source or the sample stage.
Outputs:
- `samples.parquet`, one row per candidate (runners.files.SAMPLE_COLUMNS), loaded into the
  `samples` table;
- `judged.jsonl`, every candidate with its verdict (`correct`, `reason`, `rule`,
  `false_positive`, `first_wrong_step`, `extracted`): what the build and rollout stages read;
- `train.jsonl`, the solutions kept for training (`keep`), one row per solution with `id` = its
  problem id, in problem order; and `pool.json`, the number of problems (kept or not), which is
  what data sizes count.

Data metrics (Bansal et al. 2024), over the problems judged: coverage@k (share with a correct
solution), diversity@k (distinct correct reasoning paths per problem, the world's `path_key`), the
pass rate, the false-positive rate (correct answers through a wrong step: exact in the demo world,
empty elsewhere) and mean tokens per sample when the sampler counted them
(runners.summaries.judging).

The verify step of a sample shard is a shard too (`shard`): it writes its rows as
`shard-samples.parquet`, and the merge of the shards writes `samples.parquet`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runners import NO_EFFECT, OMITTED_WHEN_NONE
from runners.files import CANDIDATES, JUDGED, POOL, SAMPLES, TRAIN
from runners.shards import Shard
from runners.stages import Input

INPUTS = (Input("candidates", reads=(CANDIDATES,)),)
OUTPUTS = (SAMPLES, JUDGED, TRAIN, POOL)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    time_limit_s: float = Field(2.0, gt=0)
    """Limit per answer comparison; an answer over it is judged incorrect ('time limit')."""
    workers: int = Field(2, ge=1, json_schema_extra=NO_EFFECT)
    """Verifier processes."""


class Config(Settings):
    keep: Literal["correct", "all"] = "correct"
    """Which solutions go into training: those judged correct, or all of them."""
    world: str = "demo"
    """Which judge: the demo world's step checker, or answer equivalence (gsm8k, math)."""
    verifier: dict[str, Any] | None = Field(None, json_schema_extra=OMITTED_WHEN_NONE)
    """A real world's answer conventions and verifier version (runners.judging.equivalence
    `verifier_identity`), set by the plan; None in the demo world and left out of its id."""
    shard: Shard | None = Field(None, json_schema_extra=OMITTED_WHEN_NONE)
    """The range of problems its candidates hold, when they are a sample shard's; None: not
    a shard."""


def run(config: Config, inputs: dict[str, Path], out_dir: Path) -> dict[str, Any]:
    from runners.files import (
        read_jsonl,
        row_file,
        training_row,
        write_jsonl,
        write_pool,
        write_samples,
    )
    from runners.judging.judge import Judge
    from runners.summaries import judging

    out_dir.mkdir(parents=True, exist_ok=True)
    candidates = read_jsonl(Path(inputs["candidates"]) / CANDIDATES)
    with Judge(
        config.world, config.time_limit_s, config.workers, verifier=config.verifier
    ) as judge:
        verdicts = judge(candidates, [c["solution"] for c in candidates])
    rows = [
        {
            "problem_id": c["problem_id"],
            "sample_id": c["sample_id"],
            **v,
            "n_tokens": c.get("n_tokens"),
            "text": c["solution"],
        }
        for c, v in zip(candidates, verdicts, strict=True)
    ]
    write_samples(out_dir / row_file(SAMPLES, config.shard is not None), rows)
    judged = [c | v for c, v in zip(candidates, verdicts, strict=True)]
    write_jsonl(out_dir / JUDGED, judged)
    kept = [training_row(c) for c in judged if config.keep == "all" or c["correct"]]
    kept.sort(key=lambda row: row["id"])
    write_jsonl(out_dir / TRAIN, kept)
    metrics = judging(config.world, judged, kept)
    write_pool(out_dir, metrics["problems"])
    return metrics
