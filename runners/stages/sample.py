"""Stage `sample`: k completions per training problem from a model, for the verify stage.

Inputs: `data` (the world's folder: tokenizer, few-shot exemplars), `problems` (a folder whose
`train.jsonl` holds the problems to sample on, in id order: the world's, or a verified source's)
and `model` (a train step's folder) unless `name_or_path` names a checkpoint to sample as it is.
The first `problems` problems are sampled: a sampler's one pass over the largest data size
serves every smaller size, which is a prefix of it. A shard (`shard`, runners.shards) samples
the problems of its range of that order; with `seeding: per_problem` each problem's samples are
drawn from streams seeded by `seed` and the problem's id, so a shard draws what an unsharded
step draws for its problems.

Outputs: `candidates.jsonl` (each problem's fields, its `solution` replaced by the sample, with
`problem_id`, `sample_id` and `n_tokens`). Its metrics say what the samples cost: the
sampler's parameters, tokens and sampling FLOPs (2 * parameters * tokens).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from runners import OMITTED_WHEN_NONE
from runners.decoding import DecodingSettings
from runners.files import CANDIDATES, MODEL, TRAIN
from runners.prompts import PromptConfig
from runners.shards import Shard
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

    @model_validator(mode="after")
    def _shards_sample_as_one_step(self) -> Settings:
        self.check_shards(random=True, aligned=True)
        return self


class Config(Settings):
    problems: int = Field(1000, ge=1)
    """Problems sampled: the first `problems` of the `problems` input, or the shard's."""
    shard: Shard | None = Field(None, json_schema_extra=OMITTED_WHEN_NONE)
    """The range of problem ids sampled (a shard, runners.shards), `problems` of them; None:
    the first `problems`."""
    name_or_path: str | None = None
    """A checkpoint (Hub id or folder) to sample from as it is; None: the `model` input's."""
    world: str = "demo"
    """The world: samples are written as its solutions are (runners.worlds.World.sampled_text:
    the demo world's after a space)."""
    prompt: PromptConfig = PromptConfig()
    """How a problem is shown to the model (as in training and evaluation)."""

    @model_validator(mode="after")
    def _shard_counts_its_problems(self) -> Config:
        if self.shard is not None and self.shard.problems != self.problems:
            raise ValueError(f"problems {self.problems}: the shard {self.shard} holds "
                             f"{self.shard.problems}")  # fmt: skip
        return self


def run(config: Config, inputs: dict[str, Path], out_dir: Path) -> dict[str, Any]:
    from runners.decoding import load_sampler, sample_texts
    from runners.files import first_row_per_problem, model_dir, read_exemplars, write_jsonl
    from runners.model import count_parameters
    from runners.progress import counting_prompts
    from runners.prompts import render_prompt
    from runners.summaries import sampling_cost

    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    shard = config.shard or Shard(start=0, stop=config.problems)
    problems = first_row_per_problem(Path(inputs["problems"]), shard.stop, shard.start)
    exemplars = read_exemplars(inputs["data"], config.prompt.few_shot)
    # A checkpoint sampled as it is, or the model of the train step given as input.
    checkpoint = config.name_or_path or model_dir(inputs["model"])
    loaded, tokenizer = load_sampler(config.backend, checkpoint)
    prompts = [render_prompt(config.prompt, p["prompt"], exemplars, tokenizer) for p in problems]
    with counting_prompts(loaded, len(prompts), "problems"):
        seeds = config.problem_seeds([p["id"] for p in problems])
        drawn = sample_texts(
            config.world, config.sampling(config.samples), prompts, loaded, seeds=seeds
        )
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
    cost = sampling_cost(len(problems), config.samples, params, tokens)
    return cost | {"wall_s": time.perf_counter() - started}
