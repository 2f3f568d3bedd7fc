"""Answer equivalence: conventions, the real golds against themselves, limits, the pool, CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest
from test_answers import records

from runners.judging.answers import gsm8k_gold, math_gold
from runners.judging.comparison import REASONS
from runners.judging.equivalence import PATHOLOGICAL, Verifier

LIMIT = 2.0

# MATH-500 golds that do not verify against themselves through math-verify 0.9. Empty: all 500
# do (and every reformatting below); add `unique_id: reason` here rather than loosening a test.
MATH500_KNOWN_FAILURES: dict[str, str] = {}


@pytest.fixture(scope="module")
def verifier():
    with Verifier(time_limit=LIMIT, workers=2) as v:
        yield v


@pytest.mark.parametrize(
    "gold, pred",
    [
        ("\\frac{1}{3}", "0.333333"),  # decimals to 6 places
        ("0.5", "\\frac{1}{2}"),
        ("2125", "2,125"),
        ("3", "x=3"),
        ("x=5", "5"),
        ("(1,2)", "(1,2)"),
        ("\\{1,2\\}", "\\{2,1\\}"),  # sets unordered
        ("1,-2", "1, -2"),  # a bare list keeps its order ...
        ("\\{1,-2\\}", "-2, 1"),  # ... unless the gold is a set
        ("(-\\infty, 2) \\cup (3, \\infty)", "(-\\infty,2)\\cup(3,\\infty)"),
        ("\\text{Evelyn}", "Evelyn"),
        ("90^\\circ", "90"),
        ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}"),
        ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"),
        # The percent policy: X% is X and X/100, nothing else.
        ("35", "35\\%"),
        ("35", "35%"),
        ("0.35", "35%"),
        ("35", "The answer is 35%."),
        ("72", "so she has \\boxed{72} apples"),
        ("72", "Natalia sold 48 clips.\n#### 72"),
    ],
)
def test_equivalent(verifier, gold, pred):
    verdict = verifier.verify(gold, pred)
    assert verdict.correct and verdict.reason == "equivalent", verdict


@pytest.mark.parametrize(
    "gold, pred",
    [
        ("\\frac{1}{3}", "0.3333"),
        ("(1,2)", "[1,2]"),  # intervals keep their brackets
        ("(1,2,3)", "(3,2,1)"),  # tuples are ordered
        ("1,-2", "-2, 1"),  # and so are bare lists
        ("35", "0.035"),
        ("35\\%", "3.5"),
        ("5", "6"),
        ("x=5", "y=6"),
        ("\\text{Evelyn}", "Bob"),
        ("\\sqrt{2}", "2"),
        ("-3", "3"),
    ],
)
def test_mismatch(verifier, gold, pred):
    verdict = verifier.verify(gold, pred)
    assert not verdict.correct and verdict.reason == "mismatch", verdict


def test_no_answer(verifier):
    assert verifier.verify("3", "").reason == "no answer found"
    assert verifier.verify("3", "first line\nsecond line, no marker").reason == "no answer found"


def reformattings(gold: str, assignment: bool) -> list[str]:
    forms = [gold, f"\\boxed{{{gold}}}", f"The answer is {gold}.", f"${gold}$", f"{gold}."]
    forms.append(f"Some steps.\nThe final answer is $\\boxed{{{gold}}}$.")
    if assignment:
        forms.append(f"x = {gold}")
    return forms


def check_self(verifier, golds: dict[str, str], assignment) -> dict[str, list[str]]:
    pairs, keys = [], []
    for key, gold in golds.items():
        for form in reformattings(gold, assignment(gold)):
            pairs.append((gold, form))
            keys.append((key, form))
    verdicts = verifier.verify_many(pairs)
    failures: dict[str, list[str]] = {}
    for (key, form), verdict in zip(keys, verdicts, strict=True):
        if not verdict.correct:
            failures.setdefault(key, []).append(f"{form!r}: {verdict.reason}")
    return failures


def test_gsm8k_test_golds_self_verify(verifier):
    golds = {str(i): gsm8k_gold(r["answer"]) for i, r in enumerate(records("gsm8k/test.jsonl"))}
    assert len(golds) == 1319
    assert check_self(verifier, golds, assignment=lambda gold: True) == {}


def test_math500_golds_self_verify(verifier):
    golds = {r["unique_id"]: math_gold(r) for r in records("math/test.jsonl")}
    assert len(golds) == 500

    def plain_value(gold: str) -> bool:
        # `x = X` only where X is one value, not already a relation or a list.
        return re.search(r"[=<>,]|\\le|\\ge|\\text|\\in|\\cup|matrix", gold) is None

    failures = check_self(verifier, golds, plain_value)
    assert set(failures) == set(MATH500_KNOWN_FAILURES), failures


@pytest.mark.parametrize("pred", PATHOLOGICAL, ids=lambda p: p[:20])
def test_pathological_within_limit(verifier, pred):
    start = time.monotonic()
    verdict = verifier.verify("5", pred)
    assert time.monotonic() - start < LIMIT + 1.0
    assert not verdict.correct and verdict.reason in REASONS


def test_pathological_batch_keeps_order(verifier):
    pairs = [("5", "5"), ("5", "1000000!"), ("5", "x=5"), ("5", "(10^{10^{8}})!"), ("7", "7")]
    start = time.monotonic()
    verdicts = verifier.verify_many(pairs)
    # Two timeouts in a row on the same worker at worst, plus the fast ones.
    assert time.monotonic() - start < 2 * LIMIT + 2.0
    assert [v.correct for v in verdicts] == [True, False, True, False, True]
    assert verdicts[1].reason == verdicts[3].reason == "time limit"


def test_pool_survives_a_killed_worker(verifier):
    before = verifier.worker_pids()
    os.kill(before[0], signal.SIGKILL)
    time.sleep(0.1)
    verdicts = verifier.verify_many([("3", "3")] * 20)
    assert all(v.correct for v in verdicts)
    after = verifier.worker_pids()
    assert before[0] not in after and before[1] in after


def test_workers_are_reused(verifier):
    verifier.verify("1", "1")
    pids = verifier.worker_pids()
    start = time.perf_counter()
    for _ in range(50):
        assert verifier.verify("\\frac{1}{2}", "0.5").correct
    assert (time.perf_counter() - start) / 50 < 0.05
    assert verifier.worker_pids() == pids


def test_verifier_rejects_bad_settings():
    with pytest.raises(ValueError):
        Verifier(time_limit=0)


def test_cli_verify(cli):
    result = cli(["verify", "\\frac{1}{2}", "The answer is $0.5$."])
    assert result.code == 0
    # extracted is math-verify's normalised form of what it compared.
    assert result.out.strip() == "correct equivalent extracted=\\frac{1}{2} rule=final answer"
    result = cli(["verify", "3", "4"])
    assert result.out.strip() == "incorrect mismatch extracted=4 rule=whole answer"
    result = cli(["verify", "3", ""])
    assert result.out.strip() == "incorrect no answer found extracted=None rule=None"


def test_cli_verify_jsonl(cli, tmp_path):
    path = tmp_path / "preds.jsonl"
    lines = [
        json.dumps({"gold": "72", "pred": "She sold 48 + 24 = 72 clips.\n#### 72"}),
        "not json",
        json.dumps({"gold": "5"}),
        json.dumps({"gold": "5", "pred": "the answer is 6"}),
    ]
    path.write_text("\n".join(lines) + "\n")
    result = cli(["verify", "--jsonl", str(path)])
    assert result.code == 0
    out = [json.loads(line) for line in result.out.splitlines()]
    assert [(o["line"], o["correct"], o["reason"], o["extracted"], o["rule"]) for o in out] == [
        (1, True, "equivalent", "72", "gsm8k marker"),
        (4, False, "mismatch", "6", "final answer"),
    ]
    assert "line 2" in result.err and "line 3" in result.err and "2 bad lines" in result.err


def test_cli_verify_needs_arguments(cli):
    assert cli(["verify", "3"]).code == 2


def test_judge_rows_carry_the_rule(tmp_path):
    import duckdb
    import pyarrow.parquet as pq

    from runners.files import write_samples
    from runners.judging.judge import Judge
    from scaler.store import migrate

    problems = [{"answer": "72"}, {"answer": "5"}, {"answer": "5"}]
    texts = ["She sold 48 + 24 = 72 clips.\n#### 72", "It is \\boxed{5}.", ""]
    with Judge("gsm8k", workers=1) as judge:
        verdicts = judge(problems, texts)
    assert [v["rule"] for v in verdicts] == ["gsm8k marker", "boxed", None]
    rows = [{"problem_id": i, "sample_id": 0, **v} for i, v in enumerate(verdicts)]
    write_samples(tmp_path / "samples.parquet", rows)
    assert pq.read_table(tmp_path / "samples.parquet")["rule"].to_pylist()[:2] == [
        "gsm8k marker",
        "boxed",
    ]
    con = duckdb.connect()
    migrate(con)
    for table in ("samples", "eval_problems"):
        columns = [row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()]
        assert "rule" in columns


def test_verifier_identity_is_the_worlds_conventions_with_overrides_and_the_version():
    from dataclasses import asdict, replace

    from runners.judging.conventions import (
        VERIFIER_VERSION,
        WORLDS,
        conventions_of,
        verifier_identity,
    )

    default = verifier_identity("gsm8k")
    assert default == {"version": VERIFIER_VERSION, "conventions": asdict(WORLDS["gsm8k"])}
    as_sets = verifier_identity("gsm8k", {"lists": "set"})
    assert conventions_of("gsm8k", as_sets) == replace(WORLDS["gsm8k"], lists="set")
    assert conventions_of("math") == WORLDS["math"]
    with pytest.raises(ValueError, match="lists: 'bag'"):
        verifier_identity("math", {"lists": "bag"})
