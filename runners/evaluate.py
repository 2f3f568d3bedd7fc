"""Stage `evaluate`: greedy pass@1 of a trained model on a split, judged step by step.

Inputs: `model` (a train step's folder, holding `model/`) and `data` (a generate step's
folder). Output: `problems.parquet`, one row per problem: problem_id (int), correct (bool),
false_positive (bool), first_wrong_step (int, -1 when every step is right), n_steps (int, the
steps the problem needs), pred_answer (str, "" when none), gold_answer (str), output (str).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    """Decoding settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: int = Field(250, ge=1)
    """Prompts decoded together (left-padded)."""
    max_new_tokens: int = Field(40, ge=1)
    """Generation limit; the longest default demo solution has 27 tokens with <eos>."""


class Config(Settings):
    """Decoding settings plus which split to score."""

    split: str = "test"
    """Split of the generate step to evaluate on: train, val or test."""


def run(config: Config, inputs: dict[str, Path], out_dir: Path) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from transformers import AutoModelForCausalLM

    from runners.data_files import read_jsonl
    from runners.demo_checker import check_solution
    from runners.generation import greedy_completions
    from runners.tokenizer import load_tokenizer

    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    model_dir = Path(inputs["model"]) / "model"
    tokenizer = load_tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    problems = read_jsonl(Path(inputs["data"]) / f"{config.split}.jsonl")
    outputs = greedy_completions(
        model, tokenizer, [p["prompt"] for p in problems], config.batch_size, config.max_new_tokens
    )
    verdicts = [check_solution(p, o) for p, o in zip(problems, outputs, strict=True)]
    table = pa.table(
        {
            "problem_id": pa.array([p["id"] for p in problems], pa.int64()),
            "correct": pa.array([v["correct"] for v in verdicts], pa.bool_()),
            "false_positive": pa.array([v["false_positive"] for v in verdicts], pa.bool_()),
            "first_wrong_step": pa.array(
                [-1 if v["first_wrong_step"] is None else v["first_wrong_step"] for v in verdicts],
                pa.int64(),
            ),
            "n_steps": pa.array([p["n_steps"] for p in problems], pa.int64()),
            "pred_answer": pa.array([v["answer"] or "" for v in verdicts], pa.string()),
            "gold_answer": pa.array([p["answer"] for p in problems], pa.string()),
            "output": pa.array(outputs, pa.string()),
        }
    )
    pq.write_table(table, out_dir / "problems.parquet")
    n = len(problems)
    correct = sum(v["correct"] for v in verdicts)
    by_steps: dict[str, list[int]] = {}
    for p, v in zip(problems, verdicts, strict=True):
        by_steps.setdefault(str(p["n_steps"]), []).append(int(v["correct"]))
    return {
        "accuracy": correct / n,
        "n": n,
        "false_positive_rate": sum(v["false_positive"] for v in verdicts) / max(correct, 1),
        "all_steps_valid_rate": sum(
            v["complete"] and v["first_wrong_step"] is None for v in verdicts
        )
        / n,
        "accuracy_by_steps": {k: sum(c) / len(c) for k, c in sorted(by_steps.items())},
        "wall_s": time.perf_counter() - started,
    }
