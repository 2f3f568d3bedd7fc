"""Checking a file of final answers: JSON lines of `{"gold": ..., "pred": ...}` (`scaler verify
--jsonl`), one verdict per good line, the bad lines named rather than fatal.

The comparison is runners.judging.equivalence's Verifier, the one the verify stage judges with;
it is imported by the caller that builds it, so this module stays light.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaler.errors import ArgumentError

if TYPE_CHECKING:
    from runners.judging.equivalence import Verifier

ARGUMENTS = "verify_file"
"""The source of an error in an argument of verify_file; the CLI says its flags instead."""


@dataclass
class VerifiedFile:
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    """Per good line, in file order: its `line` number, `extracted`, `correct`, `reason`, `rule`."""
    bad_lines: list[tuple[int, str]] = field(default_factory=list)
    """(line number, what is wrong with it) for lines skipped."""


def verify_file(path: Path, verifier: Verifier) -> VerifiedFile:
    """The verdict of every `{gold, pred}` line of `path` (blank lines are skipped silently)."""
    if not Path(path).is_file():
        raise ArgumentError(ARGUMENTS, "path", f"no file at {path}")
    result = VerifiedFile()
    numbers, pairs = [], []
    with open(path) as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                pair = (record["gold"], record["pred"])
                if not all(isinstance(x, str) for x in pair):
                    raise TypeError("gold and pred must be strings")
            except (ValueError, KeyError, TypeError) as error:
                result.bad_lines.append((number, repr(error)))
                continue
            numbers.append(number)
            pairs.append(pair)
    for number, verdict in zip(numbers, verifier.verify_many(pairs), strict=True):
        out = {"line": number, "extracted": verdict.extracted}
        out.update(correct=verdict.correct, reason=verdict.reason, rule=verdict.rule)
        result.verdicts.append(out)
    return result
