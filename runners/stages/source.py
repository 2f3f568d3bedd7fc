"""Stage `source`: a user's own synthetic data (problems with teacher solutions) read and checked.

The file is JSONL or anything `runners.readers` reads; `fields` names the question, solution
and gold-answer fields. A question may come with several solutions: records are grouped by
question, the questions put in one seeded order (every data size is a prefix of it) and numbered
`problem_id` 0, 1, ...; their solutions are numbered `sample_id` in file order.

Bad records (unparsable lines, missing or empty fields, a gold answer that contradicts an earlier
record of the same question) are counted and written to `bad_records.jsonl` with their line
numbers; more than `max_bad_fraction` of them fails the step, naming the first ones.

Outputs: `candidates.jsonl` (one row per solution: problem_id, sample_id, prompt, solution,
answer, row) and `bad_records.jsonl`. The verify stage judges the candidates next.
"""

from __future__ import annotations

import random
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from runners import NO_EFFECT
from runners.files import BAD_RECORDS, CANDIDATES, write_jsonl
from runners.readers import (
    BadRecord,
    check_bad_records,
    check_unchanged,
    read_problems,
    user_problem,
)

INPUTS = ()
OUTPUTS = (CANDIDATES, BAD_RECORDS)

DEFAULT_FIELDS = {"prompt": "question", "solution": "solution", "answer": "answer"}


class Settings(BaseModel):
    """How to read a user's data file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: dict[str, str] = DEFAULT_FIELDS
    """Record field names of the question (prompt), the solution and the gold answer."""
    max_bad_fraction: float = Field(0.01, ge=0.0, le=1.0)
    """Share of bad records tolerated before the step fails."""

    @model_validator(mode="after")
    def _fields_named(self) -> Settings:
        if set(self.fields) != set(DEFAULT_FIELDS):
            raise ValueError(
                f"fields maps exactly {sorted(DEFAULT_FIELDS)} to record field names, "
                f"got {sorted(self.fields)}"
            )
        return self


class Config(Settings):
    path: str = Field(json_schema_extra=NO_EFFECT)
    """The data file or folder."""
    checksum: str
    """SHA-256 of its content: the data's identity, not its path."""
    seed: int = 0
    """Seed of the order of the questions."""


def run(config: Config, inputs: dict[str, Path], out_dir: Path) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = Path(config.path)
    check_unchanged(path, config.checksum)
    records, bad = read_problems(path, partial(user_problem, fields=config.fields))
    total = len(records) + len(bad)
    by_question: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        same = by_question.setdefault(record["prompt"], [])
        if same and same[0]["answer"] != record["answer"]:
            first = same[0]
            problem = (
                f"gold answer {record['answer']!r} differs from {first['answer']!r} "
                f"on line {first['row']}, the same question"
            )
            bad.append(BadRecord(record["row"], problem))
        else:
            same.append(record)
    bad.sort(key=lambda b: b.row)
    write_jsonl(out_dir / BAD_RECORDS, [{"row": b.row, "problem": b.problem} for b in bad])
    check_bad_records(path, bad, total, config.max_bad_fraction)
    questions = list(by_question.values())
    random.Random(f"source:{config.seed}").shuffle(questions)
    candidates = [
        {"problem_id": problem_id, "sample_id": sample_id, **record}
        for problem_id, solutions in enumerate(questions)
        for sample_id, record in enumerate(solutions)
    ]
    write_jsonl(out_dir / CANDIDATES, candidates)
    return {
        "records": total,
        "bad_records": len(bad),
        "problems": len(questions),
        "solutions": len(candidates),
    }
