"""What a step costs, as numbers: its estimated FLOPs and the GPUs it holds, and the rates that
turn FLOPs into GPU-hours. Light (no spec models, no runners): `scaler status` prices the finished
steps of a step index (scaler.step_index) with it; scaler.cost estimates the FLOPs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

MODEL_STAGES = frozenset({"pretrain", "train", "sample", "rollout", "evaluate"})
"""The stages that run a model, and so cost FLOPs; the others run on CPUs and are not priced."""


class Rates(Protocol):
    """What turns FLOPs into GPU-hours: scaler.cost_figures.Figures, or a step index's rates."""

    @property
    def gpu_flops(self) -> float: ...
    @property
    def utilisation(self) -> float: ...


@dataclass(frozen=True)
class SpecRates:
    """The spec's `cost.gpu_flops` and `cost.utilisation`, as a step index keeps them."""

    gpu_flops: float
    utilisation: float


@dataclass(frozen=True)
class StepCost:
    flops: float | None
    """None: no model runs in the step, or a figure is missing (`missing`)."""
    missing: str | None
    """The spec field whose figure the step's FLOPs need."""
    gpus: int
    """GPUs the step holds in all (per node x nodes); 0: it runs on CPUs."""

    def gpu_hours(self, rates: Rates) -> float | None:
        if self.flops is None or not self.gpus:
            return None
        return self.flops / (rates.gpu_flops * rates.utilisation) / 3600

    def wall_hours(self, rates: Rates) -> float | None:
        """How long the step runs on its GPUs."""
        hours = self.gpu_hours(rates)
        return None if hours is None else hours / self.gpus
