"""Reading problem files: GSM8K and MATH JSONL, a user's own data, local `datasets` copies.

Every reader turns records into the project's problem form, the one the demo world writes too:
`prompt` (the question), `solution` (a worked solution) and `answer` (the gold final answer). A
record that cannot be turned into a problem is not skipped silently: readers return it as a
`BadRecord` with its line (or row) number and what is wrong, and the caller decides how many it
tolerates.

A path is a JSONL file (read here, line by line), another file `datasets` reads (.json, .parquet,
.csv), or a folder: a `save_to_disk` copy or a local copy of a Hub dataset, read with the
`datasets` library. `fingerprint` hashes a file's or folder's content, so a step's id follows
the data and not where it lies. Pure Python except for `datasets`, imported when a non-JSONL
path is read.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runners.judging.answers import gsm8k_gold, math_gold

_CALCULATOR = re.compile(r"<<[^<>]*>>")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class BadRecord:
    row: int
    """1-based line of a JSONL file, or row of a dataset."""
    problem: str


def fingerprint(path: Path) -> str:
    """SHA-256 of a file's bytes, or of a folder's files (relative names and bytes, sorted)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if file is not path:
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def read_records(path: Path, split: str = "train") -> Iterator[tuple[int, Any]]:
    """(row, record) pairs; a record that is not a JSON object comes as a BadRecord instead.

    `split` picks the split of a folder holding several (a DatasetDict or a Hub layout).
    """
    if path.is_file() and path.suffix == ".jsonl":
        yield from _jsonl_records(path)
    else:
        yield from enumerate(_dataset(path, split), start=1)


def _jsonl_records(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open(encoding="utf-8", errors="replace") as f:
        for row, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                yield row, BadRecord(row, f"not valid JSON ({error.msg} at column {error.colno})")
                continue
            if not isinstance(record, dict):
                yield row, BadRecord(row, f"not a JSON object but {type(record).__name__}")
            else:
                yield row, record


def _dataset(path: Path, split: str):
    import datasets

    if path.is_dir() and any((path / name).is_file() for name in _SAVED_MARKERS):
        loaded = datasets.load_from_disk(str(path))
        return loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
    if path.is_file():
        kind = {".json": "json", ".parquet": "parquet", ".csv": "csv"}.get(path.suffix)
        if kind is None:
            raise ValueError(f"{path}: expected .jsonl, .json, .parquet, .csv or a folder")
        return datasets.load_dataset(kind, data_files=str(path), split="train")
    return datasets.load_dataset(str(path), split=split)


_SAVED_MARKERS = ("state.json", "dataset_dict.json")


def read_problems(
    path: Path, to_problem: Callable[[dict], dict], split: str = "train"
) -> tuple[list[dict[str, Any]], list[BadRecord]]:
    """Problems in file order, each with its `row`, and the records that could not be read."""
    problems, bad = [], []
    for row, record in read_records(path, split):
        if isinstance(record, BadRecord):
            bad.append(record)
            continue
        try:
            problems.append({**to_problem(record), "row": row})
        except (KeyError, TypeError, ValueError) as error:
            bad.append(BadRecord(row, _describe(error)))
    return problems, bad


def _describe(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"missing field {error.args[0]!r}"
    return str(error)


def _text(record: dict, field: str) -> str:
    value = record[field]
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"field {field!r} must be a non-empty string, got {value!r}"[:200])
    return value


def gsm8k_problem(record: dict, strip_annotations: bool = True) -> dict[str, Any]:
    """A GSM8K record (`question`, `answer` ending in `#### N`) as a problem. The solution keeps
    the `#### N` line, the answer format models learn; calculator annotations `<<48/2=24>>` go
    unless `strip_annotations` is False."""
    solution = _text(record, "answer")
    answer = gsm8k_gold(solution)
    if strip_annotations:
        solution = _CALCULATOR.sub("", solution)
    return {"prompt": _text(record, "question"), "solution": solution, "answer": answer}


def math_problem(record: dict) -> dict[str, Any]:
    """A MATH record (`problem`, `solution`, optional `answer`, `subject`, `level`)."""
    problem = {
        "prompt": _text(record, "problem"),
        "solution": _text(record, "solution"),
        "answer": math_gold(record),
    }
    for extra in ("subject", "level", "unique_id"):
        if extra in record:
            problem[extra] = record[extra]
    return problem


def user_problem(record: dict, fields: dict[str, str]) -> dict[str, Any]:
    """A record of a user's own data; `fields` maps prompt/solution/answer to its field names.
    Gold answers that are numbers are taken as their decimal text."""
    answer = record[fields["answer"]]
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        answer = str(answer)
    elif not isinstance(answer, str) or not answer.strip():
        raise ValueError(f"field {fields['answer']!r} must be a non-empty string or a number")
    return {
        "prompt": _text(record, fields["prompt"]),
        "solution": _text(record, fields["solution"]),
        "answer": answer.strip(),
    }


def count_records(path: Path) -> int | None:
    """Non-blank lines of a JSONL file (an upper bound on its problems); None for other paths."""
    if not (path.is_file() and path.suffix == ".jsonl"):
        return None
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def check_bad_records(
    path: Path, bad: list[BadRecord], total: int, max_bad_fraction: float
) -> None:
    """Raise one error naming the bad records when more than `max_bad_fraction` of `total`
    records are bad."""
    if bad and len(bad) > max_bad_fraction * total:
        shown = "; ".join(f"line {b.row}: {b.problem}" for b in bad[:10])
        more = f" (and {len(bad) - 10} more)" if len(bad) > 10 else ""
        raise ValueError(
            f"{path}: {len(bad)} of {total} records are bad, more than the "
            f"{max_bad_fraction:g} allowed: {shown}{more}"
        )


def check_unchanged(path: Path, expected_sha256: str) -> None:
    """Refuse data that changed since the plan named it: its steps' ids hash the old content."""
    actual = fingerprint(path)
    if actual != expected_sha256:
        raise ValueError(
            f"{path} changed since it was planned (sha256 {actual[:12]}, planned "
            f"{expected_sha256[:12]}); run `scaler run` again to plan with the new content"
        )
