"""Stage `verify`: judge candidate solutions against their gold answers; keep the training data.

Input `candidates`: a folder with `candidates.jsonl` (one row per solution: problem_id,
sample_id, the problem's fields and `solution`), written by the source stage. Outputs:
`samples.parquet`, one row per candidate (runners.tables.SAMPLE_COLUMNS), loaded into the
`samples` table; `train.jsonl`, the solutions kept for training (`keep`), one row per solution
with `id` = its problem id, in problem order; and `pool.json`, the number of problems (kept or
not), which is what data sizes count.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runners import NO_EFFECT


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


def run(config: Config, inputs: dict[str, Path], out_dir: Path) -> dict[str, Any]:
    from runners.data_files import read_jsonl, write_jsonl
    from runners.judge import Judge
    from runners.tables import write_samples

    out_dir.mkdir(parents=True, exist_ok=True)
    candidates = read_jsonl(Path(inputs["candidates"]) / "candidates.jsonl")
    with Judge(config.world, config.time_limit_s, config.workers) as judge:
        verdicts = judge(candidates, [c["solution"] for c in candidates])
    rows = [
        {"problem_id": c["problem_id"], "sample_id": c["sample_id"], **v, "text": c["solution"]}
        for c, v in zip(candidates, verdicts, strict=True)
    ]
    write_samples(out_dir / "samples.parquet", rows)
    kept = [
        {
            "id": c["problem_id"],
            **{k: v for k, v in c.items() if k not in ("problem_id", "sample_id")},
        }
        for c, verdict in zip(candidates, verdicts, strict=True)
        if config.keep == "all" or verdict["correct"]
    ]
    kept.sort(key=lambda row: row["id"])
    write_jsonl(out_dir / "train.jsonl", kept)
    problems = len({c["problem_id"] for c in candidates})
    (out_dir / "pool.json").write_text(json.dumps({"problems": problems}))
    correct = sum(v["correct"] for v in verdicts)
    # Known only in the demo world; elsewhere the column stays empty.
    judged = [
        v["false_positive"] for v in verdicts if v["correct"] and v["false_positive"] is not None
    ]
    return {
        "candidates": len(candidates),
        "correct": correct,
        "pass_rate": correct / max(len(candidates), 1),
        "kept": len(kept),
        "problems": problems,
        "problems_with_kept": len({row["id"] for row in kept}),
        "false_positive_rate": sum(judged) / len(judged) if judged else None,
        "reasons": dict(Counter(v["reason"] for v in verdicts)),
    }
