"""Stage `evaluate`: greedy pass@1 of a trained model on a split, and pass@k / maj@k when sampled.

Inputs: `model` (a train step's folder, holding `model/`) and `data` (the world's folder). The
greedy completion of every problem is judged (the demo world's step checker, or answer
equivalence on real data); with `samples: k`, k more completions per problem at `temperature`
give pass@k (any of the k correct) and maj@k (the most frequent extracted answer is correct; ties
go to the answer seen first).

Outputs: `problems.parquet` (runners.files.PROBLEM_COLUMNS, one row per problem) and, when
sampled, `samples.parquet` (one row per sample).

A shard (`shard`, runners.shards) evaluates its range of the split's problems and writes its
rows as `shard-problems.parquet` and `shard-samples.parquet`; the merge of the shards writes
the store's files and reports what one step on the whole split would
(runners.summaries.evaluation).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from runners import OMITTED_WHEN_NONE
from runners.decoding import DecodingSettings
from runners.files import MODEL, PROBLEMS, SAMPLES
from runners.prompts import PromptConfig
from runners.shards import Shard
from runners.stages import Input

INPUTS = (Input("model", reads=(MODEL,)), Input("data"))
OUTPUTS = (PROBLEMS, SAMPLES)
"""SAMPLES: when sampled (`samples` > 0)."""


class Settings(DecodingSettings):
    """Decoding settings: greedy pass@1, and k samples per problem for pass@k and maj@k."""

    samples: int = Field(0, ge=0)
    """k: sampled completions per problem for pass@k and maj@k; 0 for greedy only."""
    problems: int | None = Field(None, ge=1, json_schema_extra=OMITTED_WHEN_NONE)
    """The first this many problems of each eval set, in its one order (all of a smaller set);
    None: all. Raising it later narrows the eval problems' noise without training again, and
    with `shard_size` only the new shards run (the plan gives each shard its range and leaves
    this out of the shards' ids)."""

    @model_validator(mode="after")
    def _majority_needs_samples(self) -> Settings:
        if self.samples == 1:
            raise ValueError("samples=1 gives no majority vote: use 0 (greedy) or k >= 2")
        self.check_shards(random=self.samples > 0, aligned=True)
        return self


class Config(Settings):
    """Decoding settings plus which split, judged how, prompted how."""

    split: str = "test"
    """Split of the world's folder to evaluate on."""
    world: str = "demo"
    """Which judge: the demo world's checker, or answer equivalence (gsm8k, math)."""
    verifier: dict[str, Any] | None = Field(None, json_schema_extra=OMITTED_WHEN_NONE)
    """A real world's answer conventions and verifier version (runners.judging.equivalence
    `verifier_identity`), set by the plan; None in the demo world and left out of its id."""
    prompt: PromptConfig = PromptConfig()
    """How a problem is shown to the model (as in training)."""
    shard: Shard | None = Field(None, json_schema_extra=OMITTED_WHEN_NONE)
    """The range of the split's problem ids evaluated; None: all of them."""


def run(config: Config, inputs: dict[str, Path], out_dir: Path) -> dict[str, Any]:
    from runners.judging.judge import Judge

    # The judge's verifier forks its workers: start them before torch spins up threads.
    with Judge(config.world, verifier=config.verifier) as judge:
        return _evaluate(config, inputs, out_dir, judge)


def _evaluate(config: Config, inputs: dict[str, Path], out_dir: Path, judge) -> dict[str, Any]:
    from runners.decoding import load_sampler, sample
    from runners.files import (
        PROBLEM_COLUMNS,
        model_dir,
        read_exemplars,
        read_jsonl,
        row_file,
        split_file,
        write_samples,
        write_table,
    )
    from runners.progress import counting_prompts
    from runners.prompts import render_prompt
    from runners.summaries import evaluation

    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    problems = read_jsonl(Path(inputs["data"]) / split_file(config.split))
    if config.problems is not None:
        problems = problems[: config.problems]
    if config.shard is not None:
        if config.shard.stop > len(problems):
            raise ValueError(f"shard {config.shard} of {config.split}, which has "
                             f"{len(problems)} problems")  # fmt: skip
        problems = [p for p in problems if p["id"] in config.shard]
    sharded = config.shard is not None
    exemplars = read_exemplars(inputs["data"], config.prompt.few_shot)
    loaded, tokenizer = load_sampler(config.backend, model_dir(inputs["model"]))
    prompts = [render_prompt(config.prompt, p["prompt"], exemplars, tokenizer) for p in problems]

    with counting_prompts(loaded, len(prompts), "problems", phase="greedy"):
        greedy = [drawn[0] for drawn in sample(config.sampling(greedy=True), prompts, **loaded)]
    verdicts = judge(problems, [c.text for c in greedy])
    rows = [
        {
            "problem_id": p["id"],
            "correct": v["correct"],
            "reason": v["reason"],
            "rule": v["rule"],
            "false_positive": v["false_positive"],
            "first_wrong_step": v["first_wrong_step"],
            "n_steps": p.get("n_steps"),
            "pred_answer": v["extracted"],
            "gold_answer": p["answer"],
            "output": c.text,
            "n_tokens": c.n_tokens,
        }
        for p, v, c in zip(problems, verdicts, greedy, strict=True)
    ]
    sample_rows = None
    if config.samples:
        with counting_prompts(loaded, len(prompts), "problems", phase="sampled"):
            seeds = config.problem_seeds([p["id"] for p in problems])
            drawn = sample(config.sampling(config.samples), prompts, **loaded, seeds=seeds)
        sample_rows = _judge_samples(judge, problems, drawn)
        write_samples(out_dir / row_file(SAMPLES, sharded), sample_rows)
        by_problem = defaultdict(list)
        for sample_row in sample_rows:
            by_problem[sample_row["problem_id"]].append(sample_row)
        for row in rows:
            row |= _vote(by_problem[row["problem_id"]])
    write_table(out_dir / row_file(PROBLEMS, sharded), PROBLEM_COLUMNS, rows)
    metrics = evaluation(rows, sample_rows, config.samples)
    return metrics | {"wall_s": time.perf_counter() - started}


def _judge_samples(judge, problems: list[dict], drawn: list[list[Any]]) -> list[dict[str, Any]]:
    flat = [(p, i, c) for p, completions in zip(problems, drawn, strict=True)
            for i, c in enumerate(completions)]  # fmt: skip
    verdicts = judge([p for p, _, _ in flat], [c.text for _, _, c in flat])
    return [
        {"problem_id": p["id"], "sample_id": i, **v, "n_tokens": c.n_tokens, "text": c.text}
        for (p, i, c), v in zip(flat, verdicts, strict=True)
    ]


def _vote(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """pass@k and maj@k of one problem's k judged samples."""
    answers = Counter(_normalise(s["extracted"]) for s in samples if s["extracted"] is not None)
    majority = answers.most_common(1)[0][0] if answers else None
    voted = next(
        (
            s
            for s in samples
            if s["extracted"] is not None and _normalise(s["extracted"]) == majority
        ),
        None,
    )
    return {
        "n_samples": len(samples),
        "n_correct": sum(s["correct"] for s in samples),
        "pass_at_k": any(s["correct"] for s in samples),
        "maj_at_k": bool(voted and voted["correct"]),
    }


def _normalise(answer: str) -> str:
    """Votes count answers equal up to spacing, `$` and thousands separators; answers equal
    only symbolically (0.5 and 1/2) vote apart."""
    from runners.judging.answer_text import drop_thousands_separators

    return drop_thousands_separators(answer.replace(" ", "").replace("$", ""))
