"""The stages a plan is made of, and where their runners live.

A runner module exposes `Config` (a frozen pydantic model), `run(config, inputs, out_dir)` and
its contract: `INPUTS` (the input roles it reads, runners.stages.Input) and `OUTPUTS` (the files
it writes, runners.files), which scaler.plan checks every step against. Importing it must stay
light: heavy libraries are imported inside `run`. `version` is part of
every step id: bump it when a runner's output changes for the same config, and every step of that
stage (and everything downstream) runs again.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol, TypeVar


@dataclass(frozen=True)
class Stage:
    name: str
    module: str
    version: int
    ranked: bool = False
    """Its runner runs as torch.distributed ranks (the trainers): by default one process per
    GPU. Other stages run one process per step (vLLM spreads over a node's GPUs itself)."""

    def processes_per_node(self, resources: Any) -> int:
        """The processes one step of this stage runs on each node (`resources`: Resources)."""
        if resources.processes:
            return resources.processes
        return max(resources.gpus, 1) if self.ranked else 1

    def world_size(self, resources: Any) -> int:
        return resources.nodes * self.processes_per_node(resources)

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)

    @property
    def inputs(self) -> tuple:
        """The input roles the runner declares (runners.stages.Input)."""
        return tuple(self.load().INPUTS)

    @property
    def outputs(self) -> tuple[str, ...]:
        """The files the runner declares it writes (runners.files)."""
        return tuple(self.load().OUTPUTS)


STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage("generate", "runners.stages.generate", 1),
        Stage("prepare", "runners.stages.prepare", 1),
        Stage("source", "runners.stages.source", 1),
        Stage("pretrain", "runners.stages.pretrain", 1, ranked=True),
        Stage("verify", "runners.stages.verify", 2),
        Stage("train", "runners.stages.train", 2, ranked=True),
        Stage("sample", "runners.stages.sample", 1),
        Stage("rollout", "runners.stages.rollout", 1),
        Stage("build", "runners.stages.build", 1),
        Stage("evaluate", "runners.stages.evaluate", 2),
        Stage("merge", "runners.stages.merge", 1),
    )
}


class _OfAStage(Protocol):
    @property
    def stage(self) -> str: ...


T = TypeVar("T", bound=_OfAStage)


def grouped_by_stage(steps: Iterable[T]) -> dict[str, list[T]]:
    """Steps (anything with a `stage`) grouped by stage, stages in pipeline order (STAGES)."""
    grouped: dict[str, list[T]] = {stage: [] for stage in STAGES}
    for step in steps:
        grouped[step.stage].append(step)
    return {stage: members for stage, members in grouped.items() if members}
