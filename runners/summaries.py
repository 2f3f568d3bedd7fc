"""What the stages that loop over problems report, computed from the rows they write.

A stage and the merge of its shards (runners.stages.merge) report through the same function
here, from the same rows in the same order, so a sharded stage's merge reports exactly (to the
last bit) what one unsharded step would: the results store's rows do not say whether a stage
ran in shards.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any


def sampling_cost(problems: int, samples: int, params: int, tokens: int) -> dict[str, Any]:
    """What a sample step's samples cost: `samples` of each of `problems` problems, `tokens`
    in all, from a model of `params` parameters (2 * parameters * tokens FLOPs)."""
    return {
        "problems": problems,
        "samples": samples,
        "params": params,
        "tokens": tokens,
        "mean_tokens": tokens / max(problems * samples, 1),
        "sampling_flops": 2.0 * params * tokens,
        "flops_per_problem": 2.0 * params * tokens / max(problems, 1),
    }


def judging(world: str, judged: list[dict[str, Any]], kept: list[dict[str, Any]]) -> dict:
    """A verify step's report: its candidates with their verdicts (`judged`, in candidate
    order), the training rows it kept, and the data metrics of the samples."""
    return {
        "candidates": len(judged),
        "kept": len(kept),
        "problems": len({c["problem_id"] for c in judged}),
        "problems_with_kept": len({row["id"] for row in kept}),
        **data_metrics(world, judged),
        "reasons": dict(Counter(c["reason"] for c in judged)),
    }


def data_metrics(world: str, judged: list[dict[str, Any]]) -> dict[str, Any]:
    """coverage@k, diversity@k, pass rate, false-positive rate and mean tokens of judged samples
    (k = the largest number of samples of one problem)."""
    from runners import worlds

    path_key = worlds.world(world).path_key
    by_problem: dict[int, list[dict[str, Any]]] = {}
    for sample in judged:
        by_problem.setdefault(sample["problem_id"], []).append(sample)
    paths = [
        {path_key(s, s["solution"]) for s in samples if s["correct"]}
        for samples in by_problem.values()
    ]
    correct = [s for s in judged if s["correct"]]
    # Known only in the demo world; elsewhere the column stays empty.
    judged_fp = [s["false_positive"] for s in correct if s["false_positive"] is not None]
    tokens = [s["n_tokens"] for s in judged if s.get("n_tokens") is not None]
    n = max(len(by_problem), 1)
    return {
        "k": max((len(samples) for samples in by_problem.values()), default=0),
        "correct": len(correct),
        "pass_rate": len(correct) / max(len(judged), 1),
        "coverage_at_k": sum(bool(p) for p in paths) / n,
        "diversity_at_k": sum(len(p) for p in paths) / n,
        "false_positive_rate": sum(judged_fp) / len(judged_fp) if judged_fp else None,
        "mean_tokens": sum(tokens) / len(tokens) if tokens else None,
    }


def rollouts(negatives: int, prefixes: int, rolled: int, successes: int) -> dict[str, Any]:
    """A rollout step's report: negatives rolled out, distinct prefixes, rollouts in all and
    how many of them reached the right answer."""
    return {
        "negatives": negatives,
        "prefixes": prefixes,
        "rollouts": rolled,
        "successes": successes,
        "rollout_accuracy": successes / max(rolled, 1),
    }


def evaluation(
    rows: list[dict[str, Any]], sample_rows: list[dict[str, Any]] | None, k: int
) -> dict[str, Any]:
    """An evaluate step's report from its problem rows (runners.files.PROBLEM_COLUMNS, in
    problem order) and, when it sampled k per problem, its sample rows: greedy accuracy, and
    the demo world's step truth where the rows have it (`n_steps`); pass@k and maj@k."""
    n = len(rows)
    correct = sum(row["correct"] for row in rows)
    metrics: dict[str, Any] = {
        "accuracy": correct / n,
        "n": n,
        "mean_tokens": mean(row["n_tokens"] for row in rows),
    }
    if rows[0]["n_steps"] is not None:  # the demo world's step truth
        metrics["false_positive_rate"] = sum(row["false_positive"] for row in rows) / max(
            correct, 1
        )
        metrics["all_steps_valid_rate"] = (
            sum(row["correct"] and row["first_wrong_step"] is None for row in rows) / n
        )
        by_steps: dict[str, list[int]] = {}
        for row in rows:
            by_steps.setdefault(str(row["n_steps"]), []).append(int(row["correct"]))
        metrics["accuracy_by_steps"] = {s: sum(c) / len(c) for s, c in sorted(by_steps.items())}
    if sample_rows is not None:
        metrics |= {
            "k": k,
            "pass_at_k": mean(row["pass_at_k"] for row in rows),
            "maj_at_k": mean(row["maj_at_k"] for row in rows),
            "sample_accuracy": mean(row["correct"] for row in sample_rows),
        }
    return metrics


def mean(values: Iterable[Any]) -> float:
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else 0.0
