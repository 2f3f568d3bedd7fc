"""A finished step's manifest: every file of its folder with its size and content hash.

The job writes `manifest.json` last, just before the folder is renamed into place, so a step
folder is trusted only as far as its manifest vouches for it: a file deleted, truncated or
overwritten after the step finished no longer matches.

This module is imported in job processes: keep it free of heavy imports.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from scaler.layout import write_json

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
CHUNK_BYTES = 1 << 20


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


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()

