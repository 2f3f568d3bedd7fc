"""The step index: what `scaler status` reads instead of expanding the saved spec.

A run saves the resolved spec as `spec.json` and, beside it, `steps.json`: every step of its
plan (stage, id, the steps it reads) in plan order, with its estimated FLOPs (scaler.cost), and
what turns those into GPU-hours: each stage's GPUs and nodes, the spec's gpu_flops and
utilisation. `scaler status` reads it without loading the spec's models (so without validating
the spec again: it was, when it was saved).
Expanding a spec and pricing its steps grows with the plan (1-2 s each for 100,000 steps);
reading the index takes tens of milliseconds. The index names the spec it was written for
(the content hash of spec.json): one that does not match, or is missing or unreadable (an
experiment run before it existed), is ignored and the spec is expanded as before.

Written to a temporary name and renamed into place, so a reader sees the old index or the
new one, never a part. This module is imported by `scaler status`: keep it light.
"""

from __future__ import annotations

import hashlib
import json
import os
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, overload

from scaler.bulk import collector_paused
from scaler.fingerprint import content_hash
from scaler.layout import Layout
from scaler.stages import grouped_by_stage
from scaler.step_cost import SpecRates, StepCost

if TYPE_CHECKING:
    from scaler.plan import Plan
    from scaler.spec.schema import Spec

INDEX_VERSION = 2


class IndexedStep:
    """A step as the index names it: enough for its folder, its jobs and its inputs' names.
    Its inputs are looked up when asked (only a cancelled step's are), through a weak reference
    to the index: a strong one would make each step a cycle, and the cycle collector's pass over
    100,000 of them took longer than reading them."""

    __slots__ = ("stage", "id", "name", "_index", "_at")

    def __init__(self, stage: str, step_id: str, index: weakref.ref[StepIndex], at: int) -> None:
        self.stage, self.id, self._index, self._at = stage, step_id, index, at
        self.name = f"{stage}-{step_id}"

    @property
    def inputs(self) -> tuple[tuple[str, IndexedStep], ...]:
        index = self._index()
        if index is None:
            raise ReferenceError(f"{self.name}: its step index is gone")
        return tuple((role, index.steps[at]) for role, at in index.inputs[self._at])


@dataclass(frozen=True)
class StageResources:
    """What the index keeps of a stage's resources: what its GPU-hours are counted with."""

    gpus: int
    nodes: int


class ResourcesView(Protocol):
    """A stage's GPUs and nodes: the spec's Resources, or StageResources."""

    @property
    def gpus(self) -> int: ...
    @property
    def nodes(self) -> int: ...


class StepIndex:
    """A plan as the index holds it: its steps in plan order and their estimated costs."""

    def __init__(self, index: dict[str, Any]) -> None:
        self.experiment: str = index["experiment"]
        self.resources = {
            stage: StageResources(gpus, nodes)
            for stage, (gpus, nodes) in index["resources"].items()
        }
        self.rates = SpecRates(**index["rates"])
        self.inputs: list[list[tuple[str, int]]] = index["inputs"]
        self.stages: list[str] = index["stages"]
        self.ids: list[str] = index["ids"]
        self.names = [
            f"{stage}-{step_id}" for stage, step_id in zip(self.stages, self.ids, strict=True)
        ]
        self.steps = IndexedSteps(self)
        self.costs = IndexedCosts(self, index["flops"], index["missing"])
        """Step id -> its estimated cost, as scaler.cost priced it when the index was written."""

    def by_stage(self) -> dict[str, list[IndexedStep]]:
        return grouped_by_stage(self.steps)


class IndexedSteps(Sequence[IndexedStep]):
    """The index's steps, each made when first asked: `scaler status` counts states over the
    names, and needs step objects only for the few steps it says more of."""

    def __init__(self, index: StepIndex) -> None:
        self._index = weakref.ref(index)
        self._made: list[IndexedStep | None] = [None] * len(index.ids)

    def __len__(self) -> int:
        return len(self._made)

    @overload
    def __getitem__(self, at: int) -> IndexedStep: ...
    @overload
    def __getitem__(self, at: slice) -> list[IndexedStep]: ...
    def __getitem__(self, at: int | slice) -> IndexedStep | list[IndexedStep]:
        if isinstance(at, slice):
            return [self[i] for i in range(len(self))[at]]
        step = self._made[at]
        if step is None:
            index = self._index()
            if index is None:
                raise ReferenceError("the step index is gone")
            step = IndexedStep(index.stages[at], index.ids[at], self._index, at)
            self._made[at] = step
        return step


class IndexedCosts(Mapping[str, "StepCost"]):
    """Step id -> its StepCost, made when asked (`scaler status` asks for the finished steps')."""

    def __init__(self, index: StepIndex, flops: list, missing: list) -> None:
        self.flops, self.missing = flops, missing
        self.stages = index.stages
        self.position = {step_id: at for at, step_id in enumerate(index.ids)}
        self.gpus = {stage: r.gpus * r.nodes for stage, r in index.resources.items()}

    def __getitem__(self, step_id: str) -> StepCost:
        at = self.position[step_id]
        return StepCost(self.flops[at], self.missing[at], self.gpus[self.stages[at]])

    def __iter__(self) -> Iterator[str]:
        return iter(self.position)

    def __len__(self) -> int:
        return len(self.position)


class StepRef(Protocol):
    """What names a step, its folder and its inputs: a plan's Step, or an IndexedStep."""

    @property
    def stage(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def inputs(self) -> Sequence[tuple[str, StepRef]]: ...


class PlanView(Protocol):
    """What `scaler status` reads of a plan: a Plan, or a StepIndex."""

    @property
    def experiment(self) -> str: ...
    @property
    def steps(self) -> Sequence[StepRef]: ...
    @property
    def names(self) -> Sequence[str]:
        """Each step's name, in the order of `steps`."""
        ...

    @property
    def stages(self) -> Sequence[str]:
        """Each step's stage, in the order of `steps`."""
        ...

    @property
    def resources(self) -> Mapping[str, ResourcesView]: ...
    def by_stage(self) -> Mapping[str, Sequence[StepRef]]: ...


def save_spec(layout: Layout, spec: Spec, plan: Plan) -> None:
    """Write the experiment's `spec.json`, then the index of `plan` that matches it."""
    with collector_paused():
        _save_spec(layout, spec, plan)


def _save_spec(layout: Layout, spec: Spec, plan: Plan) -> None:
    from scaler.cost_view import price

    spec_json = spec.model_dump(mode="json")
    layout.write_spec(spec_json)
    spec_hash = content_hash(spec_json)
    ids = [step.id for step in plan.steps]
    # The plan's own hash too: the same spec expands to other steps when a data file changed.
    plan_hash = hashlib.sha256(" ".join(ids).encode()).hexdigest()
    if _indexed(layout) == (spec_hash, plan_hash):
        return  # a run again of the same plan: its index stands
    cost = price(spec, plan)
    position = {step.id: i for i, step in enumerate(plan.steps)}
    index = {
        "version": INDEX_VERSION,
        "spec": spec_hash,
        "plan": plan_hash,
        "experiment": plan.experiment,
        "stages": [step.stage for step in plan.steps],
        "ids": ids,
        "inputs": [[[role, position[s.id]] for role, s in step.inputs] for step in plan.steps],
        "flops": [cost.steps[step.id].flops for step in plan.steps],
        "missing": [cost.steps[step.id].missing for step in plan.steps],
        "resources": {stage: [r.gpus, r.nodes] for stage, r in plan.resources.items()},
        "rates": {"gpu_flops": spec.cost.gpu_flops, "utilisation": spec.cost.utilisation},
    }
    temporary = layout.step_index.with_name(f".{layout.step_index.name}.{os.getpid()}")
    with open(temporary, "w") as handle:
        json.dump(index, handle, separators=(",", ":"), allow_nan=False)
    os.replace(temporary, layout.step_index)


def _indexed(layout: Layout) -> tuple[str, str] | None:
    try:
        with open(layout.step_index, "rb") as handle:
            index = json.load(handle)
        return (index["spec"], index["plan"]) if index["version"] == INDEX_VERSION else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_index(layout: Layout, spec_json: dict[str, Any]) -> StepIndex | None:
    """The index written for `spec_json` (the saved spec, as read), or None. Best read with the
    cycle collector paused (scaler.bulk), as `scaler status` does."""
    try:
        with open(layout.step_index, "rb") as handle:
            index = json.load(handle)
        if index.get("version") != INDEX_VERSION or index["spec"] != content_hash(spec_json):
            return None
        count = len(index["ids"])
        columns = ("stages", "inputs", "flops", "missing")
        if any(len(index[name]) != count for name in columns) or not all(
            0 <= at < here for here, inputs in enumerate(index["inputs"]) for _, at in inputs
        ):
            return None
        return StepIndex(index)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # none yet (an older run), or not whole: the spec is expanded instead
