"""Provenance known to the submitting process: code version and package versions.

Computed once per run and handed to every job, so a step records what produced it without each
job calling git.
"""

from __future__ import annotations

import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "scaler",
    "torch",
    "transformers",
    "trl",
    "tokenizers",
    "submitit",
    "duckdb",
    "pydantic",
)
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@cache
def run_provenance() -> dict[str, Any]:
    commit, dirty = _git_state()
    return {"git_commit": commit, "git_dirty": dirty, "versions": package_versions()}


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _git_state() -> tuple[str | None, bool | None]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, dirty
