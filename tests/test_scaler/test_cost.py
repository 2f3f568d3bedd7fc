"""The cost estimate: its arithmetic against figures worked out by hand on a small real-world
spec, the demo world's counted figures against its real models and tokenizer, bad cost fields,
and the estimate beside the measured wall time after a tiny real run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SMALL_SPEC, tiny_gsm8k, write_spec
from scaler.cost import estimate
from scaler.cost_figures import figures_of
from scaler.plan import expand
from scaler.spec.load import load_spec

# Figures chosen so every step's FLOPs can be worked out by hand: P = 1e9 parameters, prompts
# of 10 tokens and solutions of 20, 10 optimisation steps of 4 sequences, 2 validations.
COST = {"model_params": 1e9, "prompt_tokens": 10, "solution_tokens": 20,
        "gpu_flops": 1e12, "utilisation": 0.5}  # fmt: skip
TRAIN = {"batch_size": 4, "steps_at_1k": 10, "budget_exponent": 0, "min_steps": 1,
         "max_steps": 10, "eval_every": 5, "val_problems": 8, "max_new_tokens": 40}  # fmt: skip
DECODE = {"max_new_tokens": 40}


def _two_steps(i: int) -> str:
    return f"First we add {i} and 1\nSo the answer is {i + 1}\n#### {i + 1}"


def priced_spec(tmp_path: Path, **changes) -> Path:
    """A GSM8K spec on 40 made-up problems whose solutions are two steps (lines) each."""
    spec = tiny_gsm8k(tmp_path, train=40, answer=_two_steps) | {
        "experiment": "priced",
        "stages": {
            "train": TRAIN,
            "dpo_train": TRAIN,
            "sample": {**DECODE, "samples": 3},
            "rollout": {**DECODE, "rollouts": 2},
            "evaluate": DECODE,
        },
        "resources": {"train": {"gpus": 2}, "sample": {"gpus": 1}, "rollout": {"gpus": 1}},
        "cost": COST,
        **changes,
    }
    return write_spec(tmp_path / "priced.yaml", spec)


# Per step, by hand (the module docstring of scaler.cost has the rules):
VALIDATION = 2 * 8 * (10 + 20) * 2e9  # 2 validations of 8 problems, read and written: 9.6e11
BY_HAND = {
    # 6 P x 10 steps x 4 sequences x (10 + 20) tokens, and the validations.
    "sft": 6e9 * 10 * 4 * 30 + VALIDATION,
    # Each row two sequences, trained on (6 P) and read by the reference (2 P).
    "per_step_dpo": (6e9 + 2e9) * 10 * 4 * 2 * 30 + VALIDATION,
    # 16 problems: the prompt once, 3 samples of 20 tokens.
    "sample": 2e9 * 16 * (10 + 3 * 20),
    # 16 negatives of S = 2 steps: 2 prompts and half a solution read, 2 rollouts of
    # (S + 1) / 2 solutions written.
    "rollout": 2e9 * 16 * (2 * 10 + 20 * 1 / 2 + 2 * 20 * 3 / 2),
    # 5 test problems read and written greedily.
    "evaluate": 2e9 * 5 * (10 + 20),
}


def test_the_arithmetic_matches_figures_worked_out_by_hand(tmp_path):
    spec = load_spec(priced_spec(tmp_path))
    plan = expand(spec)
    figures = figures_of(spec)
    assert figures.solution_steps == 2 and figures.eval_problems == {"test": 5, "val": 8}
    costs = estimate(plan, figures)
    by_kind: dict[str, list] = {}
    for step in plan.steps:
        kind = step.coords.get("algorithm") if step.stage == "train" else step.stage
        by_kind.setdefault(kind, []).append(costs[step.id].flops)
    assert by_kind["sft"] == by_kind["rft"] == [pytest.approx(BY_HAND["sft"])]
    assert by_kind["evaluate"] == [pytest.approx(BY_HAND["evaluate"])] * 3
    for kind in ("per_step_dpo", "sample", "rollout"):
        assert by_kind[kind] == [pytest.approx(BY_HAND[kind])], kind
    assert by_kind["prepare"] == by_kind["verify"] == [None]
    assert by_kind["build"] == [None, None]

    sft = next(s for s in plan.steps if s.stage == "train" and s.coords["algorithm"] == "sft")
    # FLOPs over 1e12 FLOP/s x 0.5, in hours; the step's wall time is that over its 2 GPUs.
    assert costs[sft.id].gpu_hours(figures) == pytest.approx(BY_HAND["sft"] / 5e11 / 3600)
    assert costs[sft.id].wall_hours(figures) == pytest.approx(BY_HAND["sft"] / 5e11 / 3600 / 2)
    evaluation = next(s for s in plan.steps if s.stage == "evaluate")
    assert costs[evaluation.id].gpu_hours(figures) is None  # no GPU: priced in FLOPs only


def test_plan_prints_the_stage_totals_and_the_grand_total(tmp_path, results, cli):
    planned = cli(f"plan {priced_spec(tmp_path)} --steps")
    assert planned.code == 0, planned.err
    section = planned.out.split("cost of the steps to run")[1]
    rows = {line.split()[0]: line.split() for line in section.splitlines()[3:12]}
    train = 2 * BY_HAND["sft"] + BY_HAND["per_step_dpo"]
    assert rows["train"][:5] == ["train", "3", "0", f"{train:.2e}", "2"]
    assert rows["evaluate"][3:5] == [f"{BY_HAND['evaluate'] * 3:.2e}", "cpu"]
    gpu_hours = (train + BY_HAND["sample"] + BY_HAND["rollout"]) / 5e11 / 3600
    total = train + BY_HAND["sample"] + BY_HAND["rollout"] + 3 * BY_HAND["evaluate"]
    assert rows["total"][:4] == ["total", "12", "0", f"{total:.2e}"]
    assert rows["total"][4] == f"{gpu_hours:.3g}"
    assert "P: 1.00e+09 (cost.model_params); tokens: prompt 10, solution 20" in section
    # --steps lists each step's FLOPs.
    assert f"{BY_HAND['sample']:.2e}" in planned.out.split("why new")[1]


def test_a_real_spec_without_figures_names_what_to_declare(tmp_path, results, cli):
    planned = cli(f"plan {priced_spec(tmp_path, cost={})}")
    assert planned.code == 0, planned.err
    assert (
        "not priced: train, sample, rollout, evaluate: give cost.model_params, "
        "cost.prompt_tokens, cost.solution_tokens (docs/specs.md, `cost`)"
    ) in planned.out


@pytest.mark.parametrize(
    "cost, field, words",
    [
        ({"utilisation": 1.5}, "cost.utilisation", "less than or equal to 1 (got 1.5)"),
        ({"model_params": -7e9}, "cost.model_params", "greater than 0"),
        ({"gpu_flops": "fast"}, "cost.gpu_flops", "a valid number"),
        ({"params": 7e9}, "cost.params", "unknown key; valid keys: gpu_flops, model_params, "
                                         "prompt_tokens, solution_tokens, utilisation"),
    ],
)  # fmt: skip
def test_a_bad_cost_field_is_one_error_naming_file_and_field(tmp_path, results, cli, cost, field,
                                                            words):  # fmt: skip
    spec = priced_spec(tmp_path, cost=cost)
    planned = cli(f"plan {spec}")
    assert planned.code == 2 and planned.out == ""
    (line,) = planned.err.strip().splitlines()
    assert line.startswith(f"scaler: error: {spec}: {field}: ") and words in line


def test_the_demo_estimate_counts_the_demo_models_real_parameters_and_tokens():
    from runners.model import build_model, count_parameters
    from runners.stages.generate import world_of
    from runners.worlds.demo import make_problem
    from runners.worlds.demo_tokenizer import build_tokenizer

    spec = load_spec(Path(__file__).resolve().parents[2] / "specs" / "demo.yaml")
    figures = figures_of(spec)
    tokenizer = build_tokenizer(world_of(spec.world))
    built = build_model(spec.model, tokenizer, seed=0)
    assert figures.params[spec.model] == count_parameters(built, "") > 0
    problems = [make_problem(world_of(spec.world), spec.world.seed, "train", i) for i in range(200)]
    # The tokenizer puts <bos> before every text; a trained solution ends with <eos> instead.
    prompt = sum(len(tokenizer(p["prompt"])["input_ids"]) for p in problems) / 200
    solution = sum(len(tokenizer(p["solution"])["input_ids"]) for p in problems) / 200
    assert figures.prompt_tokens == pytest.approx(prompt)
    assert figures.solution_tokens == pytest.approx(solution)
    plan = expand(spec)
    costs = estimate(plan, figures)
    assert all(costs[s.id].flops for s in plan.steps if s.stage in ("pretrain", "train"))


def test_status_sets_the_estimate_beside_the_measured_wall_time(tmp_path, results, cli):
    from analysis.report_provenance import plan_and_spec
    from scaler.layout import Layout

    spec = write_spec(tmp_path / "small.yaml", SMALL_SPEC)
    ran = cli(f"run {spec} sizes=[50] --executor inline")
    assert ran.code == 0, ran.err
    status = cli("status small")
    assert status.code == 0, status.err
    measured = status.out.split("estimate against measured, finished steps:")[1].splitlines()
    rows = {line.split()[0]: line.split() for line in measured[3:6]}
    assert set(rows) == {"generate", "train", "evaluate"}
    assert rows["generate"][2] == "–"  # no model runs in it
    assert float(rows["train"][2]) > 0 and rows["train"][3] == "–"  # FLOPs; no GPU
    assert rows["train"][5] == "s" and float(rows["train"][4]) > 0  # its measured wall time
    assert float(rows["train"][-1]) > 0  # the FLOP/s it achieved
    # Done steps are cost spent, not cost to come.
    planned = cli(f"plan {spec} sizes=[50]")
    assert "3 done, 0 to run" in planned.out
    total = next(line for line in planned.out.splitlines() if line.startswith("total"))
    assert total.split()[:4] == ["total", "0", "3", "–"]
    # The report's plan section shows the same view.
    page = plan_and_spec(Layout.for_experiment("small", results))
    assert "estimate against measured, finished steps:" in page


def test_pricing_a_plan_pulls_in_nothing_heavy():
    demo = Path(__file__).resolve().parents[2] / "specs" / "demo.yaml"
    code = (
        "import sys, json\n"
        "from scaler.cost_view import price\n"
        "from scaler.plan import expand\n"
        "from scaler.spec.load import load_spec\n"
        f"spec = load_spec({str(demo)!r})\n"
        "price(spec, expand(spec))\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout.splitlines()[-1]))
    assert not loaded & {"torch", "transformers", "trl", "datasets", "vllm"}
