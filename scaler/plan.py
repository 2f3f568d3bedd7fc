"""Expansion: a Spec becomes a Plan, a DAG of content-addressed Steps. Pure: no I/O.

A Step's id hashes its stage, the stage's version, the config fields that change its output and
the ids of its inputs; never resources, descriptions or paths. Equal work gets an equal id, so a
step that several grid cells need appears once, and a re-run finds it on disk.

Data sizes are prefixes of one seeded order of the training problems (the generate step writes
them in that order), so one generate step serves every size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from runners import evaluate, generate, train
from scaler.fingerprint import content_hash, output_fields
from scaler.spec import Resources, Spec
from scaler.stages import STAGES


@dataclass(frozen=True, eq=False)
class Step:
    """One unit of work: a stage run on a config and the outputs of other steps."""

    stage: str
    config: BaseModel
    inputs: tuple[tuple[str, Step], ...] = ()
    coords: dict[str, Any] = field(default_factory=dict)
    """The grid coordinates this step belongs to (source, size, ...); not part of the id."""
    id: str = field(init=False)

    def __post_init__(self) -> None:
        identity = {
            "stage": self.stage,
            "version": STAGES[self.stage].version,
            "config": output_fields(self.config),
            "inputs": {role: step.id for role, step in self.inputs},
        }
        object.__setattr__(self, "id", content_hash(identity))

    @property
    def name(self) -> str:
        return f"{self.stage}-{self.id}"


@dataclass(frozen=True)
class Plan:
    experiment: str
    steps: tuple[Step, ...]
    """Unique steps, every step after its inputs."""
    cells: dict[str, int]
    """Step id -> how many grid cells need it."""
    resources: dict[str, Resources]
    """Stage -> what each of its steps asks for."""

    def by_stage(self) -> dict[str, list[Step]]:
        grouped: dict[str, list[Step]] = {}
        for step in self.steps:
            grouped.setdefault(step.stage, []).append(step)
        return grouped


def model_label_of(spec: Spec) -> str:
    """How the learner is named in results: its hub id or path, or the tiny model's shape."""
    model = spec.model
    return model.name_or_path or f"tiny-{model.layers}x{model.hidden}"


def expand(spec: Spec) -> Plan:
    """The grid sources x algorithms x sizes x seeds x eval sets as a deduplicated DAG."""
    unique: dict[str, Step] = {}
    cells: dict[str, int] = {}

    def add(step: Step) -> Step:
        step = unique.setdefault(step.id, step)
        cells[step.id] = cells.get(step.id, 0) + 1
        return step

    world = spec.world.model_dump(exclude={"name"})
    train_settings = spec.stages.train.model_dump()
    eval_settings = spec.stages.evaluate.model_dump()
    data_config = generate.Config(**world)
    eval_configs = {name: evaluate.Config(**eval_settings, split=name) for name in spec.eval_sets}
    model_label = model_label_of(spec)

    for source in spec.sources:
        for algorithm in spec.algorithms:
            for size in spec.sizes:
                for seed in spec.seeds:
                    base = {
                        "world": spec.world.name,
                        "model": model_label,
                        "source": source,
                        "algorithm": algorithm,
                        "size": size,
                        "seed": seed,
                    }
                    for eval_set, eval_config in eval_configs.items():
                        data = add(Step("generate", data_config, coords={"world": spec.world.name}))
                        config = train.Config(
                            **train_settings, model=spec.model, size=size, seed=seed
                        )
                        trained = add(Step("train", config, (("data", data),), base))
                        add(
                            Step(
                                "evaluate",
                                eval_config,
                                (("model", trained), ("data", data)),
                                base | {"eval_set": eval_set},
                            )
                        )

    resources = {stage: spec.resources_for(stage) for stage in STAGES}
    return Plan(spec.experiment, tuple(unique.values()), cells, resources)
