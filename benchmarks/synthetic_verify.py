"""A verify stage that judges nothing: it writes `samples.parquet` for a range of problems with
synthetic verdicts and texts, so the results store can be measured at sampling volumes
(benchmarks/bench_store.py). Run through scaler.run.job.run_step, its folder is laid out as a
real verify step's: config, result, provenance, manifest, and the file in the schema the real
stage writes (runners.files.SAMPLE_COLUMNS).

Rows are made column by column (numpy, pyarrow) rather than as one dict per row, which at 10^7
rows would cost the benchmark more memory than the machine has.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

REASONS = ("equivalent", "wrong answer", "no answer")
RULES = ("boxed", "last number", "answer is")


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    first_problem: int = Field(0, ge=0)
    problems: int = Field(1000, ge=1)
    samples: int = Field(64, ge=1)
    """k: samples per problem."""
    words: int = Field(60, ge=1)
    """Mean words per sampled text (a GSM8K solution is 100-300 tokens)."""
    seed: int = 0


def run(config: Config, inputs: dict[str, Path], out_dir: Path) -> dict:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from runners.files import SAMPLE_COLUMNS, SAMPLES, write_parquet

    rng = np.random.default_rng(config.seed)
    k, n = config.samples, config.problems * config.samples
    problem_id = np.repeat(
        np.arange(config.first_problem, config.first_problem + config.problems), k
    )
    sample_id = np.tile(np.arange(k), config.problems)
    # Each problem has its own pass rate, as a sampler's problems do.
    rate = rng.beta(1.0, 1.5, config.problems)
    correct = rng.random(n) < np.repeat(rate, k)
    reason = np.where(correct, 0, rng.integers(1, 3, n))
    answer = np.where(correct, problem_id % 1000, rng.integers(0, 1000, n))
    lengths = rng.integers(config.words // 2, config.words * 3 // 2 + 1, n)
    vocabulary = pa.array([f"w{i}" for i in range(5000)] + [str(i) for i in range(1000)])
    words = pc.take(vocabulary, pa.array(rng.integers(0, len(vocabulary), int(lengths.sum()))))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    text = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), words), " ")
    table = pa.table(
        {
            "problem_id": problem_id,
            "sample_id": sample_id,
            "extracted": pc.cast(pa.array(answer), pa.string()),
            "correct": correct,
            "reason": pc.take(pa.array(REASONS), pa.array(reason)),
            "rule": pc.take(pa.array(RULES), pa.array(rng.integers(0, 3, n))),
            "false_positive": pa.array(np.where(correct, rng.random(n) < 0.05, False)),
            "first_wrong_step": pa.array(
                np.where(correct, -1, rng.integers(0, 8, n)), mask=correct
            ),
            "n_tokens": lengths * 2,
            "text": text,
        }
    )
    schema = pa.schema([(name, getattr(pa, kind)()) for name, kind in SAMPLE_COLUMNS.items()])
    write_parquet(out_dir / SAMPLES, table.cast(schema))  # the stages' writer
    return {"candidates": n, "problems": config.problems, "pass_rate": float(correct.mean())}
