"""Stage `rollout`: the Q-value of every step prefix of the learner's incorrect samples.

Inputs: `model` (a train step: the policy that rolls out, the SFT model), `data` (the world's
folder) and `samples` (a verify step of that model's samples: `judged.jsonl`).

For each problem, the first `negatives_per_problem` incorrect samples are cut into steps by the
world's rule (runners.worlds.World.step_separator: the demo world after every ";", real worlds
after every line, lines of fewer than 8 characters merged into the next). From every prefix
but the whole negative (the bare problem, then one step more each time) `rollouts` x `best_of`
continuations are sampled and judged; identical prefixes (the bare problem, above all) are
rolled out once. Q of a prefix is the share of its
rollouts that reach the right answer. With `best_of` K > 1 the rollouts are taken K at a time
and a group succeeds when any of its K does: Q is then the value of the best-of-K policy. The
whole negative has Q = 0: it is incorrect.

Output: `negatives.jsonl`, one row per negative: problem_id, sample_id, prompt, `steps` (pieces
that concatenate back to the sample), `q` (Q_0..Q_n), `continuation` (per prefix, the first rollout
that succeeded, or null) and `first_wrong_step` (the demo world's truth, 0-based; null
elsewhere). The build stage turns them into per-step DPO pairs.

A shard (`shard`, runners.shards) rolls out the negatives of its range of problems. With
`seeding: per_problem` each prefix's rollouts come from streams seeded by `seed`, its problem
and the prefix, and (transformers) a batch holds the prefixes of one problem only, so a shard
rolls out what an unsharded step does for its problems; the cost is smaller batches.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from runners import OMITTED_WHEN_NONE
from runners.decoding import DecodingSettings
from runners.files import JUDGED, MODEL, NEGATIVES
from runners.prompts import PromptConfig
from runners.shards import Shard
from runners.stages import Input

INPUTS = (
    Input("model", reads=(MODEL,)),
    Input("data"),
    Input("samples", reads=(JUDGED,)),
)
OUTPUTS = (NEGATIVES,)


class Settings(DecodingSettings):
    """How Q-values are estimated."""

    rollouts: int = Field(4, ge=1)
    """M: rollouts per prefix (groups of `best_of` when best_of > 1)."""
    best_of: int = Field(1, ge=1)
    """K: a rollout succeeds when any of K samples does (the best-of-K policy's value)."""
    negatives_per_problem: int = Field(1, ge=1)
    """Incorrect samples of one problem rolled out (the first ones)."""

    @model_validator(mode="after")
    def _shards_roll_out_as_one_step(self) -> Settings:
        # Per-problem batches (_roll_out_prefixes) leave a shard's batches the unsharded ones.
        self.check_shards(random=True, aligned=False)
        return self


class Config(Settings):
    world: str = "demo"
    """Which judge and which step rule (see the module docstring)."""
    verifier: dict[str, Any] | None = Field(None, json_schema_extra=OMITTED_WHEN_NONE)
    """A real world's answer conventions and verifier version (runners.judging.equivalence
    `verifier_identity`), set by the plan; None in the demo world and left out of its id."""
    prompt: PromptConfig = PromptConfig()
    """How a problem is shown to the model (as in training)."""
    shard: Shard | None = Field(None, json_schema_extra=OMITTED_WHEN_NONE)
    """The range of problems whose negatives are rolled out; None: every problem's."""


def run(config: Config, inputs: dict[str, Path], out_dir: Path) -> dict[str, Any]:
    from runners.judging.judge import Judge

    # The judge's verifier forks its workers: start them before torch spins up threads.
    with Judge(config.world, verifier=config.verifier) as judge:
        return _roll_out(config, inputs, out_dir, judge)


def _roll_out(config: Config, inputs: dict[str, Path], out_dir: Path, judge) -> dict[str, Any]:
    from runners import worlds
    from runners.credit import q_value, split_steps
    from runners.files import read_jsonl, write_jsonl
    from runners.summaries import rollouts

    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    world = worlds.world(config.world)
    judged = read_jsonl(Path(inputs["samples"]) / JUDGED)
    if config.shard is not None:
        judged = [s for s in judged if s["problem_id"] in config.shard]
    negatives = choose_negatives(judged, config.negatives_per_problem)
    for negative in negatives:
        negative["steps"] = split_steps(
            negative["solution"], world.step_separator, world.min_step_chars
        )

    # Every distinct (problem, prefix) once.
    prefixes: dict[tuple[int, str], dict[str, Any]] = {}
    for negative in negatives:
        for i in range(len(negative["steps"])):
            key = (negative["problem_id"], "".join(negative["steps"][:i]))
            prefixes.setdefault(key, negative)
    outcomes, continuation = _roll_out_prefixes(config, inputs, prefixes, judge)

    rows = []
    for negative in negatives:
        steps = negative["steps"]
        keys_of = [(negative["problem_id"], "".join(steps[:i])) for i in range(len(steps))]
        rows.append(
            {
                "problem_id": negative["problem_id"],
                "sample_id": negative["sample_id"],
                "prompt": negative["prompt"],
                "steps": steps,
                "q": [q_value(outcomes[k], config.best_of) for k in keys_of] + [0.0],
                "continuation": [continuation[k] for k in keys_of],
                "first_wrong_step": negative.get("first_wrong_step"),
            }
        )
    write_jsonl(out_dir / NEGATIVES, rows)
    rolled = [outcome for outcomes_of in outcomes.values() for outcome in outcomes_of]
    metrics = rollouts(len(rows), len(prefixes), len(rolled), sum(rolled))
    return metrics | {"wall_s": time.perf_counter() - started}


Prefix = tuple[int, str]
"""(problem id, the steps of a negative before the one rolled out from, joined)."""


def _roll_out_prefixes(
    config: Config, inputs: dict[str, Path], prefixes: dict[Prefix, dict[str, Any]], judge
) -> tuple[dict[Prefix, list[bool]], dict[Prefix, str | None]]:
    """Per prefix, whether each of its rollouts reached the right answer, and the first that
    did (None when none did)."""
    from runners.decoding import load_sampler, sample_texts
    from runners.files import model_dir, read_exemplars
    from runners.prompts import render_prompt

    loaded, tokenizer = load_sampler(config.backend, model_dir(inputs["model"]))
    exemplars = read_exemplars(inputs["data"], config.prompt.few_shot)
    keys = list(prefixes)
    prompts = [
        render_prompt(config.prompt, prefixes[key]["prompt"], exemplars, tokenizer) + key[1]
        for key in keys
    ]
    per_prefix = config.rollouts * config.best_of
    seeds = config.problem_seeds([list(key) for key in keys])
    groups = [key[0] for key in keys] if seeds is not None else None
    drawn = sample_texts(
        config.world, config.sampling(per_prefix), prompts, loaded, seeds=seeds, groups=groups
    )
    flat = [(key, text) for key, texts in zip(keys, drawn, strict=True) for text, _ in texts]
    verdicts = judge([prefixes[key] for key, _ in flat], [key[1] + text for key, text in flat])
    outcomes: dict[Prefix, list[bool]] = {key: [] for key in keys}
    continuation: dict[Prefix, str | None] = dict.fromkeys(keys)
    for (key, text), verdict in zip(flat, verdicts, strict=True):
        outcomes[key].append(verdict["correct"])
        if verdict["correct"] and continuation[key] is None:
            continuation[key] = text
    return outcomes, continuation


def choose_negatives(judged: list[dict[str, Any]], per_problem: int) -> list[dict[str, Any]]:
    """The first `per_problem` incorrect samples of each problem, in sample order."""
    taken: dict[int, int] = {}
    chosen = []
    for sample in sorted(judged, key=lambda s: (s["problem_id"], s["sample_id"])):
        if sample["correct"] or taken.get(sample["problem_id"], 0) >= per_problem:
            continue
        taken[sample["problem_id"]] = taken.get(sample["problem_id"], 0) + 1
        chosen.append(sample)
    return chosen
