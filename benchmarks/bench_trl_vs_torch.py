"""Training throughput: trl's SFTTrainer (as runners/trainer.py sets it up) vs a bare loop.

Same process, same model architecture and initialisation, same tokenized data, same batch size
and optimiser (AdamW, constant learning rate). Both are timed after a few warm-up steps; each is
repeated and the median tokens/s is reported with the ratio trl / torch.

    python benchmarks/bench_trl_vs_torch.py [--steps 150] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

WARMUP_STEPS = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the demo uses 1)")
    parser.add_argument("--size", type=int, default=4000, help="training problems")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from runners.stages import generate, train

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        generate.run(
            generate.Config(train_pool=args.size, val_problems=8, test_problems=8), {}, data
        )
        config = train.Config(size=args.size)
        trl_rates, torch_rates = [], []
        for repeat in range(args.repeats):
            trl_rates.append(time_trl(config, data, args.steps, seed=repeat))
            torch_rates.append(time_bare_torch(config, data, args.steps, seed=repeat))
            print(
                f"repeat {repeat}: trl {trl_rates[-1]:,.0f} tok/s, "
                f"torch {torch_rates[-1]:,.0f} tok/s"
            )

    trl_rate, torch_rate = statistics.median(trl_rates), statistics.median(torch_rates)
    print(
        f"threads={args.threads} batch={config.batch_size} model={config.model.model_dump()}\n"
        f"median tokens/s: trl {trl_rate:,.0f}, bare torch {torch_rate:,.0f}, "
        f"ratio trl/torch {trl_rate / torch_rate:.2f}"
    )


def trl_dataset_and_tokenizer(config, data: Path):
    """The prompt/completion examples and the tokenizer."""
    from datasets import Dataset

    from runners.files import TRAIN, read_jsonl
    from runners.worlds.demo_tokenizer import load_tokenizer

    tokenizer = load_tokenizer(data / "tokenizer")
    rows = read_jsonl(data / TRAIN, limit=config.size)
    return Dataset.from_list(
        [{"prompt": p["prompt"], "completion": p["solution"]} for p in rows]
    ), tokenizer


def time_trl(config, data: Path, steps: int, seed: int) -> float:
    from transformers import TrainerCallback
    from trl import SFTTrainer

    from runners.model import build_model
    from runners.trainer import trainer_arguments

    dataset, tokenizer = trl_dataset_and_tokenizer(config, data)
    marks: dict[str, float] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            if state.global_step == WARMUP_STEPS:
                marks["start"] = time.perf_counter()
            if state.global_step == WARMUP_STEPS + steps:
                marks["end"] = time.perf_counter()

    with tempfile.TemporaryDirectory() as out:
        arguments = trainer_arguments(config, Path(out), steps + WARMUP_STEPS)
        trainer = SFTTrainer(
            model=build_model(config.model, tokenizer, seed),
            args=arguments,
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=[Clock()],
        )
        trainer.train()
    return (
        mean_tokens(trainer.train_dataset)
        * config.batch_size
        * steps
        / (marks["end"] - marks["start"])
    )


def time_bare_torch(config, data: Path, steps: int, seed: int) -> float:
    import torch
    from trl import SFTTrainer

    from runners.model import build_model
    from runners.trainer import trainer_arguments

    dataset, tokenizer = trl_dataset_and_tokenizer(config, data)
    with tempfile.TemporaryDirectory() as out:
        # Reuse trl's tokenization so both loops see identical sequences.
        prepared = SFTTrainer(
            model=build_model(config.model, tokenizer, seed),
            args=trainer_arguments(config, Path(out), 1),
            train_dataset=dataset,
            processing_class=tokenizer,
        ).train_dataset
    # trl stores the loss mask as labels (-100 on the prompt).
    examples = [(row["input_ids"], row["labels"]) for row in prepared]
    model = build_model(config.model, tokenizer, seed)
    model.train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    generator = torch.Generator().manual_seed(seed)

    def batch():
        picks = torch.randint(len(examples), (config.batch_size,), generator=generator).tolist()
        width = max(len(examples[i][0]) for i in picks)
        ids = torch.full((len(picks), width), tokenizer.pad_token_id)
        labels = torch.full((len(picks), width), -100)
        mask = torch.zeros((len(picks), width), dtype=torch.long)
        for row, i in enumerate(picks):
            tokens, targets = examples[i]
            n = len(tokens)
            ids[row, :n] = torch.tensor(tokens)
            mask[row, :n] = 1
            labels[row, :n] = torch.tensor(targets)
        return ids, mask, labels

    for step in range(WARMUP_STEPS + steps):
        if step == WARMUP_STEPS:
            start = time.perf_counter()
        ids, mask, labels = batch()
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    elapsed = time.perf_counter() - start
    return mean_tokens(prepared) * config.batch_size * steps / elapsed


def mean_tokens(dataset) -> float:
    lengths = [len(ids) for ids in dataset["input_ids"]]
    return sum(lengths) / len(lengths)


if __name__ == "__main__":
    main()
