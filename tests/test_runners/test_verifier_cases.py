"""Hand-written model outputs for each way a final answer can be written, with their verdicts.

One table per failure class of the verifier's extraction (Minerva format and chat tokens,
boxes, units and labels, number formats, prose, lists, words in a box, GSM8K's last number),
each case `(gold, pred, correct, rule)`: `rule` is the rule that must have found the answer.
"""

from __future__ import annotations

import pytest

from runners.judging.answers import last_box_run, locate_answer
from runners.judging.conventions import Conventions, world_conventions
from runners.judging.equivalence import Verifier


@pytest.fixture(scope="module")
def math_verifier():
    with Verifier(time_limit=2.0, workers=2, conventions=world_conventions("math")) as v:
        yield v


@pytest.fixture(scope="module")
def gsm8k_verifier():
    with Verifier(time_limit=2.0, workers=2, conventions=world_conventions("gsm8k")) as v:
        yield v


def check(verifier, gold, pred, correct, rule):
    verdict = verifier.verify(gold, pred)
    assert (verdict.correct, verdict.rule) == (correct, rule), verdict
    assert verdict.reason == ("equivalent" if correct else "mismatch"), verdict


STATEMENTS = [
    # Minerva's format: the sentence goes on after the answer.
    (
        "10455",
        "So we add them.\nFinal Answer: The final answer is $10,455$. I hope it is correct.",
        True,
        "final answer",
    ),
    ("10456", "The final answer is $10,455$. I hope it is correct.", False, "final answer"),
    ("28", "We count the pairs.\nThe answer is 28, so we are done.", True, "final answer"),
    ("28", "The answer is 28.<|im_end|>\n<|im_start|>user\nThe answer is 5.", True, "final answer"),
    ("3", "x = 3, hence the answer is \\boxed{3}</s>", True, "boxed"),
    ("\\frac{1}{2}", "The answer is \\frac{1}{2}<|eot_id|>", True, "final answer"),
    # A statement after a box is the answer; a box after a statement is too.
    ("7", "First \\boxed{5} for part one.\nThe final answer is 7.", True, "final answer"),
    ("5", "First \\boxed{5} for part one.\nThe final answer is 7.", False, "final answer"),
    ("9", "The answer is 4? Let me recheck.\n**Final Answer**\n\\boxed{9}", True, "boxed"),
    ("3\\sqrt{13}", "The answer is 3\\sqrt{13}.", True, "final answer"),
    ("1,-2", "The answer is 1,-2.", True, "final answer"),
]

BOXES = [
    ("-1, 3", "The roots are \\boxed{-1}, \\boxed{3}.", True, "boxed"),
    ("-1, 3", "The roots are $\\boxed{-1}$ and $\\boxed{3}$.", True, "boxed"),
    ("3, -1", "The roots are $\\boxed{-1}$ and $\\boxed{3}$.", False, "boxed"),  # gold order
    ("3", "The roots are \\boxed{-1}, \\boxed{3}.", False, "boxed"),
    ("2", "\\boxed{1} and \\boxed{2}", False, "boxed"),
    ("2", "It is \\boxed{1}. No, wait: it is \\boxed{2}.", True, "boxed"),
    ("\\boxed{-1}, \\boxed{3}", "$x \\in \\{-1, 3\\}$, so \\boxed{-1, 3}", True, "boxed"),
    ("\\boxed{-1}, \\boxed{3}", "\\boxed{3}", False, "boxed"),
    ("-2, 1", "\\[ \\boxed{-2} \\quad \\text{and} \\quad \\boxed{1}. \\]", True, "boxed"),
]

UNITS_AND_LABELS = [
    ("12", "She has 3 bags of 4.\n#### 12 apples", True, "gsm8k marker"),
    ("7", "The answer is 7 boxes.", True, "final answer"),
    ("30", "The area is 5 * 6.\n**Final answer:** 30 cm^2", True, "final answer"),
    ("30", "\\boxed{30\\text{ cm}^2}", True, "boxed"),
    ("17", "Adding up.\nAnswer: 17", True, "final answer"),
    ("17", "Adding up.\n**Answer:** 17", True, "final answer"),
    ("3.5", "Answer: $\\$3.50$", True, "final answer"),
    ("4", "Answer: $\\$3.50$", False, "final answer"),
]

NUMBER_FORMATS = [
    ("12500", "12 500", True, "whole answer"),
    ("12500", "\\boxed{12 500}", True, "boxed"),
    ("25000", "$25\\,000$", True, "last expression"),
    ("25000", "\\boxed{25,\\!000}", True, "boxed"),
    ("25000", "\\boxed{25{,}000}", True, "boxed"),
    ("2500", "\\boxed{25\\,000}", False, "boxed"),
    ("7.5\\%", "7.5", True, "whole answer"),
    ("7.5", "\\boxed{7.5\\%}", True, "boxed"),
    ("0.075", "\\boxed{7.5\\%}", True, "boxed"),
    ("75", "\\boxed{7.5\\%}", False, "boxed"),
]

PROSE = [
    ("x \\geq 5", "Therefore $x \\geq 5$ is the solution.", True, "last expression"),
    ("x \\geq 6", "Therefore $x \\geq 5$ is the solution.", False, "last expression"),
    ("5", "Solving for x gives\n$$\nx = 5\n$$", True, "last expression"),
    ("\\frac{1}{2}", "We halve it:\n\\[\n\\frac{1}{2}\n\\]", True, "last expression"),
]

LISTS = [
    # A bare list keeps its order (issue 13; MATH's test_order) ...
    ("10, 4, -2", "4, 10, -2", False, "whole answer"),
    ("10, 4, -2", "\\boxed{4, 10, -2}", False, "boxed"),
    ("10, 4, -2", "10,4,-2", True, "whole answer"),
    ("0.1, 4, 2", "\\boxed{.1, 4, 2}", True, "boxed"),
    ("10, 4, -2", "4, 10", False, "whole answer"),
    ("(10, 4, -2)", "(4, 10, -2)", False, "whole answer"),
    ("12, 13", "The final answer is $12$ and $13$.", True, "final answer"),
    ("10, 4, -2", "The answer is 10, 4, and -2.", True, "final answer"),
    ("10, 4, -2", "The answer is 4, 10, and -2.", False, "final answer"),
    ("10, 4, -2", "\\boxed{10; 4; -2}", True, "boxed"),
    # ... unless the gold is written as a set: set notation, separate boxes, the values of a
    # variable, assignments.
    ("\\{10, 4, -2\\}", "\\boxed{(4, 10, -2)}", True, "boxed"),
    ("\\{10, 4, -2\\}", "4, 10, -2", True, "whole answer"),
    ("\\boxed{1} and \\boxed{-2}", "\\boxed{-2, 1}", True, "boxed"),
    ("so the solutions are $n = \\boxed{1,-2}.$", "\\boxed{-2} and \\boxed{1}", True, "boxed"),
    ("\\boxed{a=4,\\,-8,\\,-10}", "\\boxed{-10,-8,4}", True, "boxed"),
    ("$a_3 = 2, a_{37} = 19$", "\\boxed{a_{37} = 19, \\quad a_3 = 2}", True, "boxed"),
    ("$21,16$ or $11$", "$21,16,11$", True, "last expression"),
    ("-12;-11;-10", "\\boxed{\\{-10, -11, -12\\}}", True, "boxed"),
]

WORDS_IN_BOX = [
    ("2", "\\boxed{2\\text{ hours and }15\\text{ minutes}}", False, "boxed"),
    ("15", "\\boxed{2\\text{ hours and }15\\text{ minutes}}", False, "boxed"),
    (
        "2\\text{ hours and }15\\text{ minutes}",
        "It takes \\boxed{2 \\text{ hours and } 15 \\text{ minutes}}.",
        True,
        "boxed",
    ),
    ("3, 5", "\\boxed{3 \\text{ or } 5}", True, "boxed"),
    ("12", "\\boxed{12\\text{ apples}}", True, "boxed"),
]


@pytest.mark.parametrize(
    "gold, pred, correct, rule",
    STATEMENTS + BOXES + UNITS_AND_LABELS + NUMBER_FORMATS + PROSE + LISTS + WORDS_IN_BOX,
)
def test_math_world(math_verifier, gold, pred, correct, rule):
    check(math_verifier, gold, pred, correct, rule)


GSM8K_OUTPUTS = [
    # The GSM8K world falls back on the last number when nothing marks the answer.
    ("18", "She sells 16 - 3 - 4 = 9 eggs at $2 each; she makes 9 * 2 = 18", True, "last number"),
    ("1450000", "The house now costs 1,450,000 dollars", True, "last number"),
    ("9", "She sells 16 - 3 - 4 = 9 eggs at $2 each; she makes 9 * 2 = 18", False, "last number"),
    # A marker still wins over the last number.
    ("72", "She sold 48 + 24 = 72 clips.\n#### 72\nThat is 3 more than 69.", True, "gsm8k marker"),
    ("18", "Janet makes \\boxed{18} dollars; she keeps 2 eggs.", True, "boxed"),
    ("35", "The answer is 35%.", True, "final answer"),
]


@pytest.mark.parametrize("gold, pred, correct, rule", GSM8K_OUTPUTS)
def test_gsm8k_world(gsm8k_verifier, gold, pred, correct, rule):
    check(gsm8k_verifier, gold, pred, correct, rule)


def test_math_world_does_not_take_the_last_number(math_verifier):
    # In MATH a text without a marker or math is not an answer to guess a number from.
    text = "First line with 3 numbers 4\nand a second line ending in 18"
    gsm8k = locate_answer(text, fallback="last number")
    assert [c.rule for c in gsm8k] == ["last number"] and gsm8k[0].text == "18"
    assert [c.rule for c in locate_answer(text, fallback="none")] == []


def test_set_lists_convention():
    # lists="set": every list is a set, as math-verify reads them.
    with Verifier(time_limit=2.0, workers=1, conventions=Conventions(lists="set")) as v:
        assert v.verify("10, 4, -2", "4, 10, -2").correct
        assert not v.verify("(10, 4, -2)", "(4, 10, -2)").correct  # tuples stay ordered
        assert v.verify("2,125", "2125").correct  # a thousands comma is not a list


def test_decimal_comma_convention():
    with Verifier(time_limit=2.0, workers=1, conventions=Conventions(decimal_comma=True)) as v:
        assert v.verify("1000.99", "1000,99").correct
        assert v.verify("1,22", "\\boxed{1.22}").correct
        assert v.verify("1450000", "1,450,000").correct  # three digits: thousands
        assert not v.verify("1, 22", "1.22").correct  # a comma and a space: a list
    with Verifier(time_limit=2.0, workers=1) as v:  # off by default: a list
        assert not v.verify("1000.99", "1000,99").correct


def test_extraction_strict_and_set_relation_conventions():
    latex = Conventions(extraction="latex")
    with Verifier(time_limit=2.0, workers=1, conventions=latex) as v:
        # LaTeX only: a number outside math delimiters, over several lines, is not read.
        assert v.verify("$9$", "Answer $ \n 9 \n $").reason == "no answer found"
        assert v.verify("$9$", "\\boxed{9}").correct
    with Verifier(time_limit=2.0, workers=1, conventions=Conventions(extraction="expr")) as v:
        assert v.verify("1000.99", "1000,99").correct  # math-verify's expr reads decimal commas
    with Verifier(time_limit=2.0, workers=1, conventions=Conventions(strict=False)) as v:
        assert v.verify("$f(x)$", "$f(y)$").correct
    with Verifier(time_limit=2.0, workers=1) as v:
        assert not v.verify("$f(x)$", "$f(y)$").correct
    relation = Conventions(extraction="latex", set_relation=True)
    with Verifier(time_limit=2.0, workers=1, conventions=relation) as v:
        assert v.verify("$x \\in [-2,7]$", "$-2 \\le x \\le 7$").correct


def test_precision_convention():
    with Verifier(time_limit=2.0, workers=1, conventions=Conventions(precision=3)) as v:
        assert v.verify("\\frac{1}{3}", "0.333").correct
    with Verifier(time_limit=2.0, workers=1) as v:
        assert not v.verify("\\frac{1}{3}", "0.333").correct


def test_percent_convention_off():
    with Verifier(time_limit=2.0, workers=1, conventions=Conventions(percent=False)) as v:
        assert not v.verify("7.5\\%", "7.5").correct
        assert v.verify("0.075", "7.5\\%").correct  # X% is still X/100


def test_box_runs():
    assert last_box_run("\\boxed{1}, \\boxed{2}") == (["1", "2"], 0, 19)
    assert last_box_run("\\boxed{1}. Then \\boxed{2}")[0] == ["2"]
    assert last_box_run("\\boxed{\\boxed{1}}")[0] == ["\\boxed{1}"]  # nested: one box
    assert last_box_run("no box") is None


@pytest.mark.parametrize(
    "field, value",
    [
        ("precision", -1),
        ("precision", 2.5),
        ("lists", "sorted"),
        ("fallback", "first number"),
        ("extraction", "latex,expr"),
        ("strict", "yes"),
        ("decimal_comma", 1),
    ],
)
def test_bad_conventions_name_their_field(field, value):
    with pytest.raises(ValueError, match=field):
        Conventions(**{field: value})


def test_unknown_world_is_a_clear_error():
    with pytest.raises(ValueError, match="'demo' has no answer conventions"):
        world_conventions("demo")


def test_a_judge_built_with_lists_set_reads_every_list_as_a_set():
    from runners.judging.conventions import verifier_identity
    from runners.judging.judge import Judge

    problems, texts = [{"answer": "10, 4, -2"}], ["The answer is 4, 10, -2."]
    with Judge("math", workers=1, verifier=verifier_identity("math", {"lists": "set"})) as judge:
        assert [v["correct"] for v in judge(problems, texts)] == [True]
    with Judge("math", workers=1, verifier=verifier_identity("math")) as judge:
        assert [(v["correct"], v["reason"]) for v in judge(problems, texts)] == [
            (False, "mismatch")
        ]
    with pytest.raises(ValueError, match="demo world"):
        Judge("demo", verifier=verifier_identity("math"))
