"""Distinct reasoning paths, step advantages and first pits, and compute-matched budgets, on
hand-made cases whose answers are known."""

from __future__ import annotations

import pytest

from runners.budget import matched_samples, sample_flops, samples_per_problem
from runners.paths import distinct_paths, reasoning_path
from runners.step_values import advantages, first_pit, per_step_pair, q_values


def test_gsm8k_annotations_are_the_path():
    one = "She sold 48/2 = <<48/2=24>>24 clips.\nIn all 48+24 = <<48+24=72>>72.\n#### 72"
    reworded = "In May: <<48/2=24>>24.\nTotal <<48+24=72>>72 clips\n#### 72"
    other_order = "Total first <<24+48=72>>72... May <<48/2=24>>24\n#### 72"
    assert reasoning_path(one) == ("48/2=24", "48+24=72") == reasoning_path(reworded)
    assert reasoning_path(other_order) != reasoning_path(one)
    assert distinct_paths([one, reworded, other_order]) == [0, 2]


def test_plain_equations_ignore_prose_spaces_dollars_and_thousands_commas():
    a = "In 2 months he pays 1,200 × 2 = $2,400.\nThe answer is 2400"
    b = "Cost is 1200*2 = 2400 dollars\nThe answer is 2400"
    c = "Cost is 2*1200 = 2400\nThe answer is 2400"
    assert reasoning_path(a) == ("1200*2=2400",) == reasoning_path(b)
    assert distinct_paths([a, b, c]) == [0, 2]
    assert reasoning_path("no equations here\n#### 5") == ()


def test_q_values_advantages_and_pits():
    # Bare problem 3/4, after step 1: 2/4, after step 2: 0/4, after step 3: 0/4, step 4: 1/4.
    outcomes = [[1, 1, 1, 0], [1, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0]]
    q = q_values([[bool(x) for x in o] for o in outcomes])
    assert q == [0.75, 0.5, 0.0, 0.0, 0.25]
    assert advantages(q) == [-0.25, -0.5, 0.0, 0.25]
    assert first_pit(q, "setlur") == 2  # the first step where Q reaches its minimum
    assert first_pit(q, "no_success") == 2


def test_the_two_pit_rules_differ_when_q_never_reaches_zero():
    q = [0.8, 0.6, 0.2, 0.4, 0.2]
    assert first_pit(q, "setlur") == 2
    assert first_pit(q, "no_success") is None
    assert first_pit([0.5], "setlur") is None  # no steps
    with pytest.raises(ValueError, match="unknown first-pit rule"):
        first_pit(q, "greedy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one rollout"):
        q_values([[True], []])


def test_per_step_pair_is_built_around_the_pit():
    steps = ["A = 2 + 3 = 5", "B = A * 2 = 11", "answer 11"]
    pair = per_step_pair("2 + 3 = A, A * 2 = B. find B", steps, 2, ["B = A * 2 = 10\nanswer 10"])
    assert pair == {
        "prompt": "2 + 3 = A, A * 2 = B. find B\nA = 2 + 3 = 5\n",
        "chosen": "B = A * 2 = 10\nanswer 10",
        "rejected": "B = A * 2 = 11\nanswer 11",
    }
    assert per_step_pair("p", steps, 1, []) is None  # no rollout from the prefix succeeded
    with pytest.raises(ValueError, match="not a step"):
        per_step_pair("p", steps, 4, ["x"])


def test_compute_matched_budgets():
    assert sample_flops(7e9, 300) == 4.2e12
    # A budget of 10 samples of a 27B model buys 30 of a 9B one (Bansal's Gemma2 pair).
    budget = 10 * sample_flops(27e9, 400)
    assert samples_per_problem(budget, 27e9, 400) == 10
    assert samples_per_problem(budget, 9e9, 400) == 30
    assert matched_samples(10, 27e9, 9e9) == 30
    assert samples_per_problem(budget, 27e9, 401) == 9  # rounds down, never over budget
    assert samples_per_problem(0, 1e9, 100) == 0
    with pytest.raises(ValueError):
        samples_per_problem(1e12, 0, 100)
