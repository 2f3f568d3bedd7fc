"""A tiny generate -> train -> evaluate run of the real stages (trl, transformers, torch)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from runners.files import PROBLEM_COLUMNS
from runners.model import ModelConfig
from runners.stages import evaluate, generate, train


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    data, trained, scored = root / "generate", root / "train", root / "evaluate"
    generated = generate.run(
        generate.Config(train_pool=300, val_problems=24, test_problems=40), {}, data
    )
    config = train.Config(
        size=200,
        seed=1,
        min_steps=12,
        max_steps=12,
        eval_every=5,
        val_problems=16,
        max_new_tokens=24,
        model=ModelConfig(hidden=32, intermediate=64, heads=2),
    )
    trained_metrics = train.run(config, {"data": data}, trained)
    scored_metrics = evaluate.run(
        evaluate.Config(batch_size=16, max_new_tokens=24), {"model": trained, "data": data}, scored
    )
    return generated, trained_metrics, scored_metrics, trained, scored, data


def test_train_writes_the_chosen_model_and_sane_metrics(pipeline):
    _, metrics, _, trained, _, _ = pipeline
    assert (trained / "model" / "config.json").exists()
    assert (trained / "model" / "tokenizer.json").exists()
    assert not (trained / "trainer").exists()  # no checkpoints left behind
    assert metrics["steps"] == 12
    assert metrics["best_step"] in (5, 10, 12)
    assert 0.0 <= metrics["best_val_accuracy"] <= 1.0
    assert metrics["tokens_trained"] > 12 * 32 * 20 and metrics["tokens_per_s"] > 0
    assert metrics["final_train_loss"] > 0 and metrics["wall_s"] > 0
    curve = json.loads((trained / "val_curve.json").read_text())
    assert [point["step"] for point in curve] == [5, 10, 12]
    json.dumps(metrics)


def test_evaluate_writes_one_row_per_test_problem(pipeline):
    generated, _, metrics, _, scored, _ = pipeline
    table = pq.read_table(scored / "problems.parquet")
    assert table.num_rows == generated["test"] == metrics["n"] == 40
    assert table.column_names == list(PROBLEM_COLUMNS)
    rows = table.to_pylist()
    assert [r["problem_id"] for r in rows] == list(range(40))
    assert all(r["n_steps"] >= 2 and r["n_tokens"] >= 1 for r in rows)
    # Right answers have a verdict on every step: no wrong step, or the first one's index.
    for r in rows:
        assert (r["first_wrong_step"] is None) or r["first_wrong_step"] >= 0
        assert r["reason"] in ("equivalent", "mismatch", "no answer found")
        assert r["correct"] == (r["reason"] == "equivalent")
    # Greedy only: no votes.
    assert all(r["pass_at_k"] is None and r["n_samples"] is None for r in rows)
    assert metrics["accuracy"] == sum(r["correct"] for r in rows) / 40
    assert 0.0 <= metrics["false_positive_rate"] <= 1.0
    json.dumps(metrics)


def test_train_rejects_a_size_beyond_the_pool(pipeline, tmp_path):
    data = pipeline[-1]
    with pytest.raises(ValueError, match="exceeds"):
        train.run(train.Config(size=10_000), {"data": data}, tmp_path / "out")


def test_stage_configs_are_strict():
    with pytest.raises(ValidationError):
        train.Config(learning_rate=1.0)
    with pytest.raises(ValidationError):
        evaluate.Config(split="test", temprature=0.7)
    settings = train.Settings()
    assert train.budget_steps(settings, 10**9) == settings.max_steps
    assert train.budget_steps(settings, 1) == settings.min_steps
    assert train.budget_steps(settings, 1000) == settings.steps_at_1k
    sizes = [125, 250, 500, 1000, 2000, 4000]
    steps = [train.budget_steps(settings, n) for n in sizes]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
