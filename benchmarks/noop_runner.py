"""A stage that does nothing: what is left when it runs is the orchestrator's own overhead."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    index: int = 0


def run(config: Config, inputs: dict[str, Path], out_dir: Path) -> dict:
    return {"index": config.index}


def bare(index: int) -> dict:
    return {"index": index}
