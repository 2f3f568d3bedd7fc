"""Step-level credit for incorrect solutions: Q-values, advantages, the first pit, per-step pairs.

A negative (an incorrect solution) is split into steps s_1..s_n. From each prefix (the problem,
then the problem with s_1, then with s_1 s_2, ...) M rollouts of a policy continue to a final
answer; Q of a prefix is the share that reach the right one. With Q_0 the value of the bare
problem and Q_i the value after step i:

- the advantage of step i is Q_i - Q_{i-1}: how much that step changed the odds;
- the first pit is where the solution went wrong. `setlur`: the first step at which Q reaches
  its lowest value over the solution. `no_success` (Self-Explore): the first step after which no
  rollout succeeds. A solution with no such step (`no_success` with every Q > 0) has no pit.

A per-step DPO pair is built around the pit: prompt = problem + the steps before it, rejected =
the pit step and what follows it in the negative, chosen = a rollout from the same prefix that
reached the right answer (none, no pair). Pure Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

PitRule = Literal["setlur", "no_success"]


def q_values(successes: Sequence[Sequence[bool]]) -> list[float]:
    """Q_0..Q_n from the outcomes of the rollouts of each prefix (prefix 0 = the bare problem)."""
    if any(len(outcomes) == 0 for outcomes in successes):
        raise ValueError("every prefix needs at least one rollout")
    return [sum(outcomes) / len(outcomes) for outcomes in successes]


def advantages(q: Sequence[float]) -> list[float]:
    """Advantage of steps 1..n: Q_i - Q_{i-1} (n values for n + 1 Q-values)."""
    return [after - before for before, after in zip(q[:-1], q[1:], strict=True)]


def first_pit(q: Sequence[float], rule: PitRule = "setlur") -> int | None:
    """The 1-based index of the pit step (Q_i is the value after step i), or None."""
    steps = range(1, len(q))
    if not steps:
        return None
    if rule == "setlur":
        lowest = min(q[i] for i in steps)
        return next(i for i in steps if q[i] == lowest)
    if rule == "no_success":
        return next((i for i in steps if q[i] == 0.0), None)
    raise ValueError(f"unknown first-pit rule {rule!r}; expected setlur or no_success")


def per_step_pair(
    problem: str,
    steps: Sequence[str],
    pit: int,
    correct_continuations: Sequence[str],
    separator: str = "\n",
) -> dict[str, str] | None:
    """The DPO pair at `pit` (1-based), choosing the first correct continuation of the prefix
    before it; None when no rollout from that prefix succeeded."""
    if not 1 <= pit <= len(steps):
        raise ValueError(f"pit {pit} is not a step of a {len(steps)}-step solution")
    if not correct_continuations:
        return None
    before = list(steps[: pit - 1])
    prompt = separator.join([problem, *before]) + separator
    return {
        "prompt": prompt,
        "chosen": correct_continuations[0],
        "rejected": separator.join(steps[pit - 1 :]),
    }
