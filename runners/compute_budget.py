"""Compute-matched sampling (Bansal et al. 2024): samples per problem from a FLOPs budget.

Sampling one token from a P-parameter model costs about 2 * P FLOPs, so a sample of T tokens
costs 2 * P * T. A budget of B FLOPs per problem buys floor(B / (2 * P * T)) samples: at equal
budget a weak-cheap model gets P_strong / P_weak times as many samples as a strong-expensive one.
The same rule prices a plan (scaler.cost): a forward pass over T tokens costs 2 * P * T, and
training on them 6 * P * T (the backward pass costs twice the forward). Pure Python.
"""

from __future__ import annotations

import math


def sample_flops(params: float, tokens: float) -> float:
    """FLOPs to sample `tokens` tokens from a `params`-parameter model (or to read them: a
    forward pass)."""
    return 2.0 * params * tokens


def train_flops(params: float, tokens: float) -> float:
    """FLOPs to train a `params`-parameter model on `tokens` tokens: forward and backward."""
    return 6.0 * params * tokens


def samples_per_problem(budget_flops: float, params: float, tokens_per_sample: float) -> int:
    """Samples per problem that fit in `budget_flops` (at least 1 would exceed it: then 0)."""
    if budget_flops < 0 or params <= 0 or tokens_per_sample <= 0:
        raise ValueError("budget must be >= 0, params and tokens per sample > 0")
    # The small epsilon keeps exact multiples (budget = k samples' cost) from rounding down.
    return math.floor(budget_flops / sample_flops(params, tokens_per_sample) * (1 + 1e-12))


def matched_samples(samples_strong: int, params_strong: float, params_weak: float) -> int:
    """Samples of the weak model costing what `samples_strong` of the strong one cost (same
    tokens per sample)."""
    if params_strong <= 0 or params_weak <= 0:
        raise ValueError("parameter counts must be > 0")
    return math.floor(samples_strong * params_strong / params_weak * (1 + 1e-12))
