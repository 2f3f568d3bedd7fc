"""Answer verification against public checkers' test suites: scaler's Verifier and math-verify.

The suites are read at run time from their repositories (nothing of them is copied here):

- math-verify's own tests (`MATH_VERIFY_REPO`, default the mirror below): every
  `@pytest.mark.parametrize` case of a test that calls `compare_strings(gold, pred, ...)` or
  `verify(parse(gold), parse(pred))`, read with `ast`. Each case keeps the settings its test
  passes (match_types, precision, strict, allow_set_relation_comp). "math-verify direct" calls
  math-verify exactly so, in this process (compare_strings is parse with
  `LatexExtractionConfig(boxed_match_priority=0)` and/or `ExprExtractionConfig()`, then
  verify with float_rounding=precision). scaler's Verifier runs with the `math` world's
  conventions and the case's own settings mapped to scaler's options (`OPTIONS`:
  match_types -> `Conventions.extraction`, precision, strict, allow_set_relation_comp ->
  `set_relation`): every case runs through both, and is reported by its settings.
- MATH's `is_equiv` tests (`HENDRYCKS_MATH_REPO`, modeling/math_equivalence_test.py): unittest
  methods setting `test_in`, `test_out` and asserting True or False. They are string checks of
  two answers; math-verify direct compares them with compare_strings' defaults.
- Qwen2.5-Math's evaluation/grader.py has no cases with expected verdicts (its
  `_test_math_equal` prints results of commented-out calls), so it is not a suite here.

Why the `math` world: its fallback for a text with no marker is math-verify's last expression,
which is what math-verify's suite expects; the `gsm8k` world would take the last number instead
(what GSM8K harnesses do), which a MATH-style suite does not ask for.

Run: `.venv/bin/python benchmarks/bench_verify_suites.py` (prints each suite's agreement, the
cases scaler disagrees with, and answers/s of both).
"""

from __future__ import annotations

import ast
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from common import machine
from runners.judging.conventions import Conventions, world_conventions
from runners.judging.equivalence import Verifier

MIRRORS = Path("/work/.mirror")
MATH_VERIFY_REPO = Path(
    os.environ.get("MATH_VERIFY_REPO", MIRRORS / "huggingface+Math-Verify" / "repo")
)
HENDRYCKS_MATH_REPO = Path(
    os.environ.get("HENDRYCKS_MATH_REPO", MIRRORS / "hendrycks+math" / "repo")
)
DEFAULTS = {
    "match_types": ["latex", "expr"],
    "precision": 6,
    "strict": True,
    "allow_set_relation_comp": False,
}
OPTIONS = {
    "match_types": ("extraction", lambda kinds: "+".join(kinds)),
    "precision": ("precision", lambda value: value),
    "strict": ("strict", lambda value: value),
    "allow_set_relation_comp": ("set_relation", lambda value: value),
}
"""Each setting of math-verify's compare_strings -> the scaler option (`Conventions` field) that
does the same, and how its value maps."""


@dataclass
class Case:
    where: str
    gold: str
    pred: str
    expected: bool
    settings: dict = field(default_factory=dict)
    """compare_strings' keyword arguments as the test passes them; {"call": "parse"} for a
    test calling verify(parse(gold), parse(pred)) with math-verify's own defaults."""


def read_repo_file(repo: Path, path: str) -> str | None:
    """A file of a checkout or a bare git repository (its HEAD); None if there is none."""
    if (repo / path).is_file():
        return (repo / path).read_text()
    result = subprocess.run(
        ["git", "-C", str(repo), "show", f"HEAD:{path}"], capture_output=True, text=True
    )
    return result.stdout if result.returncode == 0 else None


def repo_files(repo: Path, folder: str) -> list[str]:
    if (repo / folder).is_dir():
        return sorted(str(p.relative_to(repo)) for p in (repo / folder).glob("*.py"))
    result = subprocess.run(
        ["git", "-C", str(repo), "ls-tree", "--name-only", "HEAD", f"{folder}/"],
        capture_output=True,
        text=True,
    )
    return sorted(line for line in result.stdout.splitlines() if line.endswith(".py"))


def math_verify_cases(repo: Path) -> tuple[list[Case], int]:
    """The parametrized (gold, pred, expected) cases of math-verify's tests, and how many
    parametrize entries could not be read as literals."""
    cases: list[Case] = []
    unreadable = 0
    for path in repo_files(repo, "tests"):
        source = read_repo_file(repo, path)
        tree = ast.parse(source or "")
        for test in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
            call = _checker_call(test)
            if call is None:
                continue
            for decorator in test.decorator_list:
                if not (isinstance(decorator, ast.Call) and _name(decorator.func) == "parametrize"):
                    continue
                names = [n.strip() for n in ast.literal_eval(decorator.args[0]).split(",")]
                for entry in decorator.args[1].elts:
                    try:
                        values = dict(zip(names, ast.literal_eval(entry), strict=True))
                    except (ValueError, TypeError, SyntaxError):
                        unreadable += 1
                        continue
                    case = _case(f"{path}::{test.name}", call, values)
                    if case is not None:
                        cases.append(case)
    return cases, unreadable


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _checker_call(test: ast.FunctionDef) -> tuple[str, ast.Call, str] | None:
    """(kind, the checking call, the name of the expected-verdict parameter) of a test."""
    for node in ast.walk(test):
        if not (isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare)):
            continue
        left, right = node.test.left, node.test.comparators[0]
        if isinstance(left, ast.Call) and _name(left.func) == "int" and left.args:
            left = left.args[0]  # int(verify(...)) == result
        if not (isinstance(left, ast.Call) and isinstance(right, ast.Name)):
            continue
        if _name(left.func) == "compare_strings":
            return "compare_strings", left, right.id
        if _name(left.func) == "verify" and all(
            isinstance(a, ast.Call) and _name(a.func) == "parse" and not a.keywords
            for a in left.args
        ):
            return "parse", left, right.id
    return None


def _case(where: str, checker: tuple[str, ast.Call, str], values: dict) -> Case | None:
    kind, call, expected_name = checker

    def value(node: ast.AST):
        if isinstance(node, ast.Name):
            return values[node.id]
        return ast.literal_eval(node)

    if kind == "compare_strings":
        gold, pred = (value(a) for a in call.args[:2])
        settings = {k.arg: value(k.value) for k in call.keywords}
    else:
        gold, pred = (value(a.args[0]) for a in call.args[:2])
        settings = {"call": "parse"}
    if not isinstance(gold, str) or not isinstance(pred, str):
        return None
    return Case(where, gold, pred, bool(values[expected_name]), settings)


def hendrycks_cases(repo: Path) -> list[Case]:
    """MATH's is_equiv unittest cases: `test_in`, `test_out`, assertTrue/assertFalse."""
    source = read_repo_file(repo, "modeling/math_equivalence_test.py")
    cases = []
    for test in ast.walk(ast.parse(source or "")):
        if not (isinstance(test, ast.FunctionDef) and test.name.startswith("test")):
            continue
        found: dict[str, str] = {}
        verdict = None
        for node in ast.walk(test):
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                found[node.targets[0].id] = ast.literal_eval(node.value)
            if isinstance(node, ast.Call) and _name(node.func) in ("assertTrue", "assertFalse"):
                verdict = _name(node.func) == "assertTrue"
        if "test_in" in found and "test_out" in found and verdict is not None:
            cases.append(Case(test.name, found["test_in"], found["test_out"], verdict))
    return cases


def direct(case: Case) -> bool:
    """math-verify as the case's own test calls it."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    if case.settings.get("call") == "parse":
        return bool(verify(parse(case.gold), parse(case.pred)))
    settings = {**DEFAULTS, **case.settings}
    config = []
    for kind in settings["match_types"]:
        if kind == "latex":
            config.append(LatexExtractionConfig(boxed_match_priority=0))
        elif kind == "expr":
            config.append(ExprExtractionConfig())
    return bool(
        verify(
            parse(case.gold, config),
            parse(case.pred, config),
            float_rounding=settings["precision"],
            strict=settings["strict"],
            allow_set_relation_comp=settings["allow_set_relation_comp"],
        )
    )


def conventions_for(case: Case, base: Conventions) -> Conventions:
    """`base` with the case's own compare_strings settings as scaler options."""
    settings = {k: v for k, v in case.settings.items() if k != "call"}
    unknown = set(settings) - set(OPTIONS)
    if unknown:
        raise ValueError(f"{case.where}: settings with no scaler option: {sorted(unknown)}")
    options = {OPTIONS[k][0]: OPTIONS[k][1](v) for k, v in settings.items()}
    return replace(base, **options)


def settings_label(case: Case) -> str:
    """The case's settings that are not compare_strings' defaults ("defaults" for none)."""
    extra = {k: v for k, v in case.settings.items() if k != "call" and DEFAULTS.get(k) != v}
    return ", ".join(f"{k}={v}" for k, v in sorted(extra.items())) or "defaults"


def run_scaler(cases: list[Case], base: Conventions) -> tuple[list[bool], float]:
    """scaler's verdicts, one Verifier per set of conventions the cases ask for, and the seconds
    taken."""
    verdicts: dict[int, bool] = {}
    seconds = 0.0
    groups: dict[Conventions, list[int]] = {}
    for i, case in enumerate(cases):
        groups.setdefault(conventions_for(case, base), []).append(i)
    for conventions, indices in groups.items():
        with Verifier(time_limit=5.0, workers=2, conventions=conventions) as v:
            v.verify("1", "1")  # start the workers outside the timing
            start = time.perf_counter()
            results = v.verify_many((cases[i].gold, cases[i].pred) for i in indices)
            seconds += time.perf_counter() - start
        for i, verdict in zip(indices, results, strict=True):
            verdicts[i] = verdict.correct
    return [verdicts[i] for i in range(len(cases))], seconds


def report(title: str, cases: list[Case], conventions: Conventions, show: bool = True) -> None:
    if not cases:
        print(f"\n{title}: no cases")
        return
    start = time.perf_counter()
    direct_verdicts = [direct(c) for c in cases]
    direct_s = time.perf_counter() - start
    scaler_verdicts, scaler_s = run_scaler(cases, conventions)
    n = len(cases)
    agree_direct = sum(d == c.expected for d, c in zip(direct_verdicts, cases, strict=True))
    agree_scaler = sum(s == c.expected for s, c in zip(scaler_verdicts, cases, strict=True))
    print(f"\n{title}: {n} cases")
    print(
        f"  scaler Verifier     : {agree_scaler:4d} / {n} = {agree_scaler / n:6.1%}"
        f"   {n / scaler_s:7.0f} answers/s (2 workers)"
    )
    print(
        f"  math-verify direct  : {agree_direct:4d} / {n} = {agree_direct / n:6.1%}"
        f"   {n / direct_s:7.0f} answers/s (in process)"
    )
    if not show:
        return
    for case, s, d in zip(cases, scaler_verdicts, direct_verdicts, strict=True):
        if s != case.expected:
            also = "math-verify too" if d != case.expected else "math-verify right"
            print(
                f"  scaler wrong ({also}), expected {case.expected}: {case.where}\n"
                f"      gold={case.gold[:100]!r}\n      pred={case.pred[-160:]!r}"
            )
    for case, s, d in zip(cases, scaler_verdicts, direct_verdicts, strict=True):
        if d != case.expected and s == case.expected:
            print(f"  math-verify wrong, scaler right: {case.where} gold={case.gold[:60]!r}")


def main() -> None:
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    from importlib.metadata import version

    print(f"{machine()}; math-verify {version('math-verify')}")
    math = world_conventions("math")
    if (
        not (MATH_VERIFY_REPO / "tests").is_dir()
        and read_repo_file(MATH_VERIFY_REPO, "tests/test_all.py") is None
    ):
        sys.exit(f"skipped: no math-verify repository at {MATH_VERIFY_REPO}; set MATH_VERIFY_REPO")
    cases, unreadable = math_verify_cases(MATH_VERIFY_REPO)
    kinds: dict[str, int] = {}
    for case in cases:
        kinds[settings_label(case)] = kinds.get(settings_label(case), 0) + 1
    print(
        f"math-verify suite: {len(cases)} cases read ({unreadable} parametrize entries not "
        "literals); by settings: " + "; ".join(f"{k}: {n}" for k, n in kinds.items())
    )
    report("math-verify suite, each case with its own settings", cases, math)
    for label in kinds:
        group = [c for c in cases if settings_label(c) == label]
        report(f"  of which {label}", group, math, show=False)

    hendrycks = hendrycks_cases(HENDRYCKS_MATH_REPO)
    if not hendrycks:
        print(f"\nMATH is_equiv suite: none at {HENDRYCKS_MATH_REPO}; set HENDRYCKS_MATH_REPO")
        return
    report("MATH is_equiv suite (math world)", hendrycks, math)
    report(
        "MATH is_equiv suite with lists='set'", hendrycks, replace(math, lists="set"), show=False
    )


if __name__ == "__main__":
    main()
