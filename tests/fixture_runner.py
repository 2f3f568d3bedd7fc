"""A runner for tests of the job harness: returns what it is told, or raises."""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    value: float = 1.0
    fail: bool = False
    diverge: bool = False


def run(config: Config, inputs: dict[str, Path], out_dir: Path) -> dict:
    (out_dir / "output.txt").write_text("partial")
    if config.fail:
        raise RuntimeError("this step was told to fail")
    value = math.nan if config.diverge else config.value
    return {"value": value, "nested": {"values": [value, 1.0]}}
