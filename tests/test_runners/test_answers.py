"""Final-answer extraction: the rules, their order, brace matching, and the real gold fields."""

from __future__ import annotations

import json
import time

import pytest

from conftest import SHARED_DATA as DATA
from runners.judging.answers import extract_answer, gsm8k_gold, last_boxed, math_gold


def records(name: str) -> list[dict]:
    path = DATA / name
    if not path.is_file():
        pytest.skip(f"no {path}; set SCALER_SHARED_DATA to the shared data folder")
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(
    "text, answer, rule",
    [
        ("She pays 3 + 4 = 7\n#### 7", "7", "gsm8k marker"),
        ("#### 1,450,000", "1,450,000", "gsm8k marker"),
        ("so \\boxed{5} and then \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}", "boxed"),
        ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}", "boxed"),
        ("\\fbox{x^{2}}", "x^{2}", "boxed"),
        ("\\boxed {3}", "3", "boxed"),
        ("\\boxed{\\{1,2\\}}", "\\{1,2\\}", "boxed"),  # escaped braces are content
        ("\\boxed{4} then \\boxed{unclosed", "4", "boxed"),
        ("Thus the answer is $\\frac{3}{4}$.", "\\frac{3}{4}", "final answer"),
        ("The final answer is: 12.", "12", "final answer"),
        ("THE ANSWER IS 3.5.\nbye", "3.5", "final answer"),
        ("the answer is 2 ... no, the answer is 9", "9", "final answer"),
        ("#### 8\nthen \\boxed{9}", "8", "gsm8k marker"),  # the documented order
        ("I think it is 4", "I think it is 4", "whole answer"),  # read by math-verify later
        ("", None, "no answer found"),
        ("\\boxed{}", None, "no answer found"),
    ],
)
def test_extract_answer(text, answer, rule):
    assert extract_answer(text) == (answer, rule)


def test_deep_nesting_is_matched():
    inner = "{" * 500 + "x" + "}" * 500
    assert last_boxed("\\boxed{" + inner + "}") == inner


def test_adversarial_text_is_linear():
    texts = [
        "\\boxed{" * 200_000,
        "{" * 1_000_000,
        "the answer is " * 100_000,
        "#" * 1_000_000,
        "\\boxed{" + "{" * 10_000 + "}" * 10_000 + "}" + "x" * 1_000_000,
    ]
    for text in texts:
        start = time.perf_counter()
        extract_answer(text)
        assert time.perf_counter() - start < 1.0


def test_gsm8k_gold():
    assert gsm8k_gold("3 + 4 = <<3+4=7>>7\n#### 2,125") == "2125"
    with pytest.raises(ValueError):
        gsm8k_gold("no marker")


def test_math_gold():
    assert math_gold({"answer": "\\frac{1}{2}", "solution": "\\boxed{3}"}) == "\\frac{1}{2}"
    assert math_gold({"answer": "", "solution": "so \\boxed{\\{1,2\\}}."}) == "\\{1,2\\}"
    with pytest.raises(ValueError):
        math_gold({"solution": "none"})


def test_gsm8k_test_golds_extract():
    for record in records("gsm8k/test.jsonl"):
        gold = gsm8k_gold(record["answer"])
        assert int(gold) == int(gold)  # all integers, commas gone
        answer, rule = extract_answer(record["answer"])
        assert rule == "gsm8k marker" and answer.replace(",", "") == gold


def test_math500_answer_is_last_boxed_of_solution():
    for record in records("math/test.jsonl"):
        assert last_boxed(record["solution"]).strip() == record["answer"].strip()
        assert math_gold({"solution": record["solution"]}) == record["answer"].strip()
