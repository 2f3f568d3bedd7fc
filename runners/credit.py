"""Step-level credit for incorrect solutions: steps, Q-values, advantages, the first pit, pairs.

A negative (an incorrect solution) is split into steps s_1..s_n (`split_steps`: pieces that
concatenate back to the text). From each prefix (the problem, then the problem with s_1, then
with s_1 s_2, ...) M rollouts of a policy continue to a final answer; Q of a prefix is the share
that reach the right one. With Q_0 the value of the bare problem and Q_i the value after step i
(Q_n = 0: the whole negative is wrong):

- the advantage of step i is Q_i - Q_{i-1}: how much that step changed the odds;
- the first pit is where the solution went wrong. `setlur`: the first step with the lowest
  advantage, where Q falls furthest. (Read as "the first step at the lowest Q", the rule would
  always pick the first step with Q = 0, since Q_n = 0, and equal the next one.) `no_success`
  (Self-Explore): the first step after which no rollout succeeds.

A per-step DPO pair is built around the pit: the prefix = the steps before it, rejected = the pit
step and what follows it in the negative, chosen = a rollout from the same prefix that reached the
right answer (none, no pair). Pure Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

PitRule = Literal["setlur", "no_success"]


def q_value(outcomes: Sequence[bool], best_of: int = 1) -> float:
    """Q of one prefix: the share of its rollouts that succeed; with best_of K, the share of
    groups of K consecutive rollouts with a success (the value of the best-of-K policy)."""
    if not outcomes:
        raise ValueError("every prefix needs at least one rollout")
    groups = [outcomes[i : i + best_of] for i in range(0, len(outcomes), best_of)]
    return sum(any(group) for group in groups) / len(groups)


def q_values(successes: Sequence[Sequence[bool]], best_of: int = 1) -> list[float]:
    """Q_0..Q_n from the outcomes of the rollouts of each prefix (prefix 0 = the bare problem)."""
    return [q_value(outcomes, best_of) for outcomes in successes]


def advantages(q: Sequence[float]) -> list[float]:
    """Advantage of steps 1..n: Q_i - Q_{i-1} (n values for n + 1 Q-values)."""
    return [after - before for before, after in zip(q[:-1], q[1:], strict=True)]


def first_pit(q: Sequence[float], rule: PitRule = "setlur") -> int | None:
    """The 1-based index of the pit step (Q_i is the value after step i), or None."""
    if len(q) < 2:
        return None
    if rule == "setlur":
        gains = advantages(q)
        return gains.index(min(gains)) + 1
    if rule == "no_success":
        return next((i for i in range(1, len(q)) if q[i] == 0.0), None)
    raise ValueError(f"unknown first-pit rule {rule!r}; expected setlur or no_success")


def split_steps(text: str, separator: str, min_chars: int = 0) -> list[str]:
    """`text` cut after every `separator`; a piece with fewer than `min_chars` non-space
    characters is merged into the next (the last into the one before). "".join of the pieces
    is `text`."""
    parts = text.split(separator)
    pieces = [part + separator for part in parts[:-1]] + [parts[-1]]
    merged: list[str] = []
    for piece in pieces:
        if merged and len(merged[-1].strip()) < min_chars:
            merged[-1] += piece
        elif piece:
            merged.append(piece)
    if len(merged) > 1 and len(merged[-1].strip()) < min_chars:
        last = merged.pop()
        merged[-1] += last
    return merged


def per_step_pair(
    steps: Sequence[str], pit: int, correct_continuations: Sequence[str]
) -> dict[str, str] | None:
    """The DPO pair at `pit` (1-based) for a negative cut into `steps` (pieces that concatenate
    back to it), choosing the first correct continuation of the prefix before the pit; None when
    no rollout from that prefix succeeded."""
    if not 1 <= pit <= len(steps):
        raise ValueError(f"pit {pit} is not a step of a {len(steps)}-step solution")
    if not correct_continuations:
        return None
    return {
        "prefix": "".join(steps[: pit - 1]),
        "chosen": correct_continuations[0],
        "rejected": "".join(steps[pit - 1 :]),
    }
