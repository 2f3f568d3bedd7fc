"""The worlds a spec can run in, behind one interface: what a stage asks of a world.

`world(name)` returns the frozen `World` of a config's `world` field: the demo world
(runners.worlds.demo: generated problems with known step truth, a word-level tokenizer and tiny
models built locally) or a real one (runners.worlds.real: GSM8K, MATH, Hugging Face models).
Stages never compare world names; they ask the object how to judge a completion, how to cut a
solution into steps, how to key its reasoning path and whether step truth is known.

Pure Python at import: the world modules and their judges are imported when first asked for.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Protocol


class Verdicts(Protocol):
    """A world's judge: per completion, extracted, correct, reason, rule, false_positive and
    first_wrong_step (runners.judging.judge.Judge); `close` ends any worker it started."""

    def __call__(self, problems: Any, texts: Any) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class World:
    """What a world must provide. Subclasses: runners.worlds.demo.Demo, runners.worlds.real.Real."""

    name: str
    knows_step_truth: bool
    """Its checker judges every step: verdicts carry false positives and the first wrong step,
    and per-step DPO's true first pit is known."""
    step_separator: str
    """What rollouts cut a solution after (runners.credit.split_steps)."""
    min_step_chars: int
    """Fewest non-space characters of a step; shorter pieces join the next."""

    def sampled_text(self, text: str) -> str:
        """A sampled completion as the world's solutions are written."""
        return text

    def path_key(self, problem: dict[str, Any], text: str) -> tuple[str, ...]:
        """The reasoning path of a solution (runners.reasoning_paths)."""
        raise NotImplementedError

    def judge(self, time_limit: float, workers: int, verifier: dict | None) -> Verdicts:
        """The judge of this world's completions; `verifier` is a stage config's (None: the
        world's default conventions)."""
        raise NotImplementedError


@functools.cache
def world(name: str) -> World:
    """The world a config's `world` names: demo, gsm8k or math."""
    from runners.worlds.demo import DEMO
    from runners.worlds.real import REAL_WORLDS, Real

    if name == DEMO.name:
        return DEMO
    if name in REAL_WORLDS:
        return Real(name)
    raise ValueError(f"world {name!r}: expected one of {', '.join((DEMO.name, *REAL_WORLDS))}")
