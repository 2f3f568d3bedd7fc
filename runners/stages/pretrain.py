"""Stage `pretrain`: the demo model's base, trained on a corpus of the world's own before any
fine-tuning data is seen.

A model trained from scratch on the demo world first has to discover how to copy operands,
and that discovery, not the data's content, is what small data sizes measured (the curve was a
phase transition). The base learns everything except what fine-tuning data is meant to teach:
the format, copying, the arithmetic of a step, and how a constant is used. Its corpus is the
world's "pretrain" split, whose constants are p0, p1, ... with values of their own; the
fine-tuning facts (c0, c1, ...) never appear in it with their values (runners.worlds.demo).

No inputs: the step writes its corpus itself, so its id depends only on the knobs that shape
problems, the model and these settings, never on the world's seed, pool or sizes. One base
serves every cell and every experiment under the same results root (scaler.layout keeps this
stage's steps in the shared store). Outputs in out_dir: `model/` (weights and tokenizer),
`val_curve.json`, and `corpus/` (train.jsonl, val.jsonl and the tokenizer it was trained on).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from runners.files import MODEL, TOKENIZER, VAL_CURVE, split_file, write_jsonl
from runners.model import ModelConfig
from runners.training import TrainConfig, fit
from runners.worlds.demo import PRETRAIN_SPLIT, WorldConfig, make_split

INPUTS = ()
OUTPUTS = (MODEL, VAL_CURVE)
CORPUS = "corpus"
VAL_SPLIT = f"{PRETRAIN_SPLIT}_val"


class Settings(BaseModel):
    """How the base is pretrained; the defaults take the demo model well past copying on CPU
    (docs/demo-world.md, "The pretrained base")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    problems: int = Field(20_000, ge=1, le=1_000_000)
    """Problems in the pretraining corpus."""
    steps: int = Field(3000, ge=1)
    """Optimisation steps."""
    lr: float = Field(2e-3, gt=0)
    """Peak learning rate (AdamW), held after warmup."""
    batch_size: int = Field(32, ge=1)
    """Sequences per optimisation step."""
    warmup_steps: int = Field(30, ge=0)
    """Linear warmup from 0 to `lr`."""
    eval_every: int = Field(250, ge=1)
    """Steps between validation evaluations (the best checkpoint is kept)."""
    val_problems: int = Field(256, ge=1)
    """Held-out pretraining problems the checkpoint is chosen on."""
    seed: int = 0
    """Seed of the corpus, the initialisation and the data order."""


class Config(Settings):
    """The pretraining settings, the world's knobs and the model: everything the base depends on."""

    world: WorldConfig = WorldConfig()
    """The world whose pretraining corpus this is (its seed is not part of it)."""
    model: ModelConfig = ModelConfig()
    """The architecture built and pretrained."""


def run(
    config: Config, inputs: dict[str, Path], out_dir: Path, checkpoint_dir: Path | None = None
) -> dict[str, Any]:
    from runners.worlds.demo_tokenizer import save_tokenizer

    corpus = out_dir / CORPUS
    corpus.mkdir(parents=True, exist_ok=True)
    for split, name, count in (
        ("train", PRETRAIN_SPLIT, config.problems),
        ("val", VAL_SPLIT, config.val_problems),
    ):
        problems = make_split(config.world, config.seed, name, count)
        write_jsonl(corpus / split_file(split), problems)
    save_tokenizer(config.world, corpus / TOKENIZER)
    training = TrainConfig(
        lr=config.lr,
        batch_size=config.batch_size,
        warmup_steps=config.warmup_steps,
        steps_at_1k=config.steps,
        budget_exponent=0,  # `steps` whatever the corpus size
        min_steps=1,
        max_steps=config.steps,
        eval_every=config.eval_every,
        val_problems=config.val_problems,
        model=config.model,
        size=config.problems,
        seed=config.seed,
    )
    return fit(training, {"data": corpus}, out_dir, checkpoint_dir)
