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
import os
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from runners import NO_EFFECT, OMITTED_WHEN_NONE
from runners.model import ModelConfig
from runners.prompts import PromptConfig

DEEPSPEED_CONFIGS = Path(__file__).parent / "deepspeed"
"""ZeRO configs shipped with the project: zero2, zero3, zero3-offload (`stages.train.deepspeed`)."""


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


class Config(Settings):
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


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def use_bf16(precision: str, cuda: bool) -> bool:
    """bf16 mixed precision: asked for, or `auto` on a GPU that has it; never on CPU."""
    import torch

    if precision == "fp32" or not cuda:
        return False
    supported = torch.cuda.is_bf16_supported()
    if precision == "bf16" and not supported:
        raise ValueError("precision=bf16, but this GPU has no bf16; use fp32 or auto")
    return supported


def lora_config(settings: LoraSettings) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        task_type="CAUSAL_LM",
    )


def _single_process_distributed_env() -> None:
    """DeepSpeed needs a process group; a step is one process unless a launcher set one up."""
    for key, value in {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29500",
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
    }.items():
        os.environ.setdefault(key, value)


CALLBACK_STATE = "keep_best_on_validation.pt"
"""File in each checkpoint folder with the validation state; written last, it marks the
checkpoint complete."""


def trainer_arguments(config: Config, output_dir: Path, steps: int, save_every: int = 0) -> Any:
    """trl's SFTConfig or DPOConfig for this run (shared with benchmarks/bench_trl_vs_torch.py);
    a checkpoint in output_dir every `save_every` steps, none when 0."""
    from trl import DPOConfig, SFTConfig

    cuda = _cuda_available()
    micro = config.micro_batch_size or config.batch_size
    # Full checkpoints (save_only_model=False): optimizer, scheduler and RNG are needed to
    # continue exactly. No save_total_limit: the previous checkpoint is removed by `run` only
    # once the new one is complete, where the Trainer would remove it before.
    saving = (
        {"save_strategy": "steps", "save_steps": save_every}
        if save_every
        else {"save_strategy": "no"}
    )

    objective = (
        {"completion_only_loss": True, "packing": False}
        if config.objective == "sft"
        else {"beta": config.dpo_beta}
    )
    return (SFTConfig if config.objective == "sft" else DPOConfig)(
        output_dir=str(output_dir),
        use_cpu=not cuda,
        bf16=use_bf16(config.precision, cuda),
        activation_checkpointing=config.gradient_checkpointing,
        deepspeed=str(DEEPSPEED_CONFIGS / f"{config.deepspeed}.json") if config.deepspeed else None,
        max_length=config.model.max_positions,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=config.batch_size // micro,
        max_steps=steps,
        learning_rate=config.lr,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        seed=config.seed,
        data_seed=config.seed,
        # Overheads that cost more than the tiny model's step: no checkpoints on disk unless
        # asked for, no built-in eval, rare logging, no worker processes.
        eval_strategy="no",
        logging_steps=max(steps // 4, 1),
        dataloader_num_workers=0,
        report_to="none",
        disable_tqdm=True,
        **saving,
        **objective,
    )


def run(
    config: Config, inputs: dict[str, Path], out_dir: Path, checkpoint_dir: Path | None = None
) -> dict[str, Any]:
    """Train, keep the weights best on validation; with `checkpoint_dir` (a folder private to
    this step that survives the process being killed), save resumable checkpoints there and
    continue from the latest complete one."""
    from runners.judging.judge import Judge

    # The judge's verifier forks its workers: start them before torch spins up threads.
    with Judge(config.world, verifier=config.verifier) as judge:
        return _train(config, inputs, out_dir, checkpoint_dir, judge)


def _train(
    config: Config, inputs: dict[str, Path], out_dir: Path, checkpoint_dir: Path | None, judge
) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import DPOTrainer, SFTTrainer

    from runners.generation import greedy_completions
    from runners.model import build_model, load_tokenizer_for
    from runners.prompts import render_prompt
    from runners.readers import read_jsonl, read_prefix

    started = time.perf_counter()
    data_dir = Path(inputs["data"])
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer_for(config.model, data_dir)
    train_dir = Path(inputs.get("train_data", data_dir))
    train, pool = read_prefix(train_dir, config.size)
    if config.size > pool:
        raise ValueError(f"size={config.size} exceeds the {pool} problems in {train_dir}")
    val = read_jsonl(data_dir / "val.jsonl", limit=config.val_problems)
    exemplars = read_jsonl(data_dir / "fewshot.jsonl") if config.prompt.few_shot else []
    val_prompts = [render_prompt(config.prompt, p["prompt"], exemplars, tokenizer) for p in val]
    if config.deepspeed:
        _single_process_distributed_env()
    if "init" in inputs:
        # Continue from another train step's model; for DPO it is also the reference.
        model = AutoModelForCausalLM.from_pretrained(str(Path(inputs["init"]) / "model"))
    else:
        model = build_model(config.model, tokenizer, config.seed)

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
    resume = _last_complete_checkpoint(trainer_dir) if save_every else None

    curve: list[dict[str, float]] = []
    best: dict[str, Any] = {"accuracy": -1.0, "step": 0, "state": None}
    if resume is not None:
        saved = torch.load(resume / CALLBACK_STATE, weights_only=True)
        curve, best = saved["curve"], saved["best"]
    val_seconds = 0.0

    class KeepBestOnValidation(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            nonlocal val_seconds
            step = state.global_step
            if step >= state.max_steps:
                # No checkpoint at the end: the model is saved next, and a Trainer resumed from
                # a checkpoint at max_steps mid-epoch trains one step more (transformers 5.23).
                control.should_save = False
            if step % config.eval_every and step != state.max_steps:
                return
            clock = time.perf_counter()
            accuracy = val_accuracy()
            val_seconds += time.perf_counter() - clock
            curve.append({"step": step, "val_accuracy": accuracy})
            # Strictly better only: on ties the earlier (less trained) checkpoint is kept.
            if config.keep == "best_on_val" and accuracy > best["accuracy"]:
                best.update(accuracy=accuracy, step=step, state=_trained_weights(model))

        def on_save(self, args, state, control, **kwargs):  # noqa: ANN001
            # Called after the Trainer wrote its part of the checkpoint: this file completes it.
            folder = trainer_dir / f"checkpoint-{state.global_step}"
            _save_atomically({"curve": curve, "best": best}, folder / CALLBACK_STATE)
            for older in trainer_dir.glob("checkpoint-*"):
                if older != folder:
                    _remove_tree(older)

    dataset = Dataset.from_list([training_row(config, p, exemplars, tokenizer) for p in train])
    args = trainer_arguments(config, trainer_dir, steps, save_every)
    trainer = (SFTTrainer if config.objective == "sft" else DPOTrainer)(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[KeepBestOnValidation()],
        peft_config=lora_config(config.lora) if config.lora else None,
    )
    train_started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
    train_seconds = time.perf_counter() - train_started

    if config.keep == "best_on_val":
        model.load_state_dict(best["state"], strict=False)
    else:
        best.update(step=trainer.state.global_step, accuracy=curve[-1]["val_accuracy"])
    # Adapters are merged: evaluation and samplers (vLLM) load one plain checkpoint.
    final = trainer.model.merge_and_unload() if config.lora else model
    _save(out_dir, final, tokenizer, curve)
    _remove_tree(out_dir / "trainer")

    resumed_from_step = _checkpoint_step(resume) if resume is not None else 0
    tokens = trainer.state.num_input_tokens_seen or _count_tokens(trainer)
    # Timings and throughput are of this attempt only: the steps it trained, not those before
    # its checkpoint. The log history is restored with the checkpoint, but the first loss
    # logged after a resume averages only the steps since the resume.
    attempt_tokens = tokens * (trainer.state.global_step - resumed_from_step) / steps
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return {
        "steps": steps,
        "examples": len(train),
        "epochs": steps * config.batch_size / len(train),
        "tokens_trained": int(tokens),
        "tokens_per_s": attempt_tokens / (train_seconds - val_seconds),
        "train_seconds": train_seconds,
        "val_seconds": val_seconds,
        "wall_s": time.perf_counter() - started,
        "best_step": best["step"],
        "best_val_accuracy": best["accuracy"],
        "final_val_accuracy": curve[-1]["val_accuracy"],
        "final_train_loss": losses[-1] if losses else result.training_loss,
        **_last_logged(
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
    model.save_pretrained(str(out_dir / "model"))
    tokenizer.save_pretrained(str(out_dir / "model"))
    (out_dir / "val_curve.json").write_text(json.dumps(curve, indent=1))


def _last_logged(trainer: Any, names: dict[str, str]) -> dict[str, float]:
    """The last logged value of each trainer log key present (DPO's reward margins)."""
    found = {}
    for entry in trainer.state.log_history:
        found |= {ours: entry[theirs] for theirs, ours in names.items() if theirs in entry}
    return found


def _trained_weights(model: Any) -> dict[str, Any]:
    """A CPU copy of the parameters being trained (with LoRA, the adapters only)."""
    return {
        name: parameter.detach().to("cpu", copy=True)
        for name, parameter in model.named_parameters()
        if parameter.requires_grad
    }


def _last_complete_checkpoint(trainer_dir: Path) -> Path | None:
    """The latest checkpoint folder holding CALLBACK_STATE; incomplete ones (a kill during a
    save) are removed."""
    complete = []
    for folder in trainer_dir.glob("checkpoint-*"):
        if (folder / CALLBACK_STATE).is_file():
            complete.append(folder)
        else:
            _remove_tree(folder)
    return max(complete, key=_checkpoint_step, default=None)


def _checkpoint_step(folder: Path) -> int:
    return int(folder.name.removeprefix("checkpoint-"))


def _save_atomically(value: Any, path: Path) -> None:
    """torch.save to a temporary name, then rename: a kill leaves the old file or the new one."""
    import torch

    partial = path.with_name(path.name + ".partial")
    torch.save(value, partial)
    os.replace(partial, path)


def training_row(config: Config, problem: dict, exemplars: list, tokenizer: Any) -> dict:
    """One example in trl's format: prompt and completion (SFT), or prompt, chosen and
    rejected (DPO); the prompt rendered as sampling and evaluation render it."""
    from runners.prompts import render_prompt, training_example

    if config.objective == "sft":
        return training_example(
            config.prompt, problem["prompt"], problem["solution"], exemplars, tokenizer
        )
    missing = {"chosen", "rejected"} - set(problem)
    if missing:
        raise ValueError(f"objective=dpo needs chosen and rejected solutions; missing {missing}")
    # Per-step pairs continue a prefix of a solution: it is part of the prompt.
    prompt = render_prompt(config.prompt, problem["prompt"], exemplars, tokenizer)
    prompt += problem.get("prefix", "")
    return {"prompt": prompt, "chosen": problem["chosen"], "rejected": problem["rejected"]}


def _count_tokens(trainer: Any) -> int:
    """Non-padding tokens of every batch the trainer drew, when it does not count them itself."""
    dataset = trainer.train_dataset
    # SFT tokenizes into input_ids; DPO into prompt_, chosen_ and rejected_input_ids.
    columns = [name for name in dataset.column_names if name.endswith("input_ids")]
    mean = sum(len(ids) for column in columns for ids in dataset[column]) / len(dataset)
    args = trainer.args
    per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps
    return int(mean * trainer.state.global_step * per_step)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
