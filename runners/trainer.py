"""trl's trainers as the train stage drives them: their arguments, the validation callback, the
resumable checkpoints and what a run reports.

`trainer_arguments` is trl's SFTConfig or DPOConfig for a train config (also used by
benchmarks/bench_trl_vs_torch.py); `trl_example` turns a TRAIN row into trl's format.
`Validation` scores the model on validation problems every `eval_every` steps and keeps the best
weights; `validation_callback` hooks it into the Trainer, completes each checkpoint with its
state (CALLBACK_STATE, written last: a checkpoint folder without it is incomplete) and reports
the optimiser step, loss and validation accuracy after each step (runners.progress). transformers,
trl and peft are imported inside the functions.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runners.training import LoraSettings
    from runners.training import TrainConfig as Config

DEEPSPEED_CONFIGS = Path(__file__).parent / "deepspeed"
"""ZeRO configs shipped with the project: zero2, zero3, zero3-offload (`stages.train.deepspeed`)."""


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


def world_size() -> int:
    """Processes training together (scaler.run.ranks sets torch's variables); 1 alone."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_rank_0() -> bool:
    """Whether this process writes what the step keeps (one process alone is rank 0)."""
    return int(os.environ.get("RANK", "0")) == 0


def single_process_distributed_env() -> None:
    """DeepSpeed needs a process group; a step is one process unless a launcher set one up."""
    for key, value in {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29500",
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
    }.items():
        os.environ.setdefault(key, value)


def trainer_arguments(config: Config, output_dir: Path, steps: int, save_every: int = 0) -> Any:
    """trl's SFTConfig or DPOConfig for this run (shared with benchmarks/bench_trl_vs_torch.py);
    a checkpoint in output_dir every `save_every` steps, none when 0."""
    from trl import DPOConfig, SFTConfig

    cuda = _cuda_available()
    world = world_size()
    if config.batch_size % world:
        raise ValueError(
            f"batch_size={config.batch_size} does not split over the step's {world} processes"
        )
    # batch_size is the global batch: each rank draws its share of every step's sequences.
    micro = config.micro_batch_size or config.batch_size // world
    if config.batch_size % (micro * world):
        raise ValueError(
            f"micro_batch_size={micro} x {world} processes does not divide "
            f"batch_size={config.batch_size}"
        )
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
        gradient_accumulation_steps=config.batch_size // (micro * world),
        ddp_backend=None if cuda or world == 1 else "gloo",
        ddp_timeout=config.collective_timeout_s,
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


def trl_example(config: Config, problem: dict, exemplars: list, tokenizer: Any) -> dict:
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


CALLBACK_STATE = "keep_best_on_validation.pt"
"""File in each checkpoint folder with the validation state; written last, it marks the
checkpoint complete."""


class Validation:
    """Greedy accuracy on the validation problems every `every` steps (and at the last), the
    curve so far and, with `keep_best`, the weights best on it; `seconds` spent validating."""

    def __init__(self, accuracy: Callable[[], float], model: Any, every: int, keep_best: bool):
        self.accuracy, self.model, self.every, self.keep_best = accuracy, model, every, keep_best
        self.curve: list[dict[str, float]] = []
        self.best: dict[str, Any] = {"accuracy": -1.0, "step": 0, "state": None}
        self.seconds = 0.0
        self.snapshot: Callable[[], Any] = lambda: trained_weights(model)
        """What keeping the best weights keeps: a copy in memory, or (ZeRO-3, whose ranks
        each hold a slice of every weight) the folder the trainer saved them to."""

    def restore(self, saved: dict[str, Any]) -> None:
        """Continue from a checkpoint's CALLBACK_STATE."""
        self.curve, self.best = saved["curve"], saved["best"]

    def state(self) -> dict[str, Any]:
        return {"curve": self.curve, "best": self.best}

    def at_step(self, step: int, max_steps: int) -> None:
        if step % self.every and step != max_steps:
            return
        clock = time.perf_counter()
        accuracy = self.accuracy()
        self.seconds += time.perf_counter() - clock
        self.curve.append({"step": step, "val_accuracy": accuracy})
        # Strictly better only: on ties the earlier (less trained) checkpoint is kept.
        if self.keep_best and accuracy > self.best["accuracy"]:
            self.best.update(accuracy=accuracy, step=step, state=self.snapshot())


def validation_callback(validation: Validation, trainer_dir: Path) -> Any:
    """A TrainerCallback that validates after each step and completes each checkpoint saved in
    `trainer_dir` with the validation state, removing the checkpoint before it."""
    from transformers import TrainerCallback

    from runners.progress import report

    class KeepBestOnValidation(TrainerCallback):
        loss: float | None = None
        """The last logged training loss (logged every `logging_steps`), for the progress."""

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            if state.global_step >= state.max_steps:
                # No checkpoint at the end: the model is saved next, and a Trainer resumed from
                # a checkpoint at max_steps mid-epoch trains one step more (transformers 5.23).
                control.should_save = False
            validation.at_step(state.global_step, state.max_steps)
            latest = validation.curve[-1]["val_accuracy"] if validation.curve else None
            report(state.global_step, state.max_steps, "steps", loss=self.loss, val_accuracy=latest)

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
            if logs and isinstance(logs.get("loss"), (int, float)):
                self.loss = float(logs["loss"])

        def on_save(self, args, state, control, **kwargs):  # noqa: ANN001
            # Called after the Trainer wrote its part of the checkpoint: this file completes it.
            # Every rank calls it; the ranks' validation states are equal, rank 0 writes it.
            if not is_rank_0():
                return
            folder = trainer_dir / f"checkpoint-{state.global_step}"
            save_atomically(validation.state(), folder / CALLBACK_STATE)
            for older in trainer_dir.glob("checkpoint-*"):
                if older != folder:
                    remove_tree(older)

    return KeepBestOnValidation()


def last_complete_checkpoint(trainer_dir: Path) -> Path | None:
    """The latest checkpoint folder holding CALLBACK_STATE; incomplete ones (a kill during a
    save) are removed."""
    complete = []
    for folder in trainer_dir.glob("checkpoint-*"):
        if (folder / CALLBACK_STATE).is_file():
            complete.append(folder)
        elif is_rank_0():  # the other ranks find the same ones complete and leave the rest
            remove_tree(folder)
    return max(complete, key=checkpoint_step, default=None)


def checkpoint_step(folder: Path) -> int:
    return int(folder.name.removeprefix("checkpoint-"))


def save_atomically(value: Any, path: Path) -> None:
    """torch.save to a temporary name, then rename: a kill leaves the old file or the new one."""
    import torch

    partial = path.with_name(path.name + ".partial")
    torch.save(value, partial)
    os.replace(partial, path)


def trained_weights(model: Any) -> dict[str, Any]:
    """A CPU copy of the parameters being trained (with LoRA, the adapters only)."""
    return {
        name: parameter.detach().to("cpu", copy=True)
        for name, parameter in model.named_parameters()
        if parameter.requires_grad
    }


def last_logged(trainer: Any, names: dict[str, str]) -> dict[str, float]:
    """The last logged value of each trainer log key present (DPO's reward margins)."""
    found = {}
    for entry in trainer.state.log_history:
        found |= {ours: entry[theirs] for theirs, ours in names.items() if theirs in entry}
    return found


def count_tokens(trainer: Any) -> int:
    """Non-padding tokens of every batch the trainer drew, when it does not count them itself."""
    dataset = trainer.train_dataset
    # SFT tokenizes into input_ids; DPO into prompt_, chosen_ and rejected_input_ids.
    columns = [name for name in dataset.column_names if name.endswith("input_ids")]
    mean = sum(len(ids) for column in columns for ids in dataset[column]) / len(dataset)
    args = trainer.args
    per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
    return int(mean * trainer.state.global_step * per_step)


def remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
