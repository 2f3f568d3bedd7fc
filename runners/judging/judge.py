"""Deciding whether completions solve their problems, the same way in every stage.

`Judge(world)` asks the world for its judge (runners.worlds.World.judge), one of two:
- `StepJudge` (the demo world): its checker knows every step's truth, so it judges the answer
  and each step, and also reports false positives (a right answer reached through a wrong step)
  and the first wrong step;
- `AnswerJudge` (real worlds): the final answer against the gold one, through the killable,
  time-limited workers of runners.judging.equivalence; the false-positive columns stay empty.

Create a Judge before importing torch: the verifier forks its workers on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runners import worlds
from runners.judging.answers import NO_ANSWER
from runners.judging.comparison import EQUIVALENT, MISMATCH
from runners.judging.conventions import Conventions


class Judge:
    """The judge of a config's `world`. `verifier` is a stage config's `verifier`
    (runners.judging.conventions.verifier_identity: the conventions a spec's `world.verify`
    gives); None judges by the world's defaults."""

    def __init__(
        self,
        world: str,
        time_limit: float = 2.0,
        workers: int = 2,
        verifier: dict[str, Any] | None = None,
    ):
        self.world = world
        self._judge = worlds.world(world).judge(time_limit, workers, verifier)

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc) -> None:
        self._judge.close()

    def __call__(self, problems: Sequence[dict[str, Any]], texts: Sequence[str]) -> list[dict]:
        """Per completion: extracted (str | None), correct, reason, rule (str | None: the rule
        that found the answer, runners.judging.answers.RULES; None in the demo world),
        false_positive (bool | None) and first_wrong_step (int | None)."""
        return self._judge(problems, texts)


class StepJudge:
    """The demo world's: its checker judges the answer and every step."""

    def __call__(self, problems: Sequence[dict[str, Any]], texts: Sequence[str]) -> list[dict]:
        from runners.judging.demo_checker import check_solution

        verdicts = []
        for problem, text in zip(problems, texts, strict=True):
            checked = check_solution(problem, text)
            if checked["answer"] is None:
                reason = NO_ANSWER
            else:
                reason = EQUIVALENT if checked["correct"] else MISMATCH
            verdicts.append(
                {
                    "extracted": checked["answer"],
                    "correct": checked["correct"],
                    "reason": reason,
                    "rule": None,  # the demo checker reads its own answer line: no rule
                    "false_positive": checked["false_positive"],
                    "first_wrong_step": checked["first_wrong_step"],
                }
            )
        return verdicts

    def close(self) -> None:
        pass


class AnswerJudge:
    """A real world's: the final answer against the gold one, by `conventions`."""

    def __init__(self, conventions: Conventions, time_limit: float, workers: int):
        from runners.judging.equivalence import Verifier

        self._verifier = Verifier(time_limit, workers, conventions=conventions)

    def __call__(self, problems: Sequence[dict[str, Any]], texts: Sequence[str]) -> list[dict]:
        verdicts = self._verifier.verify_many(
            (p["answer"], t) for p, t in zip(problems, texts, strict=True)
        )
        return [
            {
                "extracted": v.extracted,
                "correct": v.correct,
                "reason": v.reason,
                "rule": v.rule,
                "false_positive": None,
                "first_wrong_step": None,
            }
            for v in verdicts
        ]

    def close(self) -> None:
        self._verifier.close()
