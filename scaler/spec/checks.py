"""The rules of a spec that span several fields, as plain functions.

Each field is checked by its own model (scaler.spec.schema); what depends on two of them (a
sampler and the world, the analysis' baseline and the grid's arms) is checked here. `check_spec`
runs inside `Spec`'s validation, so its ValueErrors name the field they are about first
(`sources.1.train_size: ...`), which scaler.spec.load turns into a SpecError on that field.
`check_sizes_fit_pool` needs the data files, so load_spec runs it once they are hashed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runners.readers import count_records
from scaler.errors import SpecError
from scaler.spec.schema import DemoWorld, SamplerSource, Spec, UserSource
from scaler.stages import STAGES


def check_spec(spec: Spec) -> None:
    """Every rule across fields; raise ValueError("<field>: <problem>") on the first broken."""
    demo = isinstance(spec.world, DemoWorld)
    for i, source in enumerate(spec.sources):
        if isinstance(source, SamplerSource):
            check_sampler(spec, i, source, demo)
    samplers = [s.name for s in spec.sources if isinstance(s, SamplerSource)]
    unknown_pool = [name for name in spec.stages.build.rft.pool if name not in samplers]
    if unknown_pool:
        raise ValueError(
            f"stages.build.rft.pool: {unknown_pool} are not sampler sources; "
            f"expected some of {samplers}"
        )
    check_world(spec, demo)
    check_processes(spec)
    unknown = [name for name in spec.eval_sets if name not in spec.eval_set_names()]
    if unknown:
        raise ValueError(
            f"eval_sets: {unknown} not in the world; expected some of {spec.eval_set_names()}"
        )
    check_analysis(spec)
    check_extra_seeds(spec)


def check_extra_seeds(spec: Spec) -> None:
    """Each of `extra_seeds` at a size of the grid, named once, with seeds of its own."""
    named: set[int] = set()
    for i, more in enumerate(spec.extra_seeds):
        where = f"extra_seeds.{i}"
        if more.size not in spec.sizes:
            raise ValueError(f"{where}.size: {more.size} is not one of sizes {spec.sizes}")
        if more.size in named:
            raise ValueError(f"{where}.size: {more.size} is named twice; list its seeds once")
        named.add(more.size)
        again = sorted({seed for seed in more.seeds if more.seeds.count(seed) > 1})
        also = [seed for seed in more.seeds if seed in spec.seeds]
        if again or also:
            problem = f"{again} listed twice" if again else f"{also} already in seeds"
            raise ValueError(f"{where}.seeds: {problem}; expected seeds of its own")


def check_world(spec: Spec, demo: bool) -> None:
    """What the demo world (its own tiny model, plain prompts) and a real one each need."""
    if demo:
        if any(isinstance(s, UserSource) for s in spec.sources):
            raise ValueError("sources: a user's data source needs a real world (gsm8k, math)")
        if spec.prompt.style != "plain":
            raise ValueError("prompt.style: the demo world's prompts are plain")
        if spec.model.name_or_path is not None:
            raise ValueError(
                "model.name_or_path: the demo world trains its own tiny model, whose "
                "tokenizer knows only the demo world's words"
            )
    elif spec.model.name_or_path is None:
        raise ValueError("model.name_or_path: a real world needs a Hugging Face id or a path")
    elif spec.pretrain is not None:
        raise ValueError(
            "pretrain: only the demo world pretrains its own base; a real world's base is "
            "model.name_or_path"
        )


def check_processes(spec: Spec) -> None:
    """Only the trainers run as several processes, and their batch splits over them."""
    for name, stage in STAGES.items():
        resources = spec.resources_for(name)
        if stage.ranked:
            world = stage.world_size(resources)
            for key, settings in _batch_settings(spec, name):
                if settings.batch_size % world:
                    raise ValueError(
                        f"{key}.batch_size: {settings.batch_size} sequences do not split over "
                        f"the {world} processes of resources.{name}; use a multiple of {world}"
                    )
        elif resources.nodes > 1 or (resources.processes or 1) > 1:
            where = name if name in spec.resources else "default"
            field = "nodes" if resources.nodes > 1 else "processes"
            instead = (
                "set it under resources.train and resources.pretrain"
                if where == "default"
                else "split its problems into shards instead"
            )
            raise ValueError(
                f"resources.{where}.{field}: only train and pretrain steps run as several "
                f"processes, not {name} steps; {instead}"
            )


def _batch_settings(spec: Spec, stage: str) -> list[tuple[str, Any]]:
    if stage == "pretrain":
        return [("pretrain", spec.pretrain)] if spec.pretrain is not None else []
    return [("stages.train", spec.stages.train), ("stages.dpo_train", spec.stages.dpo_train)]


def check_sampler(spec: Spec, i: int, source: SamplerSource, demo: bool) -> None:
    """A sampler source (`sources.<i>`) fits its world and its budget buys a sample."""
    where = f"sources.{i}"
    if demo and source.model.name_or_path is not None:
        raise ValueError(f"{where}.model.name_or_path: demo-world samplers are tiny models")
    if demo and source.train_size is None:
        raise ValueError(f"{where}.train_size: a demo-world sampler is trained first; say on"
                         " how many teacher problems")  # fmt: skip
    if not demo and source.model.name_or_path is None:
        raise ValueError(f"{where}.model.name_or_path: a real world's sampler is a checkpoint")
    if source.budget is not None and not demo and source.params is None:
        raise ValueError(f"{where}.params: a budget needs the sampler's parameter count")
    if source.budget is not None and spec.sampler_samples(source) == 0:
        raise ValueError(
            f"{where}.budget: {source.budget.flops_per_problem:g} FLOPs per problem buy no "
            f"sample of {source.budget.tokens_per_sample:g} tokens from "
            f"{spec.sampler_params(source):,.0f} parameters"
        )


def check_analysis(spec: Spec) -> None:
    """The analysis section names what the grid has: an evaluated set, an arm, a metric."""
    analysis = spec.analysis
    if analysis.eval_set is not None and analysis.eval_set not in spec.eval_sets:
        raise ValueError(
            f"analysis.eval_set: {analysis.eval_set!r} is not evaluated; "
            f"expected one of eval_sets {spec.eval_sets}"
        )
    if analysis.baseline is not None and analysis.baseline not in spec.arm_names():
        raise ValueError(
            f"analysis.baseline: {analysis.baseline!r} is not an arm; "
            f"expected one of {spec.arm_names()}"
        )
    if analysis.metric != "accuracy" and not spec.stages.evaluate.samples:
        raise ValueError(
            f"analysis.metric: {analysis.metric} needs samples at evaluation; "
            "set stages.evaluate.samples to k >= 2"
        )


def check_sizes_fit_pool(spec: Spec, source: str) -> None:
    """Sizes beyond the training pool fail here when the pool is known before running: the demo
    world's train_pool, a JSONL training file's records less those held out. A user source's
    pool is known after verification; its train steps check it."""
    if isinstance(spec.world, DemoWorld):
        pool, what = spec.world.train_pool, f"world.train_pool={spec.world.train_pool}"
    elif "teacher" in spec.sources and (records := count_records(Path(spec.world.train))):
        held = spec.world.val_problems + spec.prompt.few_shot
        pool = records - held
        what = f"the {records} records of {spec.world.train} less {held} held out"
    else:
        return
    too_big = [size for size in spec.sizes if size > pool]
    if too_big:
        raise SpecError(source, "sizes", f"{too_big} exceed {what}; use smaller sizes")
