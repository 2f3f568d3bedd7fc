"""How many times must the demo's tiny transformer see a fact to recall it?

The Zipf-skill world (runners/worlds/skill_law.py) predicts its exponent from the number of
exposures n a learner needs per skill; this probe measures that curve for the demo model, on
the smallest task that has skills: K facts F_k -> v_k (a value mod `modulus`), each training
problem using two of them, drawn with Zipf frequencies:

    prompt:   F17 + F3
    solution: F17 7 + F3 2 = 9

The loss is on the solution. After training, each fact is probed by greedy recall of its value
after its name, and recall is reported by how often the fact occurred in the training set. Then
1,000 fresh problems are solved greedily, against what the ideal learner of
runners/worlds/skill_law.py gets (n = 1 exposure, chance = 1/modulus): its expectation over
training sets, and its score with this very training set's counts.

    .venv/bin/python benchmarks/probe_fact_learning.py [--problems 400 1600] [--facts 400]

A bare torch loop on the demo's LlamaForCausalLM (2 layers, hidden 128), one thread.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parent)]
sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]
from common import machine  # noqa: E402
from runners.worlds.skill_law import SkillLaw  # noqa: E402

TEST_PROBLEMS = 1000
BUCKETS = [(0, 0), (1, 1), (2, 2), (3, 4), (5, 8), (9, 10**9)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, nargs="+", default=[400, 1600])
    parser.add_argument("--facts", type=int, default=400)
    parser.add_argument("--zipf", type=float, default=1.5)
    parser.add_argument("--modulus", type=int, default=11)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(
        f"facts {args.facts}, zipf {args.zipf}, modulus {args.modulus}, epochs {args.epochs}, "
        f"lr {args.lr}, seed {args.seed}"
    )
    for problems in args.problems:
        started = time.perf_counter()
        counts, recalled, solved, ideal_here = probe(problems, args)
        seconds = time.perf_counter() - started
        law = SkillLaw(args.facts, args.zipf, per_problem=2, chance=1 / args.modulus)
        expected = 1 - law.expected_error([problems])[0]
        cells = []
        for low, high in BUCKETS:
            chosen = (counts >= low) & (counts <= high)
            if chosen.any():
                label = f"{low}" if low == high else f"{low}-{high}" if high < 10**9 else f"{low}+"
                cells.append(f"seen {label}: {recalled[chosen].mean():.2f} ({chosen.sum()})")
        print(f"{problems} problems ({seconds:.0f} s): " + ", ".join(cells))
        print(
            f"  fresh problems solved: {solved:.3f}; the ideal learner: {ideal_here:.3f} with "
            f"these counts, {expected:.3f} expected"
        )


def probe(problems: int, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Train on `problems` problems; return each fact's training count, whether it is recalled
    (greedy) after its name, the share of fresh problems solved, and the ideal learner's."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    k, m = args.facts, args.modulus
    values = rng.integers(0, m, size=k)
    frequencies = SkillLaw(k, args.zipf).probabilities()
    drawn = rng.choice(k, size=(problems, 2), p=frequencies)
    counts = np.bincount(drawn.ravel(), minlength=k)
    # Token ids: values 0..m-1, then "+", "=", <bos>, <pad>, then the fact names.
    plus, equals, bos, pad = m, m + 1, m + 2, m + 3
    fact = m + 4

    def sequence(a: int, b: int) -> tuple[list[int], int]:
        prompt = [bos, fact + a, plus, fact + b]
        total = (values[a] + values[b]) % m
        solution = [fact + a, values[a], plus, fact + b, values[b], equals, total]
        return prompt + solution, len(prompt)

    rows = [sequence(a, b) for a, b in drawn]
    length = max(len(ids) for ids, _ in rows)
    inputs = torch.full((problems, length), pad)
    labels = torch.full((problems, length), -100)
    for i, (ids, start) in enumerate(rows):
        inputs[i, : len(ids)] = torch.tensor(ids)
        labels[i, start : len(ids)] = torch.tensor(ids[start:])
    torch.manual_seed(args.seed)
    model = LlamaForCausalLM(
        LlamaConfig(vocab_size=fact + k, hidden_size=128, intermediate_size=256,
                    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                    max_position_embeddings=32, tie_word_embeddings=True, pad_token_id=pad)
    )  # fmt: skip
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    batch = 32
    model.train()
    for _ in range(args.epochs):
        order = torch.randperm(problems)
        for first in range(0, problems, batch):
            chosen = order[first : first + batch]
            loss = model(input_ids=inputs[chosen], labels=labels[chosen]).loss
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()
    # Recall: after "<bos> F_k + F_0 F_k", is the next token v_k?
    probes = torch.tensor([[bos, fact + j, plus, fact, fact + j] for j in range(k)])
    with torch.no_grad():
        predicted = model(input_ids=probes).logits[:, -1, :m].argmax(-1).numpy()
    # Fresh problems, solved greedily: the last of the 7 solution tokens is the answer.
    tested = rng.choice(k, size=(TEST_PROBLEMS, 2), p=frequencies)
    ids = torch.tensor([[bos, fact + a, plus, fact + b] for a, b in tested])
    with torch.no_grad():
        for _ in range(7):
            ids = torch.cat([ids, model(input_ids=ids).logits[:, -1:].argmax(-1)], dim=1)
    answers = (values[tested[:, 0]] + values[tested[:, 1]]) % m
    solved = float(np.mean(ids[:, -1].numpy() == answers))
    usable = np.where(counts[tested] >= 1, 1.0, 1 / m)
    return counts, predicted == values, solved, float(np.mean(usable.prod(axis=1)))


if __name__ == "__main__":
    main()
