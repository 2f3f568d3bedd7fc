"""Stage `sample`: k completions per training problem from a model, for the verify stage.

Inputs: `data` (the world's folder: tokenizer, few-shot exemplars), `problems` (a folder whose
`train.jsonl` holds the problems to sample on, in id order: the world's, or a verified source's)
and `model` (a train step's folder) unless `name_or_path` names a checkpoint to sample as it is.
The first `problems` problems are sampled: a sampler's one pass over the largest data size
serves every smaller size, which is a prefix of it.

Outputs: `candidates.jsonl` (each problem's fields, its `solution` replaced by the sample, with
`problem_id`, `sample_id` and `n_tokens`). Its metrics say what the samples cost: the
sampler's parameters, tokens and sampling FLOPs (2 * parameters * tokens).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import Field

from runners.decoding import DecodingSettings
from runners.files import CANDIDATES, MODEL, TRAIN
from runners.prompts import PromptConfig
from runners.stages import Input

INPUTS = (
    Input("data"),
    Input("problems", reads=(TRAIN,)),
    Input("model", reads=(MODEL,), required=False),
)
OUTPUTS = (CANDIDATES,)


class Settings(DecodingSettings):
    """How the learner samples its own solutions (RFT, DPO, per-step DPO); also the default for
    samplers named as sources."""

    samples: int = Field(4, ge=1)
    """k: samples per problem."""


class Config(Settings):
    problems: int = Field(1000, ge=1)
    """Problems sampled: the first `problems` of the `problems` input."""
    name_or_path: str | None = None
    """A checkpoint (Hub id or folder) to sample from as it is; None: the `model` input's."""
    world: str = "demo"
    """The world: samples are written as its solutions are (runners.worlds.World.sampled_text:
    the demo world's after a space)."""
    prompt: PromptConfig = PromptConfig()
    """How a problem is shown to the model (as in training and evaluation)."""


def run(config: Config, inputs: dict[str, Path], out_dir: Path) -> dict[str, Any]:
    from runners.decoding import load_sampler, sample_texts
    from runners.files import first_row_per_problem, model_dir, read_exemplars, write_jsonl
    from runners.model import count_parameters
    from runners.progress import counting_prompts
    from runners.prompts import render_prompt

    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    problems = first_row_per_problem(Path(inputs["problems"]), config.problems)
    exemplars = read_exemplars(inputs["data"], config.prompt.few_shot)
    # A checkpoint sampled as it is, or the model of the train step given as input.
    checkpoint = config.name_or_path or model_dir(inputs["model"])
    loaded, tokenizer = load_sampler(config.backend, checkpoint)
    prompts = [render_prompt(config.prompt, p["prompt"], exemplars, tokenizer) for p in problems]
    with counting_prompts(loaded, len(prompts), "problems"):
        drawn = sample_texts(config.world, config.sampling(config.samples), prompts, loaded)
    candidates = [
        {
            **{k: v for k, v in problem.items() if k != "id"},
            "problem_id": problem["id"],
            "sample_id": sample_id,
            "solution": text,
            "n_tokens": n_tokens,
        }
        for problem, completions in zip(problems, drawn, strict=True)
        for sample_id, (text, n_tokens) in enumerate(completions)
    ]
    write_jsonl(out_dir / CANDIDATES, candidates)
    params = count_parameters(loaded.get("model"), checkpoint)
    tokens = sum(c["n_tokens"] for c in candidates)
    return {
        "problems": len(problems),
        "samples": config.samples,
        "params": params,
        "tokens": tokens,
        "mean_tokens": tokens / max(len(candidates), 1),
        "sampling_flops": 2.0 * params * tokens,
        "flops_per_problem": 2.0 * params * tokens / max(len(problems), 1),
        "wall_s": time.perf_counter() - started,
    }
