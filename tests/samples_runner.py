"""A runner for tests of the results store: writes `samples.parquet` as the verify and evaluate
stages do (runners.files.write_samples), with rows the test can predict."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

TEXTS = ("It is 4.\n#### 4", "l'équation donne \\boxed{7}", "", None)
"""Texts as samplers write them: lines, quotes, backslashes, other alphabets, empty, none."""


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    problems: int = 3
    samples: int = 2
    seed: int = 0


def rows(config: Config) -> list[dict]:
    return [
        {
            "problem_id": problem,
            "sample_id": sample,
            "extracted": str(problem + sample + config.seed),
            "correct": (problem + sample + config.seed) % 2 == 0,
            "reason": "equivalent" if (problem + sample) % 2 == 0 else "wrong answer",
            "rule": None if sample else "boxed",
            "false_positive": None,
            "first_wrong_step": sample or None,
            "n_tokens": 10 * problem + sample,
            "text": TEXTS[(problem + sample + config.seed) % len(TEXTS)],
        }
        for problem in range(config.problems)
        for sample in range(config.samples)
    ]


def run(config: Config, inputs: dict[str, Path], out_dir: Path) -> dict:
    from runners.files import SAMPLES, write_samples

    written = rows(config)
    write_samples(out_dir / SAMPLES, written)
    return {"candidates": len(written)}
