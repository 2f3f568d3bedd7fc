"""The figures a plan is priced from: parameter counts, token lengths, eval set sizes.

The demo world counts them: its tiny models' parameters from their configs (no weights are
built: runners.model.tiny_parameter_count), its tokens from the first problems its generator
writes (its tokenizer makes one token of each word, and adds <bos> to a prompt and <eos> to a
solution). A real world's models and tokenizers cannot be read before a run, so its spec
declares them: `cost.model_params`, each sampler's `params`, `cost.prompt_tokens` and
`cost.solution_tokens`; a figure the spec gives wins over a counted one. A figure neither counted
nor declared stays None, and the estimate names the field that would give it.

Eval sets are counted from their files, and the steps of a solution (rollouts start from every
step prefix) from the first teacher solutions as the world cuts them, so the only reading done
here is of the head of the world's training file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from statistics import fmean

from runners.model import ModelConfig, tiny_parameter_count
from runners.readers import BadRecord, count_records, read_records
from scaler.spec.schema import DemoWorld, RealWorld, SamplerSource, Spec

COUNTED_PROBLEMS = 200
"""Problems the demo world's token lengths, and any world's solution steps, are averaged over."""


@dataclass(frozen=True)
class Figures:
    params: dict[ModelConfig, float | None]
    """Each model the plan runs (the learner, every sampler) -> its parameter count, if known."""
    params_field: dict[ModelConfig, str]
    """Where the spec declares each model's parameter count: named when it is missing."""
    checkpoints: dict[str, ModelConfig]
    """A sampler sampled as it is (its sample step names only the checkpoint) -> its model."""
    sample_tokens: dict[ModelConfig, float]
    """A sampler with a budget -> its budget's tokens_per_sample, the length it is priced at."""
    prompt_tokens: float | None
    """Tokens of one problem as the template writes it, exemplars not included."""
    solution_tokens: float | None
    """Tokens of a solution: the teacher's, and what a model writes."""
    pretrain_tokens: tuple[float, float] | None
    """Demo world: the prompt and solution tokens of a problem of the pretraining corpus."""
    solution_steps: float | None
    """Steps of a solution as rollouts cut it."""
    eval_problems: dict[str, int | None]
    """Split -> its problems: every eval set and `val`."""
    gpu_flops: float
    """Peak FLOP/s of one GPU."""
    utilisation: float
    """Share of the peak a step sustains."""
    counted: str
    """What was counted rather than declared, in words, for the estimate's footnote."""


def figures_of(spec: Spec) -> Figures:
    """Every figure the estimate needs, counted where the world allows and declared otherwise."""
    world = spec.world
    params: dict[ModelConfig, float | None] = {}
    fields: dict[ModelConfig, str] = {}

    def add(model: ModelConfig, count: float | None, field: str) -> None:
        if params.get(model) is None:  # a model named twice keeps the count it has
            params[model], fields[model] = count, field

    learner = spec.cost.model_params
    if learner is None and isinstance(world, DemoWorld):
        learner = tiny_parameter_count(spec.model, demo_vocab_size(world))
    add(spec.model, learner, "cost.model_params")
    checkpoints, sample_tokens = {}, {}
    for i, source in enumerate(spec.sources):
        if isinstance(source, SamplerSource):
            add(source.model, spec.sampler_params(source), f"sources.{i}.params")
            if source.model.name_or_path is not None:
                checkpoints[source.model.name_or_path] = source.model
            if source.budget is not None:
                sample_tokens[source.model] = source.budget.tokens_per_sample
    prompt, solution = spec.cost.prompt_tokens, spec.cost.solution_tokens
    counted = []
    pretrain = None
    if isinstance(world, DemoWorld):
        counted_prompt, counted_solution = demo_tokens(world, "train")
        counted.append(
            f"the demo world's models' parameters from their configs, its tokens as the mean of "
            f"its first {COUNTED_PROBLEMS} problems (a cost field given wins)"
        )
        prompt = prompt if prompt is not None else counted_prompt
        solution = solution if solution is not None else counted_solution
        if spec.pretrain is not None:
            pretrain = demo_tokens(world, "pretrain")
    return Figures(
        params=params,
        params_field=fields,
        checkpoints=checkpoints,
        sample_tokens=sample_tokens,
        prompt_tokens=prompt,
        solution_tokens=solution,
        pretrain_tokens=pretrain,
        solution_steps=solution_steps(spec) if "per_step_dpo" in spec.algorithms else None,
        eval_problems=eval_problems(spec),
        gpu_flops=spec.cost.gpu_flops,
        utilisation=spec.cost.utilisation,
        counted="; ".join(counted),
    )


def rates_of(spec: Spec) -> Figures:
    """The figures that turn FLOPs already estimated into GPU-hours (the spec's gpu_flops and
    utilisation), without counting the rest: what `scaler status` needs, whose step index holds
    each step's FLOPs (scaler.step_index). Pricing steps needs `figures_of`."""
    return Figures(
        params={},
        params_field={},
        checkpoints={},
        sample_tokens={},
        prompt_tokens=spec.cost.prompt_tokens,
        solution_tokens=spec.cost.solution_tokens,
        pretrain_tokens=None,
        solution_steps=None,
        eval_problems={},
        gpu_flops=spec.cost.gpu_flops,
        utilisation=spec.cost.utilisation,
        counted="",
    )


def demo_vocab_size(world: DemoWorld) -> int:
    """Tokens of the demo world's tokenizer: its specials and every word of the world."""
    from runners.worlds.demo import vocabulary
    from runners.worlds.demo_tokenizer import SPECIAL_TOKENS

    return len(SPECIAL_TOKENS) + len(vocabulary(world))


def demo_tokens(world: DemoWorld, split: str) -> tuple[float, float]:
    """Mean tokens of a prompt (with <bos>) and of a solution (with <eos>) over the first
    problems of `split` (`train`, or `pretrain`: the base's corpus)."""
    from runners.stages.generate import world_of
    from runners.worlds.demo import PRETRAIN_SPLIT, make_problem, pretraining_knobs

    knobs = world_of(world)
    if split == "pretrain":
        knobs, split = pretraining_knobs(knobs), PRETRAIN_SPLIT
    problems = [make_problem(knobs, world.seed, split, i) for i in range(COUNTED_PROBLEMS)]
    return (
        fmean(len(p["prompt"].split()) + 1 for p in problems),
        fmean(len(p["solution"].split()) + 1 for p in problems),
    )


def solution_steps(spec: Spec) -> float | None:
    """Mean steps of the first teacher solutions, cut as rollouts cut a negative; None where the
    training file cannot be read here."""
    from runners import worlds
    from runners.credit import split_steps

    world = worlds.world(spec.world.name)
    solutions = _first_solutions(spec)
    if not solutions:
        return None
    return fmean(
        len(split_steps(text, world.step_separator, world.min_step_chars)) for text in solutions
    )


def _first_solutions(spec: Spec) -> list[str]:
    if isinstance(spec.world, DemoWorld):
        from runners.stages.generate import world_of
        from runners.worlds.demo import make_problem

        knobs, seed = world_of(spec.world), spec.world.seed
        return [make_problem(knobs, seed, "train", i)["solution"] for i in range(COUNTED_PROBLEMS)]
    from runners.stages.prepare import converter

    path = Path(spec.world.train)
    if not path.exists():  # gone since the run (`scaler status` elsewhere): not counted
        return []
    to_problem = converter(spec.world.name, spec.world.strip_annotations)
    solutions: list[str] = []
    try:
        for _, record in read_records(path):
            if not isinstance(record, BadRecord):
                solutions.append(to_problem(record)["solution"])
            if len(solutions) == COUNTED_PROBLEMS:
                break
    except (OSError, ValueError, KeyError, TypeError):
        return []  # a file prepare would refuse: not counted
    return solutions


def eval_problems(spec: Spec) -> dict[str, int | None]:
    """Problems of every eval set and of `val`: the demo world's knobs, a real world's files
    (JSONL ones: another file's records are not counted)."""
    world = spec.world
    if isinstance(world, RealWorld):
        sizes = {name: count_records(Path(path)) for name, path in world.eval_files.items()}
        return sizes | {"val": world.val_problems}
    return {"test": world.test_problems, "val": world.val_problems}
