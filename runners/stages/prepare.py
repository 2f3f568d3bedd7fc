"""Stage `prepare`: a real world's problems (GSM8K or MATH) in the form every stage reads.

Outputs in out_dir, one problem per line (`id`, `prompt`, `solution`, `answer`, `row`: the line of
the source file): `train.jsonl` (the training pool in one seeded order, so every data size is a
prefix of it), `val.jsonl` (held out from train, for checkpoint choice), `fewshot.jsonl`
(exemplars for few-shot prompts, also held out from train) and `<name>.jsonl` for each eval set,
in file order.

Standard benchmark files have no bad records: one that cannot be read fails the step with its
line number. A file whose content differs from the planned checksum fails it too.
"""

from __future__ import annotations

import random
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runners import NO_EFFECT
from runners.files import FEWSHOT, TRAIN, VAL, split_file, write_jsonl
from runners.readers import (
    check_bad_records,
    check_unchanged,
    gsm8k_problem,
    math_problem,
    read_problems,
)

INPUTS = ()
OUTPUTS = (TRAIN, VAL, FEWSHOT)
"""And `<name>.jsonl` for each eval set."""


class Settings(BaseModel):
    """Where a real world's data is and how it is split; what the spec's `world` holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    train: str
    """Training problems: a JSONL file, another file `datasets` reads, or a local dataset
    folder (a `save_to_disk` copy or a Hub dataset's files)."""
    eval_files: dict[str, str] = Field(min_length=1)
    """Eval set name -> its file or folder, e.g. {test: data/gsm8k/test.jsonl}."""
    seed: int = 0
    """Seed of the order of the training pool (and so of which problems each size holds)."""
    val_problems: int = Field(200, ge=1)
    """Problems held out of train for choosing the checkpoint."""
    strip_annotations: bool = True
    """GSM8K: remove the calculator annotations <<48/2=24>> from solutions."""


class Config(Settings):
    """The settings, the content checksums of the files, and the exemplars to hold out."""

    kind: Literal["gsm8k", "math"]
    """Record format of the files."""
    train: str = Field(json_schema_extra=NO_EFFECT)
    eval_files: dict[str, str] = Field(min_length=1, json_schema_extra=NO_EFFECT)
    checksums: dict[str, str]
    """Split ('train' or an eval set) -> SHA-256 of its file: the data's identity, not its path."""
    few_shot: int = Field(0, ge=0)
    """Exemplars held out of train for few-shot prompts."""


def converter(kind: str, strip_annotations: bool = True):
    """The record -> problem function of a world's file format."""
    if kind == "gsm8k":
        return partial(gsm8k_problem, strip_annotations=strip_annotations)
    return math_problem


def run(config: Config, inputs: dict[str, Path], out_dir: Path) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    to_problem = converter(config.kind, config.strip_annotations)
    splits = {"train": config.train, **config.eval_files}
    loaded = {}
    for split, path in splits.items():
        check_unchanged(Path(path), config.checksums[split])
        problems, bad = read_problems(Path(path), to_problem, split)
        check_bad_records(Path(path), bad, len(problems) + len(bad), max_bad_fraction=0.0)
        loaded[split] = problems
    pool = loaded.pop("train")
    random.Random(f"prepare:{config.seed}").shuffle(pool)
    held = config.val_problems + config.few_shot
    if held >= len(pool):
        raise ValueError(
            f"{config.train}: {len(pool)} problems, fewer than the {held} held out for "
            "validation and few-shot exemplars"
        )
    parts = {
        "val": pool[: config.val_problems],
        "fewshot": pool[config.val_problems : held],
        "train": pool[held:],
        **loaded,
    }
    train_prompts = {p["prompt"] for p in parts["train"]}
    metrics: dict[str, Any] = {}
    for name, problems in parts.items():
        write_jsonl(out_dir / split_file(name), [{"id": i, **p} for i, p in enumerate(problems)])
        metrics[name] = len(problems)
        if name in loaded:
            # Contamination check: eval questions that also appear word for word in train.
            metrics[f"{name}_in_train"] = sum(p["prompt"] in train_prompts for p in problems)
    return metrics
