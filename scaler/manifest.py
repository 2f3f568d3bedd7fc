"""A finished step's manifest: every file of its folder with its size and content hash.

The job writes `manifest.json` last, just before the folder is renamed into place, so a step
folder is trusted only as far as its manifest vouches for it: a file deleted, truncated or
overwritten after the step finished no longer matches.

Two checks. The quick one (`check_step`) costs a read of the manifest and a stat per file: a
file whose size differs is damaged, and one whose mtime differs is hashed and compared, so a
folder copied with new mtimes passes (hashed on every check, never rewritten: checking writes
nothing). It cannot see a file overwritten with the same size whose mtime was set back; the full
check (`full=True`, what `scaler collect --rebuild` runs) hashes every file. `repair_damaged`
moves each finished folder that fails its check aside to `.damaged-<name>/`, with the reason in
`damaged.txt`, so the step is no longer done and the next `scaler run` runs it again.

This module is imported in job processes: keep it free of heavy imports.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaler.layout import Layout, write_json

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
CHUNK_BYTES = 1 << 20
RECORDS = ("config.json", "provenance.json", "result.json")
"""The files every step's job writes: a manifest that does not list them is not a step's."""
DAMAGED_NOTE = "damaged.txt"


def write_manifest(folder: Path) -> None:
    """Record every file under `folder` (but the manifest itself) with its size, mtime and
    SHA-256."""
    files: dict[str, Any] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if relative == MANIFEST:
            continue
        stat = path.stat()
        files[relative] = {
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "sha256": file_hash(path),
        }
    write_json(folder / MANIFEST, {"version": MANIFEST_VERSION, "files": files})


def file_hash(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def check_step(folder: Path, *, full: bool = False) -> str | None:
    """Why the finished step folder `folder` does not match its manifest, or None when it does.

    Quick by default (sizes, and a hash only where an mtime moved); `full` hashes every file."""
    return check_step_digest(folder, full=full)[0]


def check_step_digest(folder: Path, *, full: bool = False) -> tuple[str | None, str]:
    """`check_step`'s reason, and the SHA-256 of the manifest file itself: what the store keeps
    to tell a folder it loaded from a new one of the same name."""
    # Plain strings and os calls: pathlib's object per file was most of the quick check's time.
    where = os.fspath(folder)
    try:
        with open(os.path.join(where, MANIFEST), "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return f"{MANIFEST} is missing", ""
    except OSError as error:
        return f"{MANIFEST} cannot be read ({error.strerror})", ""
    files = _listed_files(raw)
    if isinstance(files, str):
        return f"{MANIFEST} is unreadable ({files})", ""
    for relative, entry in files.items():
        reason = _check_file(os.path.join(where, relative), relative, entry, full)
        if reason is not None:
            return reason, ""
    return None, hashlib.sha256(raw).hexdigest()


def _listed_files(raw: bytes) -> dict[str, dict[str, Any]] | str:
    """The manifest's files, or what is wrong with it."""
    try:
        manifest = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        return f"not JSON: {error}"
    if not isinstance(manifest, dict) or manifest.get("version") != MANIFEST_VERSION:
        return f"expected an object with version {MANIFEST_VERSION}"
    files = manifest.get("files")
    if not isinstance(files, dict):
        return "no files object"
    for relative, entry in files.items():
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("size"), int)
            and isinstance(entry.get("mtime_ns"), int)
            and isinstance(entry.get("sha256"), str)
        ):
            return f"the entry of {relative} is not size, mtime_ns and sha256"
        if relative.startswith("/") or ".." in relative.split("/"):
            return f"{relative} is outside the folder"
    missing = [name for name in RECORDS if name not in files]
    if missing:
        return f"{', '.join(missing)} not listed"
    return files


def _check_file(path: str, relative: str, entry: dict[str, Any], full: bool) -> str | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return f"{relative} is missing"
    except OSError as error:
        return f"{relative} cannot be read ({error.strerror})"
    if stat.st_size != entry["size"]:
        return f"{relative} is {stat.st_size} bytes, its manifest says {entry['size']}"
    if full or stat.st_mtime_ns != entry["mtime_ns"]:
        try:
            digest = file_hash(path)
        except OSError as error:
            return f"{relative} cannot be read ({error.strerror})"
        if digest != entry["sha256"]:
            return f"{relative} differs from its manifest (SHA-256)"
    return None


@dataclass(frozen=True)
class StepChecks:
    """Every finished step folder of an experiment, checked: name -> (folder, ...)."""

    verified: dict[str, tuple[Path, str]]
    """Those that match their manifest, with the manifest's SHA-256."""
    damaged: dict[str, tuple[Path, str]]
    """Those that do not, with the reason."""


def check_steps(layout: Layout, *, full: bool = False) -> StepChecks:
    """Check every finished step folder (`check_step`); moves nothing."""
    verified, damaged = {}, {}
    for folder in sorted(layout.finished_dirs(), key=lambda path: path.name):
        reason, digest = check_step_digest(folder, full=full)
        if reason is None:
            verified[folder.name] = (folder, digest)
        else:
            damaged[folder.name] = (folder, reason)
    return StepChecks(verified, damaged)


def damaged_steps(layout: Layout, *, full: bool = False) -> dict[str, str]:
    """Each finished step folder that fails its check -> why. Moves nothing."""
    return {name: reason for name, (_, reason) in check_steps(layout, full=full).damaged.items()}


def set_aside(layout: Layout, folder: Path, reason: str) -> Path:
    """Move the damaged step folder `folder` to `.damaged-<name>/` beside it (replacing an older
    one), with `damaged.txt` saying why and when; return where it went."""
    aside = layout.damaged_dir(folder.parent.name, folder.name)
    if aside.exists():
        shutil.rmtree(aside)
    os.rename(folder, aside)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (aside / DAMAGED_NOTE).write_text(f"{reason}\nset aside at {stamp} (UTC)\n")
    return aside


def repair_damaged(layout: Layout, *, full: bool = False) -> list[tuple[str, str]]:
    """Check every finished step folder and move the damaged ones aside (`set_aside`), so the
    next run runs them again; return (name, reason) of each, in name order."""
    return set_aside_damaged(layout, check_steps(layout, full=full))


def set_aside_damaged(layout: Layout, checks: StepChecks) -> list[tuple[str, str]]:
    for folder, reason in checks.damaged.values():
        set_aside(layout, folder, reason)
    return [(name, reason) for name, (_, reason) in checks.damaged.items()]
