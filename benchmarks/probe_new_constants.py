"""Does a base fine-tune better when its unseen constants' embeddings look like trained ones?

The pretraining corpus never shows c0, c1, ..., so a base's rows for them keep their initial
values (about half the norm of trained rows). This fine-tunes a base on `--size` teacher
problems twice, as the train stage does (lr 0.001, the demo's budget), once as it is and once
with the c rows drawn from the mean and covariance of the trained rows (Hewitt 2021,
"Initializing New Word Embeddings for Pretrained Language Models"), and prints both
validation accuracies.

    python benchmarks/probe_new_constants.py results/_store/steps/pretrain/pretrain-<id> \
        results/<experiment>/steps/generate/generate-<id> --size 200
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path


def initialise_constants(base: Path) -> None:
    """Draw the c rows from the trained rows' distribution, in place."""
    import torch
    from transformers import AutoModelForCausalLM

    from runners.worlds.demo import SKILL_PREFIX

    model = AutoModelForCausalLM.from_pretrained(base / "model")
    vocabulary = json.loads(next(base.rglob("tokenizer.json")).read_text())["model"]["vocab"]
    rows = torch.tensor([i for word, i in vocabulary.items() if word[:1] == SKILL_PREFIX
                         and word[1:].isdigit()])  # fmt: skip
    weight = model.get_input_embeddings().weight
    trained = torch.ones(weight.shape[0], dtype=torch.bool)
    trained[rows] = False
    with torch.no_grad():
        others = weight[trained]
        deviations = others - others.mean(0)
        draws = torch.randn(len(rows), len(others), generator=torch.Generator().manual_seed(0))
        weight[rows] = others.mean(0) + draws @ deviations / len(others) ** 0.5
    model.save_pretrained(base / "model")


def fine_tune(base: Path, data: Path, size: int, work: Path) -> float:
    from runners.stages import train

    model = json.loads((base / "config.json").read_text())["config"]["model"]
    config = train.Config(model=model, size=size, lr=1e-3, warmup_steps=10, steps_at_1k=350,
                          budget_exponent=0.5, min_steps=40, eval_every=40)  # fmt: skip
    result = train.run(config, {"data": data, "init": base}, work)
    return result["best_val_accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path, help="a pretrain step's folder")
    parser.add_argument("data", type=Path, help="a generate step's folder")
    parser.add_argument("--size", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        as_is = fine_tune(args.base, args.data, args.size, Path(scratch) / "as-is")
        initialised = Path(scratch) / "base"
        shutil.copytree(args.base, initialised)
        initialise_constants(initialised)
        drawn = fine_tune(initialised, args.data, args.size, Path(scratch) / "drawn")
    print(f"validation accuracy after fine-tuning on {args.size} problems: "
          f"as pretrained {as_is:.3f}, constants drawn like trained rows {drawn:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
