"""Stage `train`: supervised fine-tuning with trl's SFTTrainer on the first `size` problems.

Inputs: `data`, a generate step's folder. Outputs in out_dir: `model/` (the chosen checkpoint
and the tokenizer, via save_pretrained) and `val_curve.json` (validation accuracy per
evaluation). The loss is on the solution only (prompt/completion data,
`completion_only_loss=True`).

Budget rule: `steps = steps_at_1k * (size / 1000) ** budget_exponent`, clamped. A model
trained from scratch on the demo world sits at chance until it learns to copy operands and
then rises sharply; that jump comes after ~450 steps on 500 problems (repeated data is learned
sooner) and after ~900 on 2000-4000. With one step budget for every size, the large sizes were
still before their jump while small ones had peaked, and the curve was not monotone. Steps
growing as a power of the size give each size about the steps it needs (exponent 0.3 left
2000 problems before their jump in one seed of two; 0.6 did not); the checkpoint is chosen on
validation, so an over-long budget costs time, not accuracy. Measurements:
benchmarks/notes_demo_world.md.

Checkpoint choice: greedy accuracy on the validation split, the metric reported on test. The
average token loss is dominated by easy copy tokens and hides whether answers are right;
accuracy is what is compared across sizes. Checkpoints are kept in memory (the model is
small), never written to disk.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from runners.model import ModelConfig


class Settings(BaseModel):
    """Optimisation hyper-parameters; defaults are tuned for the demo world on CPU."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lr: float = Field(2e-3, gt=0)
    """Peak learning rate (AdamW), held constant after warmup."""
    batch_size: int = Field(32, ge=1)
    """Sequences per optimisation step."""
    warmup_steps: int = Field(30, ge=0)
    """Linear warmup from 0 to `lr`."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW decoupled weight decay."""
    steps_at_1k: int = Field(900, ge=1)
    """Budget: optimisation steps for 1000 problems (see `budget_steps`)."""
    budget_exponent: float = Field(0.6, ge=0)
    """Budget: steps grow as size**budget_exponent (0 gives every size the same steps)."""
    min_steps: int = Field(100, ge=1)
    """Budget floor."""
    max_steps: int = Field(5000, ge=1)
    """Budget ceiling."""
    eval_every: int = Field(100, ge=1)
    """Steps between validation evaluations (also evaluated at the last step)."""
    val_problems: int = Field(128, ge=1)
    """Validation problems used to choose the checkpoint."""
    max_new_tokens: int = Field(40, ge=1)
    """Generation limit when scoring validation problems."""


class Config(Settings):
    """What to train: the model, how many problems, and the seed."""

    model: ModelConfig = ModelConfig()
    """Architecture (or pretrained checkpoint) to train."""
    size: int = Field(1000, ge=1)
    """Training problems: the first `size` lines of train.jsonl."""
    seed: int = 0
    """Seed of initialisation and data order."""


def budget_steps(settings: Settings, size: int) -> int:
    """Optimisation steps for `size` problems: steps_at_1k * (size / 1000) ** budget_exponent,
    clamped to [min_steps, max_steps] (see the module docstring)."""
    steps = round(settings.steps_at_1k * (size / 1000) ** settings.budget_exponent)
    return max(settings.min_steps, min(settings.max_steps, steps))


def sft_arguments(config: Config, output_dir: Path, steps: int) -> Any:
    """trl's SFTConfig for this run (shared with benchmarks/bench_trl_vs_torch.py)."""
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(output_dir),
        use_cpu=True,
        bf16=False,
        activation_checkpointing=False,
        completion_only_loss=True,
        packing=False,
        max_length=config.model.max_positions,
        per_device_train_batch_size=config.batch_size,
        max_steps=steps,
        learning_rate=config.lr,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        seed=config.seed,
        data_seed=config.seed,
        # Overheads that cost more than the tiny model's step: no checkpoints on disk, no
        # built-in eval, rare logging, no worker processes.
        save_strategy="no",
        eval_strategy="no",
        logging_steps=max(steps // 4, 1),
        dataloader_num_workers=0,
        report_to="none",
        disable_tqdm=True,
    )


def run(config: Config, inputs: dict[str, Path], out_dir: Path) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTTrainer

    from runners.generate import read_jsonl
    from runners.generation import greedy_completions
    from runners.model import build_model
    from runners.tokenizer import load_tokenizer
    from runners.verify import check_solution

    started = time.perf_counter()
    data_dir = Path(inputs["data"])
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer(data_dir / "tokenizer")
    train = read_jsonl(data_dir / "train.jsonl", limit=config.size)
    if len(train) < config.size:
        raise ValueError(f"size={config.size} exceeds the {len(train)} problems in {data_dir}")
    val = read_jsonl(data_dir / "val.jsonl", limit=config.val_problems)
    model = build_model(config.model, tokenizer, config.seed)
    steps = budget_steps(config, config.size)

    def val_accuracy() -> float:
        outputs = greedy_completions(
            model, tokenizer, [p["prompt"] for p in val], len(val), config.max_new_tokens
        )
        return sum(
            check_solution(p, o)["correct"] for p, o in zip(val, outputs, strict=True)
        ) / len(val)

    curve: list[dict[str, float]] = []
    best: dict[str, Any] = {"accuracy": -1.0, "step": 0, "state": None}
    val_seconds = 0.0

    class KeepBestOnValidation(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            nonlocal val_seconds
            step = state.global_step
            if step % config.eval_every and step != state.max_steps:
                return
            clock = time.perf_counter()
            accuracy = val_accuracy()
            val_seconds += time.perf_counter() - clock
            curve.append({"step": step, "val_accuracy": accuracy})
            # Strictly better only: on ties the earlier (less trained) checkpoint is kept.
            if accuracy > best["accuracy"]:
                state_dict = model.state_dict()
                best.update(
                    accuracy=accuracy,
                    step=step,
                    state={k: v.detach().clone() for k, v in state_dict.items()},
                )

    dataset = Dataset.from_list(
        [{"prompt": p["prompt"], "completion": p["solution"]} for p in train]
    )
    args = sft_arguments(config, out_dir / "trainer", steps)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[KeepBestOnValidation()],
    )
    train_started = time.perf_counter()
    result = trainer.train()
    train_seconds = time.perf_counter() - train_started

    model.load_state_dict(best["state"])
    model.save_pretrained(str(out_dir / "model"))
    tokenizer.save_pretrained(str(out_dir / "model"))
    (out_dir / "val_curve.json").write_text(json.dumps(curve, indent=1))
    _remove_tree(out_dir / "trainer")

    tokens = trainer.state.num_input_tokens_seen or _count_tokens(trainer)
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return {
        "steps": steps,
        "epochs": steps * config.batch_size / config.size,
        "tokens_trained": int(tokens),
        "tokens_per_s": tokens / (train_seconds - val_seconds),
        "train_seconds": train_seconds,
        "val_seconds": val_seconds,
        "wall_s": time.perf_counter() - started,
        "best_step": best["step"],
        "best_val_accuracy": best["accuracy"],
        "final_val_accuracy": curve[-1]["val_accuracy"],
        "final_train_loss": losses[-1] if losses else result.training_loss,
        "threads": torch.get_num_threads(),
    }


def _count_tokens(trainer: Any) -> int:
    """Non-padding tokens of every batch the trainer drew, when it does not count them itself."""
    per_example = [len(ids) for ids in trainer.train_dataset["input_ids"]]
    mean = sum(per_example) / len(per_example)
    return int(mean * trainer.state.global_step * trainer.args.per_device_train_batch_size)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
