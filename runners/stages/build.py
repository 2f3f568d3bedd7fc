"""Stage `build`: the training data of an algorithm, from verified samples and rollouts.

Every kind writes `train.jsonl` (rows with `id` = problem id, in problem order, for problems
below `size`) and `pool.json` (`size` problems), which the train stage reads like any source.

- `rft` (Yuan et al. 2023): the original positives (input `positives`: the world's or a
  source's training rows) plus the correct samples (input `samples`, and any `pool_<name>`
  inputs: other samplers' verified samples, Yuan's union) whose reasoning path is new for the
  problem (the world's `path_key`, runners.worlds; `dedup: false` keeps every correct sample).
- `dpo`: pairs of a correct and an incorrect sample of the same problem (input `samples`),
  `pairs_per_problem` at most, in sample order.
- `per_step_dpo` (Setlur et al. 2024): from the rollout stage's Q-values (input `rollouts`),
  one pair per negative around its first pit (runners.credit): the prefix before the pit
  is part of the prompt, rejected = the negative from the pit on, chosen = a rollout from that
  prefix that reached the right answer. Both are whole continuations, so the EOS trl appends
  to each ends a finished solution. Writes `pits.parquet`: per negative, its Q-values, the pit
  each rule picks and, in the demo world, the true first wrong step; first-pit accuracy is the
  share of negatives whose estimated pit is the true one.

DPO rows are `{id, prompt, prefix, chosen, rejected}`: the train stage shows the model the
rendered prompt followed by `prefix`.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runners.credit import PitRule
from runners.files import JUDGED, NEGATIVES, PITS, POOL, TRAIN
from runners.stages import Input

# Which roles a kind reads: rft `positives`, `samples` and any `pool_<name>`; dpo `samples`;
# per_step_dpo `rollouts`.
INPUTS = (
    Input("positives", reads=(TRAIN,), required=False),
    Input("samples", reads=(JUDGED,), required=False),
    Input("pool_", reads=(JUDGED,), required=False, prefix=True),
    Input("rollouts", reads=(NEGATIVES,), required=False),
)
OUTPUTS = (TRAIN, POOL, PITS)
"""PITS: per_step_dpo only."""


class RftSettings(BaseModel):
    """Rejection-sampling fine-tuning."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: Literal["base", "sft"] = "base"
    """Train from the base model (Yuan) or continue from the SFT model."""
    pool: list[str] = []
    """Sampler sources whose verified samples join the learner's before dedup (Yuan's union)."""
    dedup: bool = True
    """Keep one correct sample per distinct reasoning path (and none repeating an original)."""


class DpoSettings(BaseModel):
    """DPO on whole self-samples."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pairs_per_problem: int = Field(1, ge=1)
    """(correct, incorrect) pairs per problem at most."""


class PerStepDpoSettings(BaseModel):
    """Per-step DPO around the first pit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pit: PitRule = "setlur"
    """setlur: the step with the lowest advantage; no_success: the first step after which no
    rollout succeeds."""


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["rft", "dpo", "per_step_dpo"]
    size: int = Field(ge=1)
    """Problems: rows for problem ids below it."""
    world: str = "demo"
    """How reasoning paths are read (runners.worlds.World.path_key) and whether the true pit
    is known."""
    dedup: bool = True
    """rft: see RftSettings."""
    pairs_per_problem: int = Field(1, ge=1)
    """dpo: see DpoSettings."""
    pit: PitRule = "setlur"
    """per_step_dpo: see PerStepDpoSettings."""


def run(config: Config, inputs: dict[str, Path], out_dir: Path) -> dict[str, Any]:
    from runners.files import write_jsonl, write_pool

    out_dir.mkdir(parents=True, exist_ok=True)
    builder = {"rft": _rft, "dpo": _dpo, "per_step_dpo": _per_step_dpo}[config.kind]
    rows, metrics = builder(config, inputs, out_dir)
    rows.sort(key=lambda row: row["id"])
    write_jsonl(out_dir / TRAIN, rows)
    write_pool(out_dir, config.size)
    return {"examples": len(rows), "problems_with_examples": len({r["id"] for r in rows})} | metrics


def _judged(folder: Path, size: int) -> list[dict[str, Any]]:
    from runners.files import read_jsonl

    return [s for s in read_jsonl(folder / JUDGED) if s["problem_id"] < size]


def _rft(config: Config, inputs: dict[str, Path], out_dir: Path) -> tuple[list, dict]:
    from runners import worlds
    from runners.files import read_prefix, training_row

    path_key = worlds.world(config.world).path_key
    positives, _ = read_prefix(Path(inputs["positives"]), config.size)
    pooled = ["samples", *sorted(role for role in inputs if role.startswith("pool_"))]
    samples = [s for role in pooled for s in _judged(Path(inputs[role]), config.size)]
    correct = [s for s in samples if s["correct"]]
    seen = {(row["id"], path_key(row, row["solution"])) for row in positives}
    kept = []
    for sample in correct:
        key = (sample["problem_id"], path_key(sample, sample["solution"]))
        if not config.dedup or key not in seen:
            seen.add(key)
            kept.append(sample)
    judged_fp = [s["false_positive"] for s in kept if s["false_positive"] is not None]
    return [*positives, *map(training_row, kept)], {
        "positives": len(positives),
        "samples": len(samples),
        "correct_samples": len(correct),
        "kept_samples": len(kept),
        "kept_false_positive_rate": sum(judged_fp) / len(judged_fp) if judged_fp else None,
    }


def _dpo(config: Config, inputs: dict[str, Path], out_dir: Path) -> tuple[list, dict]:
    by_problem: dict[int, dict[bool, list[dict[str, Any]]]] = {}
    for sample in _judged(Path(inputs["samples"]), config.size):
        sides = by_problem.setdefault(sample["problem_id"], {True: [], False: []})
        sides[sample["correct"]].append(sample)
    rows = []
    for problem_id, sides in by_problem.items():
        pairs = itertools.product(sides[True], sides[False])
        for chosen, rejected in itertools.islice(pairs, config.pairs_per_problem):
            rows.append(
                {
                    "id": problem_id,
                    "prompt": chosen["prompt"],
                    "prefix": "",
                    "chosen": chosen["solution"],
                    "rejected": rejected["solution"],
                }
            )
    return rows, {"pairs": len(rows)}


def _per_step_dpo(config: Config, inputs: dict[str, Path], out_dir: Path) -> tuple[list, dict]:
    from runners import worlds
    from runners.credit import first_pit, per_step_pair
    from runners.files import PIT_COLUMNS, read_jsonl, write_table

    knows_step_truth = worlds.world(config.world).knows_step_truth
    negatives = read_jsonl(Path(inputs["rollouts"]) / NEGATIVES)
    negatives = [n for n in negatives if n["problem_id"] < config.size]
    rows, pits = [], []
    for negative in negatives:
        steps, q = negative["steps"], negative["q"]
        pit = first_pit(q, config.pit)
        pair = None
        if pit is not None:
            pair = per_step_pair(steps, pit, [c for c in [negative["continuation"][pit - 1]] if c])
        if pair is not None:
            rows.append({"id": negative["problem_id"], "prompt": negative["prompt"], **pair})
        truth = true_pit(negative["first_wrong_step"], len(steps)) if knows_step_truth else None
        pits.append(
            {
                "problem_id": negative["problem_id"],
                "sample_id": negative["sample_id"],
                "n_steps": len(steps),
                "q_values": json.dumps(q),
                "pit": pit,
                "pit_setlur": first_pit(q, "setlur"),
                "pit_no_success": first_pit(q, "no_success"),
                "true_pit": truth,
                "paired": pair is not None,
            }
        )
    write_table(out_dir / PITS, PIT_COLUMNS, pits)
    return rows, {
        "negatives": len(negatives),
        "pairs": len(rows),
        "first_pit_accuracy": _pit_accuracy(pits, "pit"),
        "first_pit_accuracy_setlur": _pit_accuracy(pits, "pit_setlur"),
        "first_pit_accuracy_no_success": _pit_accuracy(pits, "pit_no_success"),
    }


def true_pit(first_wrong_step: int | None, n_steps: int) -> int:
    """The demo world's true first pit (1-based): the first wrong step, or, when every stated
    step is right, the last piece (the wrong or missing answer)."""
    return n_steps if first_wrong_step is None else first_wrong_step + 1


def _pit_accuracy(pits: list[dict[str, Any]], column: str) -> float | None:
    known = [p for p in pits if p["true_pit"] is not None]
    return sum(p[column] == p["true_pit"] for p in known) / len(known) if known else None
