"""The demo world's generator, checker and tokenizer (pure Python except the tokenizer)."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys

import pytest
from pydantic import ValidationError

from runners.judging.demo_checker import check_solution, path_key
from runners.stages import generate
from runners.worlds.demo import (
    PRETRAIN_SPLIT,
    Skills,
    WorldConfig,
    count_valid_orders,
    make_problem,
    make_split,
    random_valid_order,
    render_step,
    vocabulary,
)
from runners.worlds.skill_law import SkillLaw

WORLD = WorldConfig()


def hand_made_problem() -> dict:
    """A = 3 + 5, B = A * 2 (asked), C = 2 - 3 (a distractor); modulo 17."""
    return {
        "prompt": "3 + 5 = A , A * 2 = B , 2 - 3 = C . find B",
        "answer": "16",
        "target": "B",
        "definitions": {"A": ["+", "3", "5"], "B": ["*", "A", "2"], "C": ["-", "2", "3"]},
        "values": {"A": 8, "B": 16, "C": 16},
        "needed": ["A", "B"],
        "n_steps": 2,
        "modulus": 17,
    }


# --- generator ---------------------------------------------------------------------------


def test_problem_is_a_pure_function_of_seed_split_and_index():
    assert make_problem(WORLD, 3, "train", 7) == make_problem(WORLD, 3, "train", 7)
    assert make_problem(WORLD, 3, "train", 7) != make_problem(WORLD, 4, "train", 7)
    assert make_problem(WORLD, 3, "train", 7) != make_problem(WORLD, 3, "test", 7)


def test_smaller_training_set_is_a_prefix_of_a_larger_one():
    assert make_split(WORLD, 0, "train", 50) == make_split(WORLD, 0, "train", 100)[:50]


@pytest.mark.parametrize(
    "world",
    [
        WORLD,
        WorldConfig(distractors=2, listing="shuffled", modulus=23, operators="+*"),
        WorldConfig(
            distractors=2,
            teacher_order="random",
            optional_step_rate=0.5,
            commute_rate=0.5,
            min_steps=1,
            max_steps=6,
        ),
        WorldConfig(skills=Skills(count=50, per_problem=3), distractors=1, min_steps=2),
    ],
    ids=["default", "shuffled", "random-teacher", "skills"],
)
def test_teacher_solutions_are_valid_for_every_knob_setting(world):
    for problem in make_split(world, 0, "train", 300):
        verdict = check_solution(problem, problem["solution"])
        assert verdict["correct"] and verdict["complete"]
        assert not verdict["false_positive"] and all(verdict["steps_valid"])
        assert world.min_steps <= problem["n_steps"] <= world.max_steps
        assert len(problem["definitions"]) == problem["n_steps"] + world.distractors


@pytest.mark.parametrize("rate", [0.0, 0.3, 1.0])
def test_false_positive_rate_plants_wrong_steps_that_keep_the_answer(rate):
    world = WorldConfig(false_positive_rate=rate)
    problems = make_split(world, 0, "train", 400)
    verdicts = [check_solution(p, p["solution"]) for p in problems]
    assert all(v["correct"] for v in verdicts)
    flagged = [v["false_positive"] for v in verdicts]
    assert flagged == [p["teacher_false_positive"] for p in problems]
    assert abs(sum(flagged) / len(flagged) - rate) < 0.08


def test_generate_stage_writes_disjoint_splits(tmp_path):
    config = generate.Config(train_pool=400, val_problems=50, test_problems=80)
    metrics = generate.run(config, {}, tmp_path)
    assert metrics["train"] == 400 and metrics["val"] == 50 and metrics["test"] == 80
    splits = {
        name: [json.loads(line) for line in (tmp_path / f"{name}.jsonl").open()]
        for name in ("train", "val", "test")
    }
    prompts = {name: {p["prompt"] for p in rows} for name, rows in splits.items()}
    assert len(prompts["test"]) == 80 and len(prompts["val"]) == 50
    assert not prompts["test"] & (prompts["train"] | prompts["val"])
    assert not prompts["val"] & prompts["train"]
    assert [p["id"] for p in splits["test"]] == list(range(80))
    assert splits["train"] == make_split(generate.world_of(config), 0, "train", 400)
    assert (tmp_path / "tokenizer" / "tokenizer.json").exists()


SKILLS = WorldConfig(skills=Skills(count=40, zipf=1.5, per_problem=2, pretrain_count=8))


def test_skills_replace_numbers_by_constants_drawn_by_zipf():
    problems = make_split(SKILLS, 0, "train", 4000)
    drawn = [name for p in problems for name in _constants_in(p)]
    assert len(drawn) == 2 * len(problems)  # per_problem of each problem's numbers
    probabilities = SkillLaw(skills=40, zipf=1.5).probabilities()
    for k in (0, 1, 5, 20):
        share = drawn.count(f"c{k}") / len(drawn)
        assert abs(share - probabilities[k]) < 4 * (probabilities[k] / len(drawn)) ** 0.5 + 1e-3


def test_a_constant_is_a_fact_of_the_seed_and_the_pretraining_ones_of_no_seed():
    def facts(seed: int, split: str) -> dict[str, int]:
        problems = make_split(SKILLS, seed, split, 300)
        return {k: v for p in problems for k, v in p["constants"].items()}

    assert set(facts(0, "train")) <= {f"c{k}" for k in range(40)}
    assert set(facts(0, PRETRAIN_SPLIT)) == {f"p{k}" for k in range(8)}
    assert facts(0, "train") != facts(1, "train")  # each seed's world has facts of its own
    assert facts(0, PRETRAIN_SPLIT) == facts(1, PRETRAIN_SPLIT)  # one base for every seed
    assert {"c0", "c39", "p7"} <= set(vocabulary(SKILLS)) and "c0" not in vocabulary(WORLD)


def test_the_checker_knows_constants_and_rejects_a_wrong_value():
    problem = next(p for p in make_split(SKILLS, 0, "train", 50) if "c0" in p["constants"])
    value = problem["constants"]["c0"]
    assert f"c0 {value}" in problem["solution"]
    wrong = problem["solution"].replace(f"c0 {value}", f"c0 {(value + 1) % 11}")
    verdict = check_solution(problem, wrong)
    assert not all(verdict["steps_valid"]) and verdict["first_wrong_step"] is not None


def test_a_world_without_skills_keeps_its_step_ids():
    from scaler.fingerprint import output_fields

    assert "skills" not in output_fields(generate.Config())
    assert "skills" in output_fields(generate.Config(skills=Skills()))


def _cue_holds(problem: dict) -> list[bool]:
    """For each constant with a number beside it: whether that number is its value."""
    constants = problem["constants"]
    return [
        int(beside) == constants[name]
        for _, *operands in problem["definitions"].values()
        for name, beside in (operands, operands[::-1])
        if name in constants and beside.isdigit()
    ]


def test_a_shortcut_plants_a_cue_in_the_training_pool_only():
    cued = WorldConfig(skills=SKILLS.skills.model_copy(update={"shortcut": 0.8}))
    train, plain = make_split(cued, 0, "train", 2000), make_split(SKILLS, 0, "train", 2000)
    holds = [h for p in train for h in _cue_holds(p)]
    assert abs(sum(holds) / len(holds) - (0.8 + 0.2 / 11)) < 0.04
    # Only the cue's numbers differ: the plain world's problems are kept otherwise.
    assert [p["constants"] for p in train] == [p["constants"] for p in plain]
    for problem in train[:300]:
        verdict = check_solution(problem, problem["solution"])
        assert verdict["correct"] and all(verdict["steps_valid"])
    for split in ("val", "test", PRETRAIN_SPLIT):
        assert make_split(cued, 0, split, 200) == make_split(SKILLS, 0, split, 200)
    test = [h for p in make_split(cued, 0, "test", 2000) for h in _cue_holds(p)]
    assert sum(test) / len(test) < 0.15  # chance: 1 in 11


def test_a_world_without_the_shortcut_keeps_its_step_ids():
    from scaler.fingerprint import output_fields

    plain = output_fields(generate.Config(skills=Skills()))
    assert "shortcut" not in plain["skills"]
    assert output_fields(generate.Config(skills=Skills(shortcut=0.8)))["skills"]["shortcut"] == 0.8


def test_names_in_pretraining_show_every_c_name_with_values_of_no_fact():
    from scaler.fingerprint import output_fields

    named = WorldConfig(skills=SKILLS.skills.model_copy(update={"names_in_pretraining": 0.5}))
    corpus = make_split(named, 0, PRETRAIN_SPLIT, 3000)
    values: dict[str, set[int]] = {}
    for problem in corpus:
        for name, value in problem["constants"].items():
            values.setdefault(name, set()).add(value)
        verdict = check_solution(problem, problem["solution"])
        assert verdict["correct"] and all(verdict["steps_valid"])
    c_names = {name for name in values if name.startswith("c")}
    assert c_names == {f"c{k}" for k in range(40)}  # every row is used, rare ones too
    assert all(len(values[name]) > 5 for name in c_names)  # a value of the problem, not a fact
    assert all(len(values[f"p{k}"]) == 1 for k in range(8))  # the p facts stay facts
    drawn = [name for problem in corpus for name in problem["constants"]]
    assert 0.4 < sum(name.startswith("c") for name in drawn) / len(drawn) < 0.6
    # Fine-tuning problems, and a corpus without the knob, are as they were.
    for split in ("train", "test"):
        assert make_split(named, 0, split, 200) == make_split(SKILLS, 0, split, 200)
    assert "names_in_pretraining" not in output_fields(generate.Config(skills=Skills()))["skills"]


def test_skills_per_problem_must_fit_the_fewest_numbers_a_problem_has():
    with pytest.raises(ValidationError, match="per_problem"):
        WorldConfig(min_steps=1, skills=Skills(per_problem=3))


def _constants_in(problem: dict) -> list[str]:
    return [x for op, *operands in problem["definitions"].values() for x in operands if x[0] == "c"]


def test_world_config_is_strict():
    with pytest.raises(ValidationError):
        WorldConfig(min_steps=4, max_steps=2)
    with pytest.raises(ValidationError):
        WorldConfig(operators="/")
    with pytest.raises(ValidationError):
        WorldConfig(modulus_typo=3)
    with pytest.raises(ValidationError):
        generate.Config(train_pool=0)


def test_config_modules_import_without_torch():
    code = (
        "import sys, runners.stages.generate, runners.stages.train, runners.stages.evaluate, "
        "runners.judging.demo_checker; "
        "heavy = {'torch', 'transformers', 'trl', 'datasets'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- several valid solution paths ----------------------------------------------------------


@pytest.mark.parametrize(("max_steps", "share"), [(3, 0.1), (4, 0.25)])
def test_many_problems_have_several_correct_solutions(max_steps, share):
    problems = make_split(WorldConfig(max_steps=max_steps), 0, "train", 400)
    orders = [count_valid_orders(p) for p in problems]
    assert sum(o > 1 for o in orders) > share * len(problems)
    # Each + or * step can also be written in either operand order.
    strings = [
        o * 2 ** sum(p["definitions"][n][0] in "+*" for n in p["needed"])
        for o, p in zip(orders, problems, strict=True)
    ]
    assert sum(strings) / len(strings) > 3


def test_every_valid_order_commutation_and_optional_step_is_accepted():
    world = WorldConfig(distractors=1, operand_reuse=0.0)
    problem = next(p for p in make_split(world, 0, "train", 200) if count_valid_orders(p) > 1)
    answer = f"answer {problem['answer']}"
    solutions = set()
    for order in itertools.permutations(problem["needed"]):
        text = " ; ".join([render_step(problem, n) for n in order] + [answer])
        verdict = check_solution(problem, text)
        if all(verdict["steps_valid"]):
            assert verdict["correct"] and not verdict["false_positive"]
            solutions.add(path_key(problem, text))
    assert len(solutions) == count_valid_orders(problem) > 1

    # Every operand order of + and *, and the distractor computed first.
    distractor = next(n for n in problem["definitions"] if n not in problem["needed"])
    steps = [render_step(problem, distractor)] + [
        render_step(problem, n, swap=problem["definitions"][n][0] in "+*")
        for n in random_valid_order(problem, problem["needed"], random.Random(0))
    ]
    verdict = check_solution(problem, " ; ".join(steps + [answer]))
    assert verdict["correct"] and all(verdict["steps_valid"]) and verdict["complete"]


# --- checker on hand-made cases ------------------------------------------------------------


def test_checker_accepts_a_correct_solution_and_its_variants():
    problem = hand_made_problem()
    for text in (
        " 3 + 5 = A 8 ; A 8 * 2 = B 16 ; answer 16",
        " 5 + 3 = A 8 ; 2 * A 8 = B 16 ; answer 16",  # + and * commute
        " 2 - 3 = C 16 ; 3 + 5 = A 8 ; A 8 * 2 = B 16 ; answer 16",  # an optional step
    ):
        verdict = check_solution(problem, text)
        assert verdict["correct"] and verdict["complete"], text
        assert all(verdict["steps_valid"]) and verdict["first_wrong_step"] is None, text
        assert not verdict["false_positive"], text


def test_checker_flags_wrong_arithmetic():
    verdict = check_solution(hand_made_problem(), " 3 + 5 = A 9 ; A 9 * 2 = B 1 ; answer 1")
    assert verdict["answer"] == "1" and not verdict["correct"]
    assert verdict["steps_valid"] == [False, False] and verdict["first_wrong_step"] == 0
    assert not verdict["false_positive"]


def test_checker_flags_a_false_positive():
    verdict = check_solution(hand_made_problem(), " 3 + 5 = A 9 ; A 8 * 2 = B 16 ; answer 16")
    assert verdict["correct"] and verdict["false_positive"]
    assert verdict["steps_valid"] == [False, True] and verdict["first_wrong_step"] == 0


def test_checker_rejects_values_used_before_they_are_known():
    verdict = check_solution(hand_made_problem(), " A 8 * 2 = B 16 ; 3 + 5 = A 8 ; answer 16")
    assert verdict["steps_valid"] == [False, True] and verdict["false_positive"]


def test_checker_rejects_wrong_definitions():
    problem = hand_made_problem()
    assert check_solution(problem, " 3 - 2 = C 1")["steps_valid"] == [False]  # - does not commute
    assert check_solution(problem, " 3 * 5 = A 15")["steps_valid"] == [False]  # wrong operator
    assert check_solution(problem, " 3 + 6 = A 9")["steps_valid"] == [False]  # wrong operand
    assert check_solution(problem, " 3 + 5 = A 8 ; 3 + 5 = A 8")["steps_valid"] == [True, False]


def test_checker_without_an_answer():
    verdict = check_solution(hand_made_problem(), " 3 + 5 = A 8 ; A 8 *")
    assert verdict["answer"] is None and not verdict["correct"] and not verdict["false_positive"]
    assert verdict["steps_valid"] == [True, False]


def test_checker_on_garbage_and_a_bare_answer():
    garbage = check_solution(hand_made_problem(), "hello = = ; ;; 7 world")
    assert garbage["answer"] is None and not garbage["correct"]
    assert garbage["first_wrong_step"] == 0
    bare = check_solution(hand_made_problem(), " answer 16")
    # Right by luck: nothing was computed, so the reasoning is not there.
    assert bare["correct"] and not bare["complete"] and bare["false_positive"]
    assert check_solution(hand_made_problem(), "")["answer"] is None


# --- tokenizer -----------------------------------------------------------------------------


def test_tokenizer_round_trip(tmp_path):
    from runners.worlds.demo_tokenizer import build_tokenizer, load_tokenizer, save_tokenizer

    save_tokenizer(WORLD, tmp_path)
    tokenizer = load_tokenizer(tmp_path)
    assert len(tokenizer) == len(build_tokenizer(WORLD)) == len(vocabulary(WORLD)) + 4
    for problem in make_split(WORLD, 0, "train", 50):
        text = problem["prompt"] + problem["solution"]
        ids = tokenizer(text)["input_ids"]
        assert ids[0] == tokenizer.bos_token_id
        assert tokenizer.unk_token_id not in ids
        assert len(ids) == len(text.split()) + 1
        assert tokenizer.decode(ids, skip_special_tokens=True) == text.strip()
    eos = tokenizer("answer 3" + tokenizer.eos_token)["input_ids"]
    assert eos[-1] == tokenizer.eos_token_id
    assert tokenizer.pad_token_id not in (tokenizer.eos_token_id, tokenizer.bos_token_id)
    assert tokenizer.padding_side == "left"
