"""Stage `generate`: write the demo world's train/val/test splits and its tokenizer.

Outputs in out_dir: `train.jsonl`, `val.jsonl`, `test.jsonl` (one problem per line: `id`,
`prompt`, `solution` (the teacher completion, starting with a space), `answer`, and the step
truth the checker needs) and `tokenizer/` (a Hugging Face tokenizer folder).

Train problem i depends only on (seed, i), so any data size is a prefix of `train.jsonl`.
Validation and test problems whose prompt also occurs in an earlier split are skipped, so
evaluation never sees a training prompt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from runners.files import TEST, TOKENIZER, TRAIN, VAL, split_file, write_jsonl
from runners.worlds.demo import WorldConfig, make_problem, make_split
from runners.worlds.demo_tokenizer import save_tokenizer

INPUTS = ()
OUTPUTS = (TRAIN, VAL, TEST, TOKENIZER)


MAX_PROBLEMS = 1_000_000
"""The most problems of one split a spec may ask for: about two minutes of generation on one
core (16,000 take 1.7 s); a typo such as 1e12 would otherwise never finish."""


class Config(WorldConfig):
    """The world's knobs plus how many problems of each split to write."""

    seed: int = 0
    """Seed of the problem stream (which problems, in which order)."""
    train_pool: int = Field(16000, ge=1, le=MAX_PROBLEMS)
    """Training problems written; every data size trained on must be at most this."""
    val_problems: int = Field(256, ge=1, le=MAX_PROBLEMS)
    """Validation problems (checkpoint selection)."""
    test_problems: int = Field(500, ge=1, le=MAX_PROBLEMS)
    """Test problems (the reported accuracy)."""


def world_of(config: Config) -> WorldConfig:
    return WorldConfig(**{k: getattr(config, k) for k in WorldConfig.model_fields})


def run(config: Config, inputs: dict[str, Path], out_dir: Path) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    world = world_of(config)
    train = make_split(world, config.seed, "train", config.train_pool)
    seen = {p["prompt"] for p in train}
    val = _unseen(world, config.seed, "val", config.val_problems, seen)
    seen |= {p["prompt"] for p in val}
    test = _unseen(world, config.seed, "test", config.test_problems, seen)
    for name, problems in (("train", train), ("val", val), ("test", test)):
        write_jsonl(out_dir / split_file(name), problems)
    save_tokenizer(world, out_dir / TOKENIZER)
    return {
        "train": len(train),
        "val": len(val),
        "test": len(test),
        "teacher_false_positives": sum(p["teacher_false_positive"] for p in train),
        "mean_steps": sum(p["n_steps"] for p in train) / len(train),
    }


def _unseen(
    world: WorldConfig, seed: int, split: str, count: int, seen: set[str]
) -> list[dict[str, Any]]:
    """The first `count` problems of `split` whose prompts are not in `seen`, renumbered 0.."""
    problems: list[dict[str, Any]] = []
    seen = set(seen)  # also keeps the split itself free of repeats
    index = 0
    while len(problems) < count:
        problem = make_problem(world, seed, split, index)
        index += 1
        if problem["prompt"] not in seen:
            seen.add(problem["prompt"])
            problems.append({"id": len(problems), **problem})
    return problems
