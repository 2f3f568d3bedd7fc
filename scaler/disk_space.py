"""Telling a full disk apart from other failures, and saying so in one line.

A step that runs out of space fails wherever its runner happened to write (safetensors, pyarrow,
json), each wording it its own way; what a person needs is the mount point and that it is full.
Imported in job processes and by the CLI: no heavy imports.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

NO_SPACE = ("No space left on device", "[Errno 28]")
LOW_SPACE_BYTES = 1 << 20


def disk_full(path: Path, error_text: str = "") -> str | None:
    """`no space left on <mount point> (...)` when `error_text` says so or when the file system
    holding `path` has (almost) nothing left; else None."""
    while not path.exists() and path != path.parent:
        path = path.parent
    free = shutil.disk_usage(path).free
    if free >= LOW_SPACE_BYTES and not says_no_space(error_text):
        return None
    mount = path.resolve()
    while not os.path.ismount(mount):
        mount = mount.parent
    return f"no space left on {mount} ({free / 2**20:.1f} MiB free): free some and run again"


def says_no_space(error_text: str) -> bool:
    return any(sign in error_text for sign in NO_SPACE)
