"""Distinct reasoning paths, step advantages and first pits, and compute-matched budgets, on
hand-made cases whose answers are known."""

from __future__ import annotations

import pytest

from runners.compute_budget import matched_samples, sample_flops, samples_per_problem
from runners.credit import advantages, first_pit, per_step_pair, q_values, split_steps
from runners.reasoning_paths import distinct_paths, reasoning_path


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
    assert first_pit(q, "setlur") == 2  # the largest fall in Q
    assert first_pit(q, "no_success") == 2  # the first step with Q = 0


def test_the_two_pit_rules_differ():
    # Q falls most at step 2 but reaches 0 only after step 3.
    q = [0.5, 0.75, 0.25, 0.0]
    assert first_pit(q, "setlur") == 2
    assert first_pit(q, "no_success") == 3
    # Ties go to the first step; without a Q of 0 there is no no_success pit.
    q = [0.8, 0.6, 0.2, 0.4, 0.2]
    assert first_pit(q, "setlur") == 2
    assert first_pit(q, "no_success") is None
    assert first_pit([0.5], "setlur") is None  # no steps
    with pytest.raises(ValueError, match="unknown first-pit rule"):
        first_pit(q, "greedy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one rollout"):
        q_values([[True], []])


def test_solutions_split_into_steps_that_join_back():
    demo = " 9 - 4 = A 5 ; A 5 * 3 = B 4 ; answer 6"
    assert split_steps(demo, ";") == [" 9 - 4 = A 5 ;", " A 5 * 3 = B 4 ;", " answer 6"]
    prose = "She has 3 apples.\nOk\nThen 3*2 = 6.\n\n#### 6"
    pieces = split_steps(prose, "\n", min_chars=8)
    # "Ok" and the blank line are merged into the next step; the short last one into its
    # predecessor.
    assert pieces == ["She has 3 apples.\n", "Ok\nThen 3*2 = 6.\n\n#### 6"]
    for text in (demo, prose, "", "a;b;", "x"):
        assert "".join(split_steps(text, ";", 3)) == text


def test_per_step_pair_is_built_around_the_pit():
    steps = [" 2 + 3 = A 5 ;", " A 5 * 2 = B 11 ;", " answer 11"]
    pair = per_step_pair(steps, 2, [" A 5 * 2 = B 10 ; answer 10"])
    assert pair == {
        "prefix": " 2 + 3 = A 5 ;",
        "chosen": " A 5 * 2 = B 10 ; answer 10",
        "rejected": " A 5 * 2 = B 11 ; answer 11",
    }
    assert per_step_pair(steps, 1, []) is None  # no rollout from the prefix succeeded
    with pytest.raises(ValueError, match="not a step"):
        per_step_pair(steps, 4, ["x"])


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
