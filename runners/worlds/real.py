"""The real worlds (GSM8K, MATH): problems read from files, judged by their final answer.

There is no step truth: a completion is right when its final answer equals the gold one
(runners.judging.equivalence, by the world's conventions in runners.judging.conventions), and
the false-positive columns stay empty. Solutions are cut into steps at line ends, and their
reasoning paths are the equations they state (runners.reasoning_paths.reasoning_path).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runners.worlds import Verdicts, World

REAL_WORLDS = ("gsm8k", "math")
"""The real worlds' names (each has conventions in runners.judging.conventions.WORLDS)."""


@dataclass(frozen=True)
class Real(World):
    knows_step_truth: bool = False
    # A step is a line; a line of fewer than 8 characters (a bare "= 12") joins the next.
    step_separator: str = "\n"
    min_step_chars: int = 8

    def path_key(self, problem: dict[str, Any], text: str) -> tuple[str, ...]:
        from runners.reasoning_paths import reasoning_path

        return reasoning_path(text)

    def judge(self, time_limit: float, workers: int, verifier: dict | None) -> Verdicts:
        from runners.judging.conventions import conventions_of
        from runners.judging.judge import AnswerJudge

        # The world's answer conventions (runners.judging.conventions.WORLDS), as the spec's
        # world.verify overrides them.
        return AnswerJudge(conventions_of(self.name, verifier), time_limit, workers)
