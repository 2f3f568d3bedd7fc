"""Deciding whether completions solve their problems, the same way in every stage.

The demo world knows every step's truth: its checker judges the answer and each step, so it also
reports false positives (a right answer reached through a wrong step) and the first wrong step.
Real worlds compare the final answer with the gold one through the killable, time-limited
workers of `runners.judging.equivalence`; their false-positive columns stay empty.

Create a Judge before importing torch: the verifier forks its workers on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runners.judging.answers import NO_ANSWER
from runners.judging.equivalence import EQUIVALENT, MISMATCH, Verifier, conventions_of

DEMO = "demo"


class Judge:
    """`verifier` is a stage config's `verifier` (runners.judging.equivalence.verifier_identity: the
    conventions a spec's `world.verify` gives); None judges by the world's defaults."""

    def __init__(
        self,
        world: str,
        time_limit: float = 2.0,
        workers: int = 2,
        verifier: dict[str, Any] | None = None,
    ):
        self.world = world
        if world == DEMO:
            if verifier is not None:
                raise ValueError("verifier: the demo world's checker has no answer conventions")
            self._verifier = None
        else:
            # Each real world's answer conventions (runners/judging/equivalence.py WORLDS), as
            # overridden.
            conventions = conventions_of(world, verifier)
            self._verifier = Verifier(time_limit, workers, conventions=conventions)

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc) -> None:
        if self._verifier is not None:
            self._verifier.close()

    def __call__(self, problems: Sequence[dict[str, Any]], texts: Sequence[str]) -> list[dict]:
        """Per completion: extracted (str | None), correct, reason, rule (str | None: the rule
        that found the answer, runners.judging.answers.RULES; None in the demo world),
        false_positive (bool | None) and first_wrong_step (int | None)."""
        if self._verifier is None:
            return [_demo_verdict(p, t) for p, t in zip(problems, texts, strict=True)]
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


def _demo_verdict(problem: dict[str, Any], text: str) -> dict[str, Any]:
    from runners.judging.demo_checker import check_solution

    checked = check_solution(problem, text)
    if checked["answer"] is None:
        reason = NO_ANSWER
    else:
        reason = EQUIVALENT if checked["correct"] else MISMATCH
    return {
        "extracted": checked["answer"],
        "correct": checked["correct"],
        "reason": reason,
        "rule": None,  # the demo checker reads its own answer line; no extraction rule
        "false_positive": checked["false_positive"],
        "first_wrong_step": checked["first_wrong_step"],
    }
