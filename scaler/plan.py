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

from runners import evaluate, generate, prepare, train, verify
from runners import source as user_source
from scaler.fingerprint import content_hash, output_fields
from scaler.spec import DemoWorld, Resources, Spec, UserSource, source_name
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

    config_hash: str = field(default="", repr=False)
    """The hash of the config's output fields; computed when not given (expand shares it)."""

    def __post_init__(self) -> None:
        if not self.config_hash:
            object.__setattr__(self, "config_hash", config_hash(self.config))
        identity = {
            "stage": self.stage,
            "version": STAGES[self.stage].version,
            "config": self.config_hash,
            "inputs": {role: step.id for role, step in self.inputs},
        }
        object.__setattr__(self, "id", content_hash(identity))

    @property
    def name(self) -> str:
        return f"{self.stage}-{self.id}"


def config_hash(config: BaseModel) -> str:
    return content_hash(output_fields(config))


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
        """Steps grouped by stage, stages in pipeline order (STAGES)."""
        grouped: dict[str, list[Step]] = {stage: [] for stage in STAGES}
        for step in self.steps:
            grouped[step.stage].append(step)
        return {stage: steps for stage, steps in grouped.items() if steps}


def model_label_of(spec: Spec) -> str:
    """How the learner is named in results: its hub id or path, or the tiny model's shape."""
    model = spec.model
    return model.name_or_path or f"tiny-{model.layers}x{model.hidden}"


def expand(spec: Spec) -> Plan:
    """The grid sources x algorithms x sizes x seeds x eval sets as a deduplicated DAG."""
    unique: dict[str, Step] = {}
    cells: dict[str, int] = {}

    def add(step: Step, serves: int) -> Step:
        step = unique.setdefault(step.id, step)
        cells[step.id] = cells.get(step.id, 0) + serves
        return step

    world_name = spec.world.name
    per_source = len(spec.algorithms) * len(spec.sizes) * len(spec.seeds) * len(spec.eval_sets)
    data = add(world_step(spec), per_source * len(spec.sources))
    train_settings = spec.stages.train.model_dump()
    eval_settings = spec.stages.evaluate.model_dump()
    # One config object per eval set, hashed once: it is the same in every cell.
    eval_configs = {
        name: evaluate.Config(**eval_settings, split=name, world=world_name, prompt=spec.prompt)
        for name in spec.eval_sets
    }
    eval_hashes = {name: config_hash(config) for name, config in eval_configs.items()}
    model_label = model_label_of(spec)

    for source in spec.sources:
        train_data = (("data", data),)
        if isinstance(source, UserSource):
            read = add(source_step(spec, source), per_source)
            checked = add(verify_step(spec, source, read), per_source)
            train_data += (("train_data", checked),)
        for algorithm in spec.algorithms:
            for size in spec.sizes:
                for seed in spec.seeds:
                    base = {
                        "world": world_name,
                        "model": model_label,
                        "source": source_name(source),
                        "algorithm": algorithm,
                        "size": size,
                        "seed": seed,
                    }
                    config = train.Config(
                        **train_settings,
                        model=spec.model,
                        size=size,
                        seed=seed,
                        world=world_name,
                        prompt=spec.prompt,
                    )
                    trained = add(Step("train", config, train_data, base), len(eval_configs))
                    for eval_set, eval_config in eval_configs.items():
                        inputs = (("model", trained), ("data", data))
                        coords = base | {"eval_set": eval_set}
                        add(Step("evaluate", eval_config, inputs, coords, eval_hashes[eval_set]), 1)

    resources = {stage: spec.resources_for(stage) for stage in STAGES}
    return Plan(spec.experiment, tuple(unique.values()), cells, resources)


def world_step(spec: Spec) -> Step:
    """The step writing the world's splits: generated (demo) or read from files (real)."""
    world = spec.world
    coords = {"world": world.name}
    if isinstance(world, DemoWorld):
        return Step(
            "generate", generate.Config(**world.model_dump(exclude={"name"})), coords=coords
        )
    paths = {"train": world.train, **world.eval_files}
    config = prepare.Config(
        **world.model_dump(exclude={"name"}),
        kind=world.name,
        checksums={split: spec.checksum(path) for split, path in paths.items()},
        few_shot=spec.prompt.few_shot,
    )
    return Step("prepare", config, coords=coords)


def source_step(spec: Spec, source: UserSource) -> Step:
    """A user's data file read and checked for bad records."""
    config = user_source.Config(
        **source.model_dump(include=set(user_source.Settings.model_fields)),
        path=source.path,
        checksum=spec.checksum(source.path),
        seed=spec.world.seed,
    )
    return Step("source", config, coords={"world": spec.world.name, "source": source.name})


def verify_step(spec: Spec, source: UserSource, read: Step) -> Step:
    """The source's solutions judged against their gold answers; the kept ones train."""
    config = verify.Config(
        **spec.stages.verify.model_dump(), keep=source.keep, world=spec.world.name
    )
    return Step("verify", config, (("candidates", read),), read.coords)
