"""Stage `train`: fine-tuning with trl on the first `size` problems: supervised (SFT) or preference
pairs (DPO, and per-step DPO, whose pairs continue a shared prefix).

Inputs: `data` (the world's folder: validation problems, few-shot exemplars, the demo world's
tokenizer), `train_data` (a folder whose `train.jsonl` to train on instead of the world's: a
verified source's or a build step's) and `init` (a train step whose model to start from; for DPO
also the reference). Outputs in out_dir: `model/` (the chosen checkpoint and the tokenizer, via
save_pretrained) and `val_curve.json` (validation accuracy per evaluation).

Objectives (`objective`, set by the plan per algorithm): `sft`, SFTTrainer with the loss on the
solution only (prompt/completion data, `completion_only_loss=True`); `dpo`, DPOTrainer on
(chosen, rejected) rows, the prompt rendered as sampling renders it followed by the row's
`prefix` (per-step pairs). trl's arguments, the validation callback and checkpoints are in
runners/trainer.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runners.files import MODEL, TRAIN, VAL, VAL_CURVE
from runners.stages import Input
from runners.training import (
    DpoTrainSettings,
    LoraSettings,
    Settings,
    TrainConfig,
    budget_steps,
    fit,
)

__all__ = ["Config", "DpoTrainSettings", "LoraSettings", "Settings", "budget_steps", "run"]

INPUTS = (
    Input("data", reads=(VAL,)),
    Input("train_data", reads=(TRAIN,), required=False),
    Input("init", reads=(MODEL,), required=False),
)
OUTPUTS = (MODEL, VAL_CURVE)


Config = TrainConfig
"""What to train: the model, how many problems, the seed (runners.training)."""


def run(
    config: Config, inputs: dict[str, Path], out_dir: Path, checkpoint_dir: Path | None = None
) -> dict[str, Any]:
    """Train on the first `size` problems (runners.training.fit)."""
    return fit(config, inputs, out_dir, checkpoint_dir)
