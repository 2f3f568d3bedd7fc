"""Fine-tuning a causal LM with trl: what the `train` stage and the `pretrain` stage share (the
settings, the step budget, the validation-chosen checkpoint and resuming).

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
accuracy is what is compared across sizes. The best weights are kept in memory (the model is
small).

Resuming: a requeued job (a Slurm time limit, a preemption) is killed and starts again in a
fresh out_dir. Given a `checkpoint_dir` that survives the kill, the Trainer saves a checkpoint
every `checkpoint_every` steps (weights, optimizer, scheduler, RNG, data position) and this
runner adds the validation state (curve, best step, best weights) to it, written last, so a
checkpoint folder without it is incomplete and ignored. A restarted run continues from the
latest complete checkpoint and ends with the weights an uninterrupted run would have had.
Without a `checkpoint_dir` nothing is written outside out_dir.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from runners import NO_EFFECT, OMITTED_WHEN_NONE
from runners.files import MODEL, VAL, VAL_CURVE
from runners.model import ModelConfig
from runners.prompts import PromptConfig


class LoraSettings(BaseModel):
    """Low-rank adapters (peft) instead of full fine-tuning; merged into the saved model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    r: int = Field(16, ge=1)
    """Adapter rank."""
    alpha: int = Field(32, ge=1)
    """Scale numerator (the update is scaled by alpha / r)."""
    dropout: float = Field(0.05, ge=0, lt=1)
    """Dropout on the adapter input."""
    target_modules: str | list[str] = "all-linear"
    """Modules that get adapters: 'all-linear' or names such as [q_proj, v_proj]."""


class Settings(BaseModel):
    """Optimisation hyper-parameters; defaults are tuned for the demo world on CPU."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lr: float = Field(2e-3, gt=0)
    """Peak learning rate (AdamW), held constant after warmup."""
    batch_size: int = Field(32, ge=1)
    """Sequences per optimisation step."""
    micro_batch_size: int | None = Field(None, ge=1, json_schema_extra=NO_EFFECT)
    """Sequences per forward pass; batch_size / micro_batch_size passes are accumulated into
    one step (None: all at once). Divides batch_size."""
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
    checkpoint_every: int = Field(100, ge=0, json_schema_extra=NO_EFFECT)
    """Steps between resumable checkpoints when the job can be requeued; 0: none."""
    keep: Literal["best_on_val", "last"] = "best_on_val"
    """Weights saved: those best on validation (kept in memory: fine for small models), or the
    last step's."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """auto: bf16 mixed precision on a GPU that supports it, fp32 elsewhere."""
    lora: LoraSettings | None = None
    """Train low-rank adapters instead of every weight."""
    deepspeed: Literal["zero2", "zero3", "zero3-offload"] | None = Field(
        None, json_schema_extra=NO_EFFECT
    )
    """A DeepSpeed ZeRO config shipped in runners/deepspeed/ (GPU only; needs the gpu extra)."""
    dpo_beta: float = Field(0.1, gt=0)
    """DPO: strength of the pull towards the reference model."""
    gradient_checkpointing: bool = Field(False, json_schema_extra=NO_EFFECT)
    """Recompute activations in the backward pass: less memory, more time."""
    collective_timeout_s: int = Field(600, ge=10, json_schema_extra=NO_EFFECT)
    """How long a rank of a step of several processes waits in a collective for the others
    before it fails: a vanished peer ends the step instead of hanging it."""

    @model_validator(mode="after")
    def _micro_batch_divides(self) -> Settings:
        if self.micro_batch_size and self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"micro_batch_size={self.micro_batch_size} does not divide "
                f"batch_size={self.batch_size}"
            )
        return self


class DpoTrainSettings(Settings):
    """Settings of the preference arms (dpo, per_step_dpo), which continue from the SFT model:
    a far smaller learning rate and fewer steps, checked on validation more often."""

    lr: float = Field(1e-4, gt=0)
    warmup_steps: int = Field(10, ge=0)
    steps_at_1k: int = Field(150, ge=1)
    budget_exponent: float = Field(0.6, ge=0)
    min_steps: int = Field(40, ge=1)
    eval_every: int = Field(20, ge=1)


class TrainConfig(Settings):
    """What to train: the model, how many problems, and the seed."""

    model: ModelConfig = ModelConfig()
    """Architecture (or pretrained checkpoint) to train."""
    size: int = Field(1000, ge=1)
    """Training problems: the first `size` lines of train.jsonl."""
    seed: int = 0
    """Seed of initialisation and data order."""
    objective: Literal["sft", "dpo"] = "sft"
    """Set by the algorithm: sft, next-token loss on solutions; dpo, preference loss on
    (chosen, rejected) pairs with the starting model (the `init` input) as the reference."""
    world: str = "demo"
    """Which judge scores validation: the demo world's checker or answer equivalence."""
    verifier: dict[str, Any] | None = Field(None, json_schema_extra=OMITTED_WHEN_NONE)
    """A real world's answer conventions and verifier version (runners.judging.equivalence
    `verifier_identity`), set by the plan; None in the demo world and left out of its id."""
    prompt: PromptConfig = PromptConfig()
    """How a problem is shown to the model (the same in sampling and evaluation)."""


def budget_steps(settings: Settings, size: int) -> int:
    """Optimisation steps for `size` problems: steps_at_1k * (size / 1000) ** budget_exponent,
    clamped to [min_steps, max_steps] (see the module docstring)."""
    steps = round(settings.steps_at_1k * (size / 1000) ** settings.budget_exponent)
    return max(settings.min_steps, min(settings.max_steps, steps))


def fit(
    config: TrainConfig, inputs: dict[str, Path], out_dir: Path, checkpoint_dir: Path | None = None
) -> dict[str, Any]:
    """Train as `config` says on the folders `inputs` names (`data`, and
    optionally `train_data` and `init`, as the train stage's inputs), keep the weights best on
    validation; with `checkpoint_dir` (a folder private to the step that survives the process
    being killed), save resumable checkpoints there and continue from the latest complete one."""
    from runners.judging.judge import Judge

    # The judge's verifier forks its workers: start them before torch spins up threads.
    with Judge(config.world, verifier=config.verifier) as judge:
        return _train(config, inputs, out_dir, checkpoint_dir, judge)


def _train(
    config: TrainConfig, inputs: dict[str, Path], out_dir: Path, checkpoint_dir: Path | None, judge
) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from trl import DPOTrainer, SFTTrainer

    from runners import trainer as trl_setup
    from runners.decoding import greedy_completions
    from runners.model import load_tokenizer_for
    from runners.prompts import render_prompt

    started = time.perf_counter()
    data_dir = Path(inputs["data"])
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer_for(config.model, data_dir)
    train, val, exemplars = _read_data(config, inputs)
    val_prompts = [render_prompt(config.prompt, p["prompt"], exemplars, tokenizer) for p in val]
    if config.deepspeed:
        trl_setup.single_process_distributed_env()
    model = _starting_model(config, inputs, tokenizer)

    def val_accuracy() -> float:
        outputs = greedy_completions(model, tokenizer, val_prompts, len(val), config.max_new_tokens)
        return sum(v["correct"] for v in judge(val, outputs)) / len(val)

    if not train:
        # Nothing to learn from (a sampler with no correct sample, no (correct, incorrect)
        # pair): the starting model is the result, as zero training steps would leave it.
        accuracy = val_accuracy()
        _save(out_dir, model, tokenizer, [{"step": 0, "val_accuracy": accuracy}])
        return {"steps": 0, "examples": 0, "best_step": 0, "best_val_accuracy": accuracy,
                "wall_s": time.perf_counter() - started}  # fmt: skip
    steps = budget_steps(config, config.size)
    save_every = config.checkpoint_every if checkpoint_dir is not None else 0
    trainer_dir = Path(checkpoint_dir) / "trainer" if save_every else out_dir / "trainer"
    resume = trl_setup.last_complete_checkpoint(trainer_dir) if save_every else None
    validation = trl_setup.Validation(
        val_accuracy, model, config.eval_every, config.keep == "best_on_val"
    )
    if resume is not None:
        validation.restore(torch.load(resume / trl_setup.CALLBACK_STATE, weights_only=True))

    examples = [trl_setup.trl_example(config, p, exemplars, tokenizer) for p in train]
    trainer = (SFTTrainer if config.objective == "sft" else DPOTrainer)(
        model=model,
        args=trl_setup.trainer_arguments(config, trainer_dir, steps, save_every),
        train_dataset=Dataset.from_list(examples),
        processing_class=tokenizer,
        callbacks=[trl_setup.validation_callback(validation, trainer_dir)],
        peft_config=trl_setup.lora_config(config.lora) if config.lora else None,
    )
    if config.deepspeed and config.deepspeed.startswith("zero3"):
        validation.snapshot = _saved_by(trainer, trainer_dir / "best")
    train_started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
    train_seconds = time.perf_counter() - train_started
    _keep_and_save(config, trainer, model, tokenizer, validation, out_dir)
    timing = {"train_seconds": train_seconds, "started": started}
    return _metrics(config, trainer, result, validation, steps, len(train), resume, timing)


def _read_data(config: TrainConfig, inputs: dict[str, Path]) -> tuple[list, list, list]:
    """The first `size` problems' training rows (of `train_data`, else the world's), the
    validation problems and the few-shot exemplars."""
    from runners.files import read_exemplars, read_jsonl, read_prefix

    data_dir = Path(inputs["data"])
    train_dir = Path(inputs.get("train_data", data_dir))
    train, pool = read_prefix(train_dir, config.size)
    if config.size > pool:
        raise ValueError(f"size={config.size} exceeds the {pool} problems in {train_dir}")
    val = read_jsonl(data_dir / VAL, limit=config.val_problems)
    return train, val, read_exemplars(data_dir, config.prompt.few_shot)


def _keep_and_save(
    config: TrainConfig, trainer: Any, model: Any, tokenizer: Any, validation: Any, out_dir: Path
) -> None:
    """The weights `keep` asks for, adapters merged, saved in out_dir; the trainer's folder goes."""
    from runners import trainer as trl_setup

    best = validation.best
    zero3 = bool(config.deepspeed and config.deepspeed.startswith("zero3"))
    if config.keep == "last":
        best.update(step=trainer.state.global_step, accuracy=validation.curve[-1]["val_accuracy"])
    elif not isinstance(best["state"], str):
        model.load_state_dict(best["state"], strict=False)
    if isinstance(best["state"], str) and config.keep == "best_on_val":
        # ZeRO-3: the trainer saved the whole model at its best step.
        if trl_setup.is_rank_0():
            shutil.copytree(best["state"], out_dir / MODEL)
            _save_curve_and_tokenizer(out_dir, tokenizer, validation.curve)
    elif zero3:
        trainer.save_model(str(out_dir / MODEL))  # every rank: it gathers the weights' slices
        if trl_setup.is_rank_0():
            _save_curve_and_tokenizer(out_dir, tokenizer, validation.curve)
    elif trl_setup.is_rank_0():  # the other ranks hold the same weights
        # Adapters are merged: evaluation and samplers (vLLM) load one plain checkpoint.
        final = trainer.model.merge_and_unload() if config.lora else model
        _save(out_dir, final, tokenizer, validation.curve)
    trl_setup.remove_tree(out_dir / "trainer")


def _saved_by(trainer: Any, folder: Path) -> Any:
    """A snapshot that has the trainer save the whole model in `folder` (a collective: every
    rank calls it, rank 0 writes the gathered weights) and keeps the folder's name."""

    def snapshot() -> str:
        trainer.save_model(str(folder))
        return str(folder)

    return snapshot


def _starting_model(config: TrainConfig, inputs: dict[str, Path], tokenizer: Any) -> Any:
    """Another train step's model (`init`; for DPO also the reference), or a new one."""
    from transformers import AutoModelForCausalLM

    from runners.files import model_dir
    from runners.model import build_model

    if "init" in inputs:
        return AutoModelForCausalLM.from_pretrained(str(model_dir(inputs["init"])))
    return build_model(config.model, tokenizer, config.seed)


def _metrics(
    config: TrainConfig,
    trainer: Any,
    result: Any,
    validation: Any,
    steps: int,
    examples: int,
    resume: Path | None,
    timing: dict[str, float],
) -> dict[str, Any]:
    """What a run reports: its data, its validation and this attempt's throughput."""
    import torch

    from runners import trainer as trl_setup

    resumed_from_step = trl_setup.checkpoint_step(resume) if resume is not None else 0
    tokens = trainer.state.num_input_tokens_seen or trl_setup.count_tokens(trainer)
    # Timings and throughput are of this attempt only: the steps it trained, not those before
    # its checkpoint. The log history is restored with the checkpoint, but the first loss
    # logged after a resume averages only the steps since the resume.
    attempt_tokens = tokens * (trainer.state.global_step - resumed_from_step) / steps
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    train_seconds = timing["train_seconds"]
    return {
        "steps": steps,
        "examples": examples,
        "epochs": steps * config.batch_size / examples,
        "tokens_trained": int(tokens),
        "tokens_per_s": attempt_tokens / (train_seconds - validation.seconds),
        "train_seconds": train_seconds,
        "val_seconds": validation.seconds,
        "wall_s": time.perf_counter() - timing["started"],
        "best_step": validation.best["step"],
        "best_val_accuracy": validation.best["accuracy"],
        "final_val_accuracy": validation.curve[-1]["val_accuracy"],
        "final_train_loss": losses[-1] if losses else result.training_loss,
        "train_losses": [[e["step"], e["loss"]] for e in trainer.state.log_history if "loss" in e],
        "world_size": trainer.args.world_size,
        **trl_setup.last_logged(
            trainer,
            {
                "rewards/margins": "final_reward_margin",
                "rewards/accuracies": "final_reward_accuracy",
            },
        ),
        "threads": torch.get_num_threads(),
        "resumed_from_step": resumed_from_step,
    }


def _save(out_dir: Path, model: Any, tokenizer: Any, curve: list[dict[str, float]]) -> None:
    """The model and tokenizer in out_dir/model/ and the validation curve beside them."""
    model.save_pretrained(str(out_dir / MODEL))
    _save_curve_and_tokenizer(out_dir, tokenizer, curve)


def _save_curve_and_tokenizer(out_dir: Path, tokenizer: Any, curve: list[dict[str, float]]) -> None:
    tokenizer.save_pretrained(str(out_dir / MODEL))
    (out_dir / VAL_CURVE).write_text(json.dumps(curve, indent=1))
