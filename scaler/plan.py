"""Expansion: a Spec becomes a Plan, a DAG of content-addressed Steps. Pure: no I/O.

A Step's id hashes its stage, the stage's version, the config fields that change its output and
the ids of its inputs; never resources, descriptions or paths. Equal work gets an equal id, so a
step that several grid cells need appears once, and a re-run finds it on disk.

Data sizes are prefixes of one seeded order of the training problems (the generate step writes
them in that order), so one generate step serves every size.

A stage with `shard_size` (sample, with the verify of its samples; rollout; evaluate) becomes one
step per shard, a fixed range of its problems (runners.shards), and a merge step that joins
them into what the one step would have written (runners.stages.merge): later stages read the
merge, so the DAG past it is the unsharded one. Without shard_size a stage is one step, with
the id it always had.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any

from pydantic import BaseModel

from runners.judging.conventions import verifier_identity
from runners.model import ModelConfig
from runners.shards import Shard, shards_of
from runners.stages import build as build_stage
from runners.stages import (
    check_inputs,
    evaluate,
    generate,
    merge,
    prepare,
    pretrain,
    rollout,
    sample,
    train,
    verify,
)
from runners.stages import source as user_source
from runners.worlds.demo import pretraining_knobs
from scaler.bulk import collector_paused
from scaler.fingerprint import HASH_LENGTH, IntVariants, content_hash, output_fields
from scaler.spec.schema import DemoWorld, Resources, SamplerSource, Spec, UserSource, source_name
from scaler.stages import STAGES, grouped_by_stage


@dataclass(frozen=True, eq=False, init=False)
class Step:
    """One unit of work: a stage run on a config and the outputs of other steps."""

    stage: str
    config: BaseModel
    inputs: tuple[tuple[str, Step], ...]
    coords: dict[str, Any]
    """The grid coordinates this step belongs to (source, size, ...); not part of the id."""
    id: str
    config_hash: str = field(repr=False)
    """The hash of the config's output fields; computed when not given (expand shares it)."""
    name: str = field(repr=False)
    """`<stage>-<id>`: its folder's name (asked for often enough to be made once)."""

    def __init__(
        self,
        stage: str,
        config: BaseModel,
        inputs: tuple[tuple[str, Step], ...] = (),
        coords: dict[str, Any] | None = None,
        config_hash: str = "",
    ) -> None:
        # One dict update instead of a frozen dataclass's setattr per field: a plan makes a
        # Step for every cell and stage.
        hashed = config_hash or _config_hash(config)
        identity = identity_json(stage, hashed, inputs).encode()
        self.__dict__.update(
            stage=stage,
            config=config,
            inputs=inputs,
            coords={} if coords is None else coords,
            id=(step_id := hashlib.sha256(identity).hexdigest()[:HASH_LENGTH]),
            config_hash=hashed,
            name=f"{stage}-{step_id}",
        )


def identity_json(stage: str, config: str, inputs: tuple) -> str:
    """The canonical JSON of a step's identity (stage, its version, config hash, input ids),
    what `canonical_json` writes for it, built directly: it is written for every step of a plan."""
    wired = {role: step.id for role, step in inputs}
    roles = ",".join([f'{_quoted(role)}:"{wired[role]}"' for role in sorted(wired)])
    return f'{{"config":"{config}","inputs":{{{roles}}}{_identity_end(stage)}'


@cache
def _quoted(name: str) -> str:
    return json.dumps(name)


@cache
def _identity_end(stage: str) -> str:
    return f',"stage":{_quoted(stage)},"version":{STAGES[stage].version}}}'


def config_hash(config: BaseModel) -> str:
    return content_hash(output_fields(config))


_config_hash = config_hash  # Step's own argument of that name hides it there


@dataclass(frozen=True)
class Plan:
    experiment: str
    steps: tuple[Step, ...]
    """Unique steps, every step after its inputs."""
    resources: dict[str, Resources]
    """Stage -> what each of its steps asks for."""

    @cached_property
    def cells(self) -> dict[str, int]:
        """Step id -> how many grid cells need it; counted when first asked (`scaler plan`
        shows it, `scaler status` and a run do not need it)."""
        return cells_served(self.steps)

    def by_stage(self) -> dict[str, list[Step]]:
        """Steps grouped by stage, stages in pipeline order (STAGES)."""
        return grouped_by_stage(self.steps)

    @cached_property
    def names(self) -> list[str]:
        """Each step's name, in plan order (what `scaler status` counts states over)."""
        return [step.name for step in self.steps]

    @cached_property
    def stages(self) -> list[str]:
        """Each step's stage, in plan order."""
        return [step.stage for step in self.steps]


def model_label_of(spec: Spec) -> str:
    """How the learner is named in results: its hub id or path, or the tiny model's shape."""
    return spec.model.name_or_path or tiny_label(spec.model)


def tiny_label(model: ModelConfig) -> str:
    """layers x hidden, and the MLP width when it is not twice the hidden width."""
    mlp = "" if model.intermediate == 2 * model.hidden else f"-mlp{model.intermediate}"
    return f"tiny-{model.layers}x{model.hidden}{mlp}"


SELF_SAMPLING = ("rft", "dpo", "per_step_dpo")
"""Algorithms that learn from the SFT model's own samples."""


def expand(spec: Spec) -> Plan:
    """The grid sources x algorithms x sizes x seeds x eval sets as a deduplicated DAG."""
    with collector_paused():
        return _expand(spec)


def _expand(spec: Spec) -> Plan:
    grid = _Grid(spec)
    data = grid.add(world_step(spec))
    largest = max(spec.sizes)
    samplers = {
        source.name: sampler_steps(spec, grid, source, data, largest)
        for source in spec.sources
        if isinstance(source, SamplerSource)
    }
    for source in spec.sources:
        source_data: Step | None
        if isinstance(source, UserSource):
            read = grid.add(source_step(spec, source))
            source_data = grid.add(verify_step(spec, source.keep, read))
        else:
            source_data = samplers.get(source_name(source))
        for size in spec.sizes:
            for seed in spec.seeds_at(size):
                coords = {
                    "world": spec.world.name,
                    "model": grid.model_label,
                    "source": source_name(source),
                    "size": size,
                    "seed": seed,
                }
                for algorithm, trained in grid.cell(data, source_data, samplers, coords).items():
                    for eval_set in spec.eval_sets:
                        grid.evaluate(trained, data, eval_set, coords | {"algorithm": algorithm})
    return grid.plan()


class _Grid:
    """The steps of a plan as they are added, each once, and the configs every cell shares."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.steps: dict[str, Step] = {}
        self.model_label = model_label_of(spec)
        world, prompt = spec.world.name, spec.prompt
        self.context = {"world": world, "prompt": prompt}
        # What a judging stage's verdicts depend on besides the world: None in the demo world.
        self.judged = {"world": world, "prompt": prompt, "verifier": verifier_of(spec)}
        # The configs of each eval set (one, or one per shard), hashed once: they are the same
        # in every cell.
        self.eval_configs = {
            name: [(c, config_hash(c)) for c in eval_configs(spec, name, self.judged)]
            for name in spec.eval_sets
        }
        # Dumped once: every cell's train config starts from the same settings.
        self.sft_settings = spec.stages.train.model_dump()
        self.dpo_settings = spec.stages.dpo_train.model_dump()
        self.bases: dict[ModelConfig, Step] = {}
        # Cell configs differ in their sizes and seeds only: each kind is validated and dumped
        # once (scaler.fingerprint.IntVariants), which is most of what expanding a large grid
        # costs otherwise.
        self.variants: dict[tuple, IntVariants] = {}
        self.wirings: set[tuple] = set()
        self.self_sampling = bool(set(spec.algorithms) & set(SELF_SAMPLING))

    def settings_key(self, settings: dict[str, Any]) -> str:
        # The shared settings by name; another (a sampler's own `train:`) by its content.
        for name, shared in (("sft", self.sft_settings), ("dpo", self.dpo_settings)):
            if settings is shared:
                return name
        return repr(sorted(settings.items()))

    def variant(self, key: tuple, make: Callable[[], BaseModel], **values: int) -> tuple:
        """The config `make()` would give with `values` (integer fields), and its hash."""
        if key not in self.variants:
            self.variants[key] = IntVariants(make(), tuple(values))
        return self.variants[key].make(**values)

    def add(self, step: Step) -> Step:
        # The same few wirings recur in every cell: each is checked once.
        wiring = (step.stage, *[(role, source.stage) for role, source in step.inputs])
        if wiring not in self.wirings:
            check_wiring(step)
            self.wirings.add(wiring)
        return self.steps.setdefault(step.id, step)

    def base_of(self, model: ModelConfig) -> Step:
        """The pretrained base of `model` (one step per model)."""
        if model not in self.bases:
            self.bases[model] = self.add(pretrain_step(self.spec, model))
        return self.bases[model]

    def train(self, model, settings, size, seed, inputs, coords, objective="sft") -> Step:
        if self.spec.pretrain is not None and "init" not in dict(inputs):
            # With `pretrain:`, no model is trained from scratch: each starts from its base.
            inputs = (*inputs, ("init", self.base_of(model)))
        config, hashed = self.variant(
            # The model by identity: hashing a pydantic model costs more than the lookup saves,
            # and every model is the spec's own, alive while the grid is.
            ("train", self.settings_key(settings), id(model), objective),
            lambda: train.Config(
                **settings, model=model, size=size, seed=seed, objective=objective, **self.judged
            ),
            size=size,
            seed=seed,
        )
        return self.add(Step("train", config, inputs, coords, hashed))

    def cell(
        self,
        data: Step,
        source_data: Step | None,
        samplers: dict[str, Step],
        coords: dict[str, Any],
    ) -> dict[str, Step]:
        """The trained model of each algorithm of one (source, size, seed) cell."""
        spec, stages = self.spec, self.spec.stages
        size, seed = coords["size"], coords["seed"]
        positives = source_data or data
        train_data = (("data", data),) + ((("train_data", source_data),) if source_data else ())
        sft = self.train(
            spec.model, self.sft_settings, size, seed, train_data, coords | {"algorithm": "sft"}
        )
        trained = {"sft": sft} if "sft" in spec.algorithms else {}
        if not self.self_sampling:
            return trained

        judged = self.sample_and_verify(
            sample.Config(**stages.sample.model_dump(), problems=size, **self.context),
            (("data", data), ("problems", positives), ("model", sft)),
            "correct",
            coords,
        )
        init = (("init", sft),)

        def build(kind: str, inputs: tuple, **options: Any) -> Step:
            config = build_stage.Config(kind=kind, size=size, world=spec.world.name, **options)
            return self.add(Step("build", config, inputs, coords | {"algorithm": kind}))

        def train_on(algorithm: str, built: Step, settings, objective: str, start=()) -> Step:
            inputs = (("data", data), ("train_data", built), *start)
            labels = coords | {"algorithm": algorithm}
            return self.train(spec.model, settings, size, seed, inputs, labels, objective)

        if "rft" in spec.algorithms:
            rft = stages.build.rft
            pooled = tuple((f"pool_{name}", samplers[name]) for name in rft.pool)
            built = build(
                "rft", (("positives", positives), ("samples", judged), *pooled), dedup=rft.dedup
            )
            start = init if rft.start == "sft" else ()
            trained["rft"] = train_on("rft", built, self.sft_settings, "sft", start)
        if "dpo" in spec.algorithms:
            options = stages.build.dpo.model_dump()
            built = build("dpo", (("samples", judged),), **options)
            trained["dpo"] = train_on("dpo", built, self.dpo_settings, "dpo", init)
        if "per_step_dpo" in spec.algorithms:
            rolled = self.sharded(
                "rollout",
                rollout.Config(**stages.rollout.model_dump(), **self.judged),
                (("model", sft), ("data", data), ("samples", judged)),
                coords,
                size,
            )
            options = stages.build.per_step_dpo.model_dump()
            built = build("per_step_dpo", (("rollouts", rolled),), **options)
            trained["per_step_dpo"] = train_on(
                "per_step_dpo", built, self.dpo_settings, "dpo", init
            )
        return trained

    def evaluate(self, trained: Step, data: Step, eval_set: str, coords: dict[str, Any]) -> None:
        inputs = (("model", trained), ("data", data))
        coords = coords | {"eval_set": eval_set}
        shards = [
            self.add(Step("evaluate", config, inputs, coords, config_hash))
            for config, config_hash in self.eval_configs[eval_set]
        ]
        if self.spec.stages.evaluate.shard_size is not None:
            self.add(merge_step(self.spec, "evaluate", shards, coords, model=trained))

    def sample_and_verify(
        self, config: sample.Config, inputs: tuple, keep: str, coords: dict[str, Any]
    ) -> Step:
        """The verified samples of `config`: a sample step and its verify step or, with
        shard_size, one of each per shard and a merge of each (the verify merge stands for the
        verified samples, and names the sample merge as its `candidates`)."""
        if config.shard_size is None:
            sampled = self.add(Step("sample", config, inputs, coords))
            return self.add(verify_step(self.spec, keep, sampled))
        sampled_shards, judged_shards = [], []
        for shard in shards_of(config.problems, config.shard_size):
            piece = config.model_dump() | {"problems": shard.problems, "shard": shard}
            sampled_shards.append(self.add(Step("sample", sample.Config(**piece), inputs, coords)))
            judged_shards.append(self.add(verify_step(self.spec, keep, sampled_shards[-1], shard)))
        sampled = self.add(merge_step(self.spec, "sample", sampled_shards, coords))
        return self.add(merge_step(self.spec, "verify", judged_shards, coords, candidates=sampled))

    def sharded(
        self, stage: str, config: Any, inputs: tuple, coords: dict[str, Any], problems: int
    ) -> Step:
        """The step of `config` over `problems` problems or, with its shard_size, one step per
        shard and their merge."""
        if config.shard_size is None:
            return self.add(Step(stage, config, inputs, coords))
        pieces = []
        for shard in shards_of(problems, config.shard_size):
            piece = type(config)(**config.model_dump() | {"shard": shard})
            pieces.append(self.add(Step(stage, piece, inputs, coords)))
        return self.add(merge_step(self.spec, stage, pieces, coords))

    def plan(self) -> Plan:
        spec = self.spec
        steps = tuple(self.steps.values())
        resources = {stage: spec.resources_for(stage) for stage in STAGES}
        return Plan(spec.experiment, steps, resources)


def check_wiring(step: Step) -> None:
    """Raise ValueError unless `step` wires the input roles its stage declares (each required one,
    no other) to steps whose stages write the files each role reads."""
    wired = {role: STAGES[source.stage].outputs for role, source in step.inputs}
    check_inputs(step.stage, STAGES[step.stage].inputs, wired)


def cells_served(steps: tuple[Step, ...]) -> dict[str, int]:
    """Step id -> how many grid cells (evaluations) need it."""
    cells = dict.fromkeys((step.id for step in steps), 0)
    for step in steps:
        if step.stage != "evaluate":
            continue
        seen: set[str] = set()
        todo = [step]
        while todo:
            current = todo.pop()
            if current.id not in seen:
                seen.add(current.id)
                cells[current.id] += 1
                todo += [input_step for _, input_step in current.inputs]
    return cells


def sampler_steps(spec: Spec, grid: _Grid, source: SamplerSource, data: Step, largest: int) -> Step:
    """A sampler source: the model (trained first on teacher data when asked), its k samples of
    the first `largest` training problems (shared by every smaller size) and their verdicts."""
    coords = {
        "world": spec.world.name,
        "model": source.model.name_or_path or tiny_label(source.model),
        "source": source.name,
        "size": largest,
        "seed": source.train_seed,
    }
    inputs: tuple[tuple[str, Step], ...] = (("data", data), ("problems", data))
    name_or_path = source.model.name_or_path
    if source.train_size is not None:
        trained = grid.train(
            source.model,
            source.train.model_dump() if source.train else grid.sft_settings,
            source.train_size,
            source.train_seed,
            (("data", data),),
            coords | {"source": "teacher", "algorithm": "sft", "size": source.train_size},
        )
        inputs += (("model", trained),)
        name_or_path = None
    settings = spec.stages.sample.model_dump() | {"samples": spec.sampler_samples(source)}
    config = sample.Config(**settings, problems=largest, name_or_path=name_or_path, **grid.context)
    return grid.sample_and_verify(config, inputs, source.keep, coords)


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
        **world.model_dump(exclude={"name", "verify"}),
        kind=world.name,
        checksums={split: spec.checksum(path) for split, path in paths.items()},
        few_shot=spec.prompt.few_shot,
    )
    return Step("prepare", config, coords=coords)


def pretrain_step(spec: Spec, model: ModelConfig) -> Step:
    """`model`'s base (the learner's, or a sampler's), pretrained on the world's pretraining
    corpus: it depends on the world's knobs and the model, not on the world's seed or sizes, so
    every experiment of that world and model shares it."""
    # scaler.spec.checks refuses `pretrain:` outside the demo world.
    assert spec.pretrain is not None and isinstance(spec.world, DemoWorld)
    world = pretraining_knobs(generate.world_of(spec.world))
    config = pretrain.Config(**spec.pretrain.model_dump(), world=world, model=model)
    coords = {"world": spec.world.name, "model": tiny_label(model)}
    return Step("pretrain", config, coords=coords)


def source_step(spec: Spec, source: UserSource) -> Step:
    """A user's data file read and checked for bad records."""
    config = user_source.Config(
        **source.model_dump(include=set(user_source.Settings.model_fields)),
        path=source.path,
        checksum=spec.checksum(source.path),
        seed=spec.world.seed,
    )
    return Step("source", config, coords={"world": spec.world.name, "source": source.name})


def verify_step(spec: Spec, keep: str, candidates: Step, shard: Shard | None = None) -> Step:
    """Solutions (a user's, or a model's samples) judged against their gold answers; the kept
    ones train. A sample shard's samples are a verify shard (`shard`)."""
    config = verify.Config(
        **spec.stages.verify.model_dump(),
        keep=keep,
        world=spec.world.name,
        verifier=verifier_of(spec),
        shard=shard,
    )
    return Step("verify", config, (("candidates", candidates),), candidates.coords)


def merge_step(spec: Spec, stage: str, shards: list[Step], coords: dict, **named: Step) -> Step:
    """The merge of the shards of one `stage` step, in the order of their ranges; `named`: the
    roles that say what it stands for (runners.stages.merge)."""
    roles = tuple((f"{merge.SHARD}{i}", shard) for i, shard in enumerate(shards))
    config = merge.Config(stage=stage, world=spec.world.name)
    return Step("merge", config, (*roles, *named.items()), coords)


def eval_configs(spec: Spec, eval_set: str, judged: dict[str, Any]) -> list[evaluate.Config]:
    """The evaluate configs of `eval_set`: one, or one per shard with shard_size. `problems`
    at or over the set's size is all of it (None, the id of a step without it); a shard's range
    says which problems it holds, so its id leaves `problems` out and is shared by every
    `problems` that covers it."""
    settings = spec.stages.evaluate.model_dump()
    size = spec.eval_set_size(eval_set)
    if size is not None and settings["problems"] is not None and settings["problems"] >= size:
        settings["problems"] = None
    config = evaluate.Config(**settings, split=eval_set, **judged)
    if config.shard_size is None:
        return [config]
    if size is None:  # load_spec counts every sharded eval set, or refuses the spec
        raise ValueError(f"eval set {eval_set!r}: its problems were not counted")
    settings["problems"] = None
    shards = shards_of(min(size, config.problems or size), config.shard_size)
    return [evaluate.Config(**settings, split=eval_set, **judged, shard=s) for s in shards]


def verifier_of(spec: Spec) -> dict[str, Any] | None:
    """The `verifier` of a stage that judges answers: a real world's conventions (its defaults
    with the spec's `world.verify` applied) and the verifier's version, so that changing either
    judges again; None in the demo world, whose checker knows every step."""
    if isinstance(spec.world, DemoWorld):
        return None
    overrides = spec.world.verify.overrides() if spec.world.verify else {}
    return verifier_identity(spec.world.name, overrides)
