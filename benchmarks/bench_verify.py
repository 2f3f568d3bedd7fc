"""Answer verification throughput: the worker pool against math-verify called in-process.

Workload: every GSM8K test record, gold = its `#### N` answer, prediction = its whole reference
solution (a model-like text with calculator annotations, ending in `#### N`). The pool
(`Verifier(workers=2)`, 2 s per comparison) runs `verify_many` over all of them; the baseline is
`math_verify.verify(parse(gold), parse(pred))` called in this process, one pair after another,
with math-verify's own signal timeouts on (its default way). Medians of REPEATS runs. Then the
worst wall time of one `verify` call on each pathological input. Last, every GSM8K test and
MATH-500 gold against itself and six reformattings of it (boxed, "The answer is X.", `$X$`, ...),
through the Verifier with each world's conventions and through math-verify directly (parse with
`LatexExtractionConfig(boxed_match_priority=0)`, `ExprExtractionConfig()`, as its tests do).

Run: `.venv/bin/python benchmarks/bench_verify.py` (needs ../shared/data or SCALER_SHARED_DATA).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

from common import machine, median_seconds
from runners.judging.answers import gsm8k_gold, math_gold
from runners.judging.conventions import world_conventions
from runners.judging.equivalence import PATHOLOGICAL, Verifier

DATA = Path(os.environ.get("SCALER_SHARED_DATA", Path(__file__).parents[2] / "shared" / "data"))
REPEATS = 3


def main() -> None:
    path = DATA / "gsm8k" / "test.jsonl"
    if not path.is_file():
        sys.exit(f"skipped: no {path}; set SCALER_SHARED_DATA")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    pairs = [(gsm8k_gold(r["answer"]), r["answer"]) for r in records]
    print(f"{machine()}; {len(pairs)} GSM8K test pairs")

    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)

    def baseline() -> int:
        return sum(verify(parse(g), parse(p)) for g, p in pairs)

    gsm8k = world_conventions("gsm8k")
    with Verifier(time_limit=2.0, workers=2, conventions=gsm8k) as verifier:
        verifier.verify("1", "1")  # start the workers outside the timing

        def pool() -> int:
            return sum(v.correct for v in verifier.verify_many(pairs))

        assert pool() == len(pairs), "every gold solution should verify"
        print(f"in-process baseline correct: {baseline()} / {len(pairs)}")
        base_s = median_seconds(baseline, REPEATS)
        pool_s = median_seconds(pool, REPEATS)
        single_s = median_seconds(lambda: [verifier.verify(g, p) for g, p in pairs[:300]], 3)
        print(f"pool, verify_many, 2 workers : {len(pairs) / pool_s:8.0f} answers/s")
        print(f"pool, verify one at a time   : {300 / single_s:8.0f} answers/s")
        print(f"math_verify in-process       : {len(pairs) / base_s:8.0f} answers/s")
        print(f"ratio pool / in-process      : {base_s / pool_s:8.2f}")

        worst = 0.0
        for text in PATHOLOGICAL:
            start = time.perf_counter()
            verdict = verifier.verify("5", text)
            took = time.perf_counter() - start
            worst = max(worst, took)
            print(f"  {text[:24]!r:30} {took:6.2f} s  {verdict.reason}")
        print(
            f"worst pathological case: {worst:.2f} s (limit 2 s); workers replaced: "
            f"{verifier.replaced}"
        )
    self_verify("gsm8k", [gsm8k_gold(r["answer"]) for r in records])
    math_path = DATA / "math" / "test.jsonl"
    if math_path.is_file():
        math_records = [json.loads(line) for line in math_path.read_text().splitlines()]
        self_verify("math", [math_gold(r) for r in math_records])


def reformattings(gold: str) -> list[str]:
    return [
        gold,
        f"\\boxed{{{gold}}}",
        f"The answer is {gold}.",
        f"${gold}$",
        f"{gold}.",
        f"Some steps.\nThe final answer is $\\boxed{{{gold}}}$.",
        f"Some steps.\nFinal Answer: The final answer is ${gold}$. I hope it is correct.",
    ]


def self_verify(world: str, golds: list[str]) -> None:
    """Each gold against itself and its reformattings: scaler's world vs math-verify direct."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    pairs = [(gold, form) for gold in golds for form in reformattings(gold)]
    config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    direct = sum(bool(verify(parse(g, config), parse(p, config))) for g, p in pairs)
    with Verifier(time_limit=2.0, workers=2, conventions=world_conventions(world)) as verifier:
        ours = sum(v.correct for v in verifier.verify_many(pairs))
    n = len(pairs)
    print(
        f"{world} golds vs reformattings ({len(golds)} golds, {n} pairs): scaler {ours / n:.1%}"
        f" ({ours}), math-verify direct {direct / n:.1%} ({direct})"
    )


if __name__ == "__main__":
    main()
