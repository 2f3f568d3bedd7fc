"""What `scaler status` remembers of each finished step folder, so that it reads a large
experiment in a stat per folder instead of a manifest check and a provenance read.

For each folder whose quick manifest check passed (scaler.manifest.check_step), the
experiment's `.finished.json` keeps its manifest's mtime and size and the wall time its
provenance.json records. A folder whose manifest.json is as it was is taken as whole, with the
wall time remembered; a new folder, or one whose manifest changed, is checked and read. So
damage done to a file after its folder was checked is seen by the next `scaler plan`, `run` or
`collect`, which check every folder, and not by `scaler status`.

Written to a temporary name and renamed into place; a folder one may read but not write
(another person's results) still gets a status, checked in full each time.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaler.layout import Layout
from scaler.manifest import MANIFEST, check_step


@dataclass(frozen=True)
class Finished:
    damaged: dict[str, str]
    """Step name -> why its folder fails its check."""
    wall_s: dict[str, float | None]
    """Step name -> its wall time (provenance.json's wall_s), for each whole folder."""


def finished_steps(layout: Layout) -> Finished:
    """Every finished folder of the experiment, checked once (see the module)."""
    memo = _read(layout.finished_memo)
    kept: dict[str, list[Any]] = {}
    damaged: dict[str, str] = {}
    for entry in sorted(layout.finished_entries(), key=lambda entry: entry.name):
        try:
            stat = os.stat(os.path.join(entry.path, MANIFEST))
            seen: list[Any] = [stat.st_mtime_ns, stat.st_size]
        except OSError:
            seen = []
        remembered = memo.get(entry.name)
        if seen and isinstance(remembered, list) and remembered[:2] == seen:
            kept[entry.name] = remembered
            continue
        reason = check_step(Path(entry.path))
        if reason is None:
            kept[entry.name] = [*seen, wall_seconds(entry.path)]
        else:
            damaged[entry.name] = reason
    if kept != memo:
        _write_quietly(layout.finished_memo, kept)
    wall_s = {name: record[2] if len(record) == 3 else None for name, record in kept.items()}
    return Finished(damaged, wall_s)


def wall_seconds(folder: str | os.PathLike) -> float | None:
    """The wall time a finished folder's provenance.json records, or None."""
    try:
        with open(os.path.join(folder, "provenance.json"), "rb") as handle:
            return float(json.load(handle)["wall_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # an old folder: no measurement


def _read(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            memo = json.load(handle)
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def _write_quietly(path: Path, value: Any) -> None:
    temporary = path.with_name(f"{path.name}.{os.getpid()}")
    try:
        with open(temporary, "w") as handle:
            json.dump(value, handle, separators=(",", ":"))
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)
