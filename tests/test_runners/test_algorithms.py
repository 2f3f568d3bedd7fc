"""The papers' algorithms: data built from samples and rollouts (hand-made cases with known
answers), their place in the plan, and a small grid with every algorithm run for real."""

from __future__ import annotations

import itertools
import json

import pytest

from conftest import SMALL_SPEC, open_db, write_spec
from runners.credit import q_value
from runners.files import read_jsonl, write_jsonl
from runners.stages import build, rollout
from runners.summaries import data_metrics
from runners.worlds.demo import WorldConfig, make_problem, render_step
from scaler.plan import expand
from scaler.spec.schema import Spec


def _two_order_problem() -> dict:
    """A demo problem whose needed unknowns can be computed in two orders."""
    from runners.worlds.demo import count_valid_orders

    world = WorldConfig(min_steps=3, max_steps=3)
    for index in range(200):
        problem = make_problem(world, 0, "train", index)
        if count_valid_orders(problem) == 2 and len(problem["definitions"]) == 3:
            return {"id": index, **problem}
    raise AssertionError("no two-order problem in the first 200")


def _solution(problem: dict, order: list[str], wrong: str | None = None) -> str:
    steps = []
    for name in order:
        value = (problem["values"][name] + 1) % problem["modulus"] if name == wrong else None
        steps.append(render_step(problem, name, result=value))
    answer = problem["answer"] if wrong is None else str((int(problem["answer"]) + 1) % 11)
    return " " + " ; ".join([*steps, f"answer {answer}"])


def _judged(problem: dict, sample_id: int, text: str) -> dict:
    from runners.judging.judge import Judge

    with Judge("demo") as judge:
        [verdict] = judge([problem], [text])
    fields = {k: v for k, v in problem.items() if k != "id"}
    return (
        fields | {"problem_id": problem["id"], "sample_id": sample_id, "solution": text} | verdict
    )


@pytest.fixture
def demo_samples(tmp_path):
    """One problem: the teacher's solution, a sample repeating its path, one taking the other
    order, and one wrong in its second step."""
    problem = _two_order_problem()
    teacher = problem["solution"]
    needed = problem["needed"]
    listed = [name for name in problem["definitions"] if name in needed]
    # The other valid order of the needed steps.
    other = next(
        list(order)
        for order in itertools.permutations(listed)
        if list(order) != listed
        and _judged(problem, 0, _solution(problem, list(order)))["first_wrong_step"] is None
    )
    samples = [
        _judged(problem, 0, teacher),
        _judged(problem, 1, _solution(problem, other)),
        _judged(problem, 2, _solution(problem, listed, wrong=listed[1])),
        _judged(problem, 3, _solution(problem, other)),
    ]
    positives = tmp_path / "positives"
    positives.mkdir()
    write_jsonl(positives / "train.jsonl", [problem | {"id": 0}])
    folder = tmp_path / "judged"
    folder.mkdir()
    for s in samples:
        s["problem_id"] = 0
    write_jsonl(folder / "judged.jsonl", samples)
    return problem, samples, positives, folder


def test_samples_are_judged_with_the_step_truth(demo_samples):
    _, samples, _, _ = demo_samples
    assert [s["correct"] for s in samples] == [True, True, False, True]
    assert samples[2]["first_wrong_step"] == 1
    metrics = data_metrics("demo", samples)
    # One problem; two distinct correct paths among the k = 4 samples.
    assert metrics["k"] == 4
    assert metrics["coverage_at_k"] == 1.0
    assert metrics["diversity_at_k"] == 2.0
    assert metrics["pass_rate"] == 0.75
    assert metrics["false_positive_rate"] == 0.0


def test_rft_keeps_the_originals_and_one_sample_per_new_path(demo_samples, tmp_path):
    _, samples, positives, judged = demo_samples
    inputs = {"positives": positives, "samples": judged}
    metrics = build.run(build.Config(kind="rft", size=1), inputs, tmp_path / "rft")
    rows = read_jsonl(tmp_path / "rft" / "train.jsonl")
    # The teacher's solution, then the other order once: the repeat of the teacher's path,
    # the wrong sample and the second copy of the other order are dropped.
    assert [r["solution"] for r in rows] == [samples[0]["solution"], samples[1]["solution"]]
    assert metrics["kept_samples"] == 1 and metrics["correct_samples"] == 3
    assert all(r["id"] == 0 and "definitions" in r and "correct" not in r for r in rows)
    everything = build.run(build.Config(kind="rft", size=1, dedup=False), inputs, tmp_path / "all")
    assert everything["kept_samples"] == 3
    # Samples of problems beyond the size are left out.
    assert build.run(build.Config(kind="rft", size=1), inputs | {"pool_x": judged},
                     tmp_path / "pooled")["kept_samples"] == 1  # fmt: skip


def test_dpo_pairs_a_correct_with_an_incorrect_sample_of_the_same_problem(demo_samples, tmp_path):
    _, samples, _, judged = demo_samples
    build.run(build.Config(kind="dpo", size=1, pairs_per_problem=2), {"samples": judged},
              tmp_path / "dpo")  # fmt: skip
    pairs = read_jsonl(tmp_path / "dpo" / "train.jsonl")
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [
        (samples[0]["solution"], samples[2]["solution"]),
        (samples[1]["solution"], samples[2]["solution"]),
    ]
    assert all(p["prefix"] == "" for p in pairs)


def test_per_step_pairs_and_first_pit_accuracy_from_known_q_values(tmp_path):
    steps = [" 1 + 2 = A 3 ;", " A 3 * 2 = B 7 ;", " answer 7"]
    negatives = [
        # Q falls most at step 2, the true first wrong step: both rules agree.
        {"problem_id": 0, "sample_id": 0, "prompt": "p0", "steps": steps,
         "q": [0.75, 0.75, 0.0, 0.0], "continuation": [" a", " A 3 * 2 = B 6 ; answer 6", None],
         "first_wrong_step": 1},
        # Q never reaches 0 before the end: setlur says step 1 (the largest drop), no_success
        # says the answer step (3); the truth is step 3 (all steps right, answer wrong).
        {"problem_id": 1, "sample_id": 2, "prompt": "p1", "steps": steps,
         "q": [1.0, 0.5, 0.5, 0.0], "continuation": [" c", None, " answer 1"],
         "first_wrong_step": None},
        {"problem_id": 5, "sample_id": 0, "prompt": "beyond the size", "steps": steps,
         "q": [1.0, 0.0, 0.0, 0.0], "continuation": [None, None, None], "first_wrong_step": 0},
    ]  # fmt: skip
    folder = tmp_path / "rollouts"
    folder.mkdir()
    write_jsonl(folder / "negatives.jsonl", negatives)
    config = build.Config(kind="per_step_dpo", size=2, pit="setlur")
    metrics = build.run(config, {"rollouts": folder}, tmp_path / "out")
    pairs = read_jsonl(tmp_path / "out" / "train.jsonl")
    assert pairs == [
        {"id": 0, "prompt": "p0", "prefix": " 1 + 2 = A 3 ;",
         "chosen": " A 3 * 2 = B 6 ; answer 6", "rejected": " A 3 * 2 = B 7 ; answer 7"},
        {"id": 1, "prompt": "p1", "prefix": "", "chosen": " c", "rejected": "".join(steps)},
    ]  # fmt: skip
    assert metrics["first_pit_accuracy"] == 0.5
    assert metrics["first_pit_accuracy_setlur"] == 0.5
    assert metrics["first_pit_accuracy_no_success"] == 1.0
    no_success = build.run(build.Config(kind="per_step_dpo", size=2, pit="no_success"),
                           {"rollouts": folder}, tmp_path / "ns")  # fmt: skip
    assert no_success["first_pit_accuracy"] == 1.0 and no_success["pairs"] == 2


def test_negatives_and_best_of_k_values():
    judged = [
        {"problem_id": 1, "sample_id": 1, "correct": False},
        {"problem_id": 0, "sample_id": 0, "correct": True},
        {"problem_id": 1, "sample_id": 0, "correct": False},
        {"problem_id": 0, "sample_id": 1, "correct": False},
    ]
    chosen = rollout.choose_negatives(judged, per_problem=1)
    assert [(s["problem_id"], s["sample_id"]) for s in chosen] == [(0, 1), (1, 0)]
    assert len(rollout.choose_negatives(judged, per_problem=2)) == 3
    outcomes = [False, True, False, False, False, False]
    assert q_value(outcomes, 1) == pytest.approx(1 / 6)
    assert q_value(outcomes, 2) == pytest.approx(1 / 3)
    assert q_value(outcomes, 3) == pytest.approx(1 / 2)
    assert build.true_pit(None, 4) == 4 and build.true_pit(0, 4) == 1


LEARNER = {"layers": 2, "hidden": 64, "heads": 2, "intermediate": 128}
SAMPLER = {
    "name": "weak",
    "model": {"layers": 2, "hidden": 64, "heads": 2, "intermediate": 96},  # 73,472 parameters
    "train_size": 100,
    "budget": {"flops_per_problem": 6.0e6, "tokens_per_sample": 20},  # 2 samples
}
ALGORITHMS_SPEC = SMALL_SPEC | {
    "experiment": "algorithms",
    "model": LEARNER,
    "sources": ["teacher", SAMPLER],
    "algorithms": ["sft", "rft", "dpo", "per_step_dpo"],
    "stages": SMALL_SPEC["stages"]
    | {
        # Enough steps to learn the answer format: right answers at chance give the samples
        # both correct and incorrect members, so every algorithm has data.
        "train": {
            "min_steps": 150,
            "max_steps": 150,
            "eval_every": 75,
            "val_problems": 30,
            "lr": 5.0e-3,
        },
        "dpo_train": {"min_steps": 4, "max_steps": 4, "eval_every": 2, "val_problems": 30},
        "sample": {"samples": 2},
        "rollout": {"rollouts": 2},
        "build": {"rft": {"pool": ["weak"], "start": "sft"}},
    },
}


def test_the_plan_shares_samples_and_wires_the_sft_model():
    plan = expand(Spec.model_validate(ALGORITHMS_SPEC))
    steps = plan.by_stage()
    learner = {
        (s.coords["source"], s.coords["algorithm"], s.coords["size"]): s
        for s in steps["train"]
        if s.config.model.intermediate == 128
    }
    # The weak sampler: its own model, trained on 100 teacher problems; one sample pass over
    # the largest size serves both sizes; k bought by its budget: 6e6 / (2 * 73,472 * 20) = 2.
    [weak_sample] = [s for s in steps["sample"] if s.config.problems == 100 and
                     dict(s.inputs)["model"].config.model.intermediate == 96]  # fmt: skip
    assert weak_sample.config.samples == 2 and weak_sample.coords["source"] == "weak"
    sampler_model = dict(weak_sample.inputs)["model"]
    assert sampler_model.config.lr == ALGORITHMS_SPEC["stages"]["train"]["lr"]  # stages.train
    own_budget = ALGORITHMS_SPEC | {"sources": ["teacher", SAMPLER | {"train": {"lr": 1e-3}}]}
    retrained = [s for s in expand(Spec.model_validate(own_budget)).steps
                 if s.stage == "train" and s.config.model.intermediate == 96]  # fmt: skip
    assert [s.config.lr for s in retrained] == [1e-3]
    [weak_data] = [s for s in steps["verify"] if dict(s.inputs)["candidates"] is weak_sample]
    for size in (50, 100):
        assert dict(learner[("weak", "sft", size)].inputs)["train_data"] is weak_data
        sft = learner[("teacher", "sft", size)]
        [own] = [s for s in steps["sample"] if dict(s.inputs)["model"] is sft]
        assert own.config.samples == 2 and own.config.problems == size
        for algorithm in ("rft", "dpo", "per_step_dpo"):
            trained = learner[("teacher", algorithm, size)]
            assert dict(trained.inputs)["init"] is sft
            assert trained.config.objective == ("sft" if algorithm == "rft" else "dpo")
        rft_data = dict(learner[("teacher", "rft", size)].inputs)["train_data"]
        assert dict(rft_data.inputs)["pool_weak"] is weak_data
        assert dict(dict(rft_data.inputs)["samples"].inputs)["candidates"] is own
    # One sample step per (source, size) cell, shared by its three algorithms, plus the weak
    # sampler's one.
    assert len(steps["sample"]) == 2 * 2 + 1


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"train_size": None}, "sources.1.train_size", "trained first"),
        ({"samples": 3}, "sources.1", "not both"),
        (
            {"budget": {"flops_per_problem": 1.0, "tokens_per_sample": 20}},
            "sources.1.budget",
            "buy no sample",
        ),
        ({"model": {"name_or_path": "gpt2"}}, "sources.1.model.name_or_path", "tiny models"),
        ({"path": None, "model": None}, "sources.1", "expected 'teacher', a data file"),
    ],
)
def test_bad_samplers_are_refused_naming_the_field(change, field, message, tmp_path, cli,
                                                    results):  # fmt: skip
    sampler = {k: v for k, v in (SAMPLER | change).items() if v is not None}
    spec = write_spec(tmp_path / "s.yaml", ALGORITHMS_SPEC | {"sources": ["teacher", sampler]})
    result = cli(f"plan {spec}")
    assert result.code == 2
    assert f"{field}: " in result.err and message in result.err, result.err
    assert not results.exists()


def test_rft_pool_must_name_a_sampler(tmp_path, cli):
    stages = ALGORITHMS_SPEC["stages"] | {"build": {"rft": {"pool": ["teacher"]}}}
    spec = write_spec(tmp_path / "s.yaml", ALGORITHMS_SPEC | {"stages": stages})
    result = cli(f"plan {spec}")
    assert result.code == 2 and "stages.build.rft.pool: ['teacher'] are not sampler" in result.err


def test_every_algorithm_runs_end_to_end(tmp_path, cli, results):
    spec = write_spec(tmp_path / "algorithms.yaml", ALGORITHMS_SPEC)
    # Warm workers, two at a time: both cores busy, imports paid once per worker (98 s -> 64 s).
    ran = cli(f"run {spec} --executor warm")
    assert ran.code == 0, ran.err
    with open_db(results, "algorithms") as db:
        arms = db.execute("SELECT source, algorithm, count(*) FROM evals GROUP BY ALL").fetchall()
        assert sorted(arms) == sorted(
            (source, algorithm, 2)
            for source in ("teacher", "weak")
            for algorithm in ("sft", "rft", "dpo", "per_step_dpo")
        )
        data = db.execute(
            "SELECT source, sampler, k, problems, coverage_at_k, diversity_at_k, "
            "sampling_flops FROM data_metrics WHERE source = 'weak' AND problems = 100 AND k = 2"
        ).fetchall()
        [(_, _, k, problems, coverage, diversity, flops)] = data
        assert (k, problems) == (2, 100) and 0 <= coverage <= 1 and diversity <= 2
        assert flops > 0
        # Every negative rolled out has its estimated and its true first pit.
        pits = db.execute("SELECT count(*), count(true_pit), count(pit) FROM pits").fetchone()
        assert pits[0] > 0 and pits[1] == pits[0]
        # Known wherever a cell had negatives to roll out (a cell whose samples were all right
        # has none).
        accuracy = db.execute(
            "SELECT source, first_pit_accuracy FROM first_pits WHERE negatives > 0"
        ).fetchall()
        assert {"teacher"} <= {source for source, _ in accuracy}
        assert all(0 <= a <= 1 for _, a in accuracy)
        pairs = db.execute(
            "SELECT algorithm, sum((metrics->>'pairs')::INT) FROM steps WHERE stage = 'build' "
            "AND algorithm != 'rft' GROUP BY ALL"
        ).fetchall()
        assert len(pairs) == 2 and all(n > 0 for _, n in pairs), pairs
        kept = db.execute(
            "SELECT sum((metrics->>'kept_samples')::INT) FROM steps WHERE algorithm = 'rft' "
            "AND stage = 'build'"
        ).fetchone()[0]
        assert kept > 0
        dpo = db.execute(
            "SELECT metrics->>'examples', metrics->>'final_reward_margin' FROM steps "
            "WHERE stage = 'train' AND algorithm IN ('dpo', 'per_step_dpo')"
        ).fetchall()
        # A DPO run with pairs reports its reward margin; one without pairs is its SFT model.
        assert len(dpo) == 8 and any(int(n) > 0 for n, _ in dpo)
        assert all((margin is not None) == (int(n) > 0) for n, margin in dpo)
    fitted = cli("fit algorithms")
    assert "teacher:per_step_dpo  teacher:sft" in fitted.out, fitted.out
    replanned = cli(f"plan {spec}")
    assert "0 to run" in replanned.out
    assert json.loads((results / "algorithms" / "spec.json").read_text())["algorithms"][3] == (
        "per_step_dpo"
    )
