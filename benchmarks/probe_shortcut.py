"""How much each model leans on the demo world's shortcut (`world.skills.shortcut`).

On test problems, a constant with a number beside it whose value is not that number is where
the shortcut fails. For every evaluated model this prints how often it wrote the neighbour
there (the shortcut), the constant's value, or something else, by arm and size, averaged over
seeds. A model that never saw the cue copies the neighbour about 1 time in `modulus`.

    python benchmarks/probe_shortcut.py setlur-demo          # results/setlur-demo
    python benchmarks/probe_shortcut.py setlur-demo --root results
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from scaler.layout import Layout


def traps(problem: dict) -> list[tuple[str, int, int]]:
    """(unknown, constant's value, the number beside it) where the shortcut gives a wrong value:
    definitions of one constant and one number."""
    constants = problem.get("constants") or {}
    return [
        (label, constants[name], int(beside))
        for label, (_, *operands) in problem["definitions"].items()
        for name, beside in (operands, operands[::-1])
        if name in constants and beside.isdigit() and int(beside) != constants[name]
    ]


def written_value(output: str, label: str) -> int | None:
    """The value the solution gives the constant in the step that computes `label`, whatever
    constant name it wrote there (an unsure model often writes a commoner one)."""
    for step in output.split(";"):
        if re.search(rf"= {label} \d+", step):
            found = re.search(r"(?<!\S)c\d+ (\d+)", step.split("=")[0])
            return int(found.group(1)) if found else None
    return None


def probe(layout: Layout) -> dict[tuple[str, int], list[float]]:
    with duckdb.connect(str(layout.database), read_only=True) as db:
        rows = db.execute(
            "SELECT e.step_id, e.algorithm, e.size, s.inputs->>'$.data' FROM evals e"
            " JOIN steps s USING (step_id) WHERE e.eval_set = 'test'"
        ).fetchall()
    tests: dict[str, dict[int, dict]] = {}  # generate step id -> its test problems by id
    shares: dict[tuple[str, int], list[tuple[float, float]]] = defaultdict(list)
    for step_id, algorithm, size, data in rows:
        if data not in tests:
            path = layout.step_dir("generate", f"generate-{data}") / "test.jsonl"
            tests[data] = {p["id"]: p for p in map(json.loads, path.open())}
        outputs = pq.read_table(
            layout.step_dir("evaluate", f"evaluate-{step_id}") / "problems.parquet",
            columns=["problem_id", "output"],
        ).to_pylist()
        copied = right = seen = 0
        for row in outputs:
            for label, value, beside in traps(tests[data][row["problem_id"]]):
                written = written_value(row["output"] or "", label)
                if written is not None:
                    seen += 1
                    copied += written == beside
                    right += written == value
        shares[(algorithm, size)].append((copied / max(seen, 1), right / max(seen, 1)))
    return {
        key: [sum(column) / len(column) for column in zip(*pairs, strict=True)]
        for key, pairs in shares.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment")
    parser.add_argument("--root", type=Path, default=Path("results"))
    args = parser.parse_args()
    table = probe(Layout(args.root / args.experiment))
    print("| arm | size | neighbour copied | value written |")
    print("| --- | ---: | ---: | ---: |")
    for (algorithm, size), (copied, right) in sorted(table.items()):
        print(f"| {algorithm} | {size} | {copied:.3f} | {right:.3f} |")


if __name__ == "__main__":
    main()
