"""What a plan costs before it is submitted: FLOPs per step, and GPU-hours where a step has GPUs.

Pure arithmetic over a Plan and its Figures (scaler.cost_figures), with the FLOPs rules of
runners.compute_budget (P parameters, T tokens):

- train: 6 * P * T over steps x batch_size sequences of prompt + solution tokens; a DPO row is
  two sequences (chosen and rejected) and its reference model reads both (2 * P * T more).
  Validation adds the generation below for val_problems problems at every eval_every steps.
- pretrain (the demo world's base): the same, on its corpus's sequences.
- sample: 2 * P * T, T = each problem's prompt once (a k-sample request reads it once) and k
  samples of solution length.
- rollout: each of the size x negatives_per_problem negatives (the most there can be) is cut
  into S steps; from each of its S prefixes, rollouts x best_of continuations of the rest of
  the solution. Per negative, S prompts and (S - 1) / 2 solutions of prefix are read, and each
  of the rollouts x best_of writes (S + 1) / 2 solutions over the S prefixes.
- evaluate: every problem of the set read, and written once greedily and k times when sampled.

A prompt is the problem's tokens plus, with few-shot prompts, each exemplar's problem and
solution; a generation is a solution's length, at most the stage's max_new_tokens. Attention's
own FLOPs (quadratic in the length, small beside P at these lengths) are left out, as in the
6 * P * T rule.

A shard of a sample, rollout or evaluate stage (runners.shards) is priced for its range of the
problems, and the merge of the shards runs no model.

GPU-hours = FLOPs / (peak FLOP/s x utilisation) / 3600, whatever the GPUs a step is spread over;
its wall time is that over its GPUs. A step whose stage has no GPU is priced in FLOPs only, and
stages that run no model (generate, prepare, source, verify, build) in none.
"""

from __future__ import annotations

from typing import TypeVar, cast

from pydantic import BaseModel

from runners.compute_budget import sample_flops, train_flops
from runners.model import ModelConfig
from runners.stages import evaluate, pretrain, rollout, sample, train
from runners.training import TrainConfig, budget_steps
from scaler.cost_figures import Figures
from scaler.plan import Plan, Step
from scaler.step_cost import StepCost

T = TypeVar("T")


class Missing(Exception):
    """A figure the estimate needs is neither counted nor declared: `field` would declare it."""

    def __init__(self, field: str):
        super().__init__(field)
        self.field = field


def estimate(plan: Plan, figures: Figures) -> dict[str, StepCost]:
    """Step id -> its cost."""
    costs = {}
    for step in plan.steps:
        resources = plan.resources[step.stage]
        gpus = resources.gpus * resources.nodes
        try:
            flops = step_flops(step, figures)
            missing = None
        except Missing as unknown:
            flops, missing = None, unknown.field
        costs[step.id] = StepCost(flops, missing, gpus)
    return costs


def step_flops(step: Step, figures: Figures) -> float | None:
    """FLOPs of one step (see the module docstring); None where no model runs."""
    price = {
        "train": _train,
        "pretrain": _pretrain,
        "sample": _sample,
        "rollout": _rollout,
        "evaluate": _evaluate,
    }.get(step.stage)
    return price(step, figures) if price else None


def _train(step: Step, figures: Figures) -> float:
    config = cast(train.Config, step.config)
    params = _params(figures, config.model)
    steps = budget_steps(config, config.size)
    sequence = prompt_tokens(figures, config.prompt.few_shot) + _trained_solution(step, figures)
    if config.objective == "dpo":
        # Chosen and rejected, each trained on by the policy and read by the reference.
        tokens = steps * config.batch_size * 2 * sequence
        flops = train_flops(params, tokens) + sample_flops(params, tokens)
    else:
        flops = train_flops(params, steps * config.batch_size * sequence)
    problems = min(config.val_problems, figures.eval_problems.get("val") or config.val_problems)
    written = min(_need(figures.solution_tokens, "cost.solution_tokens"), config.max_new_tokens)
    read = prompt_tokens(figures, config.prompt.few_shot)
    validation = evaluations(steps, config.eval_every) * problems * (read + written)
    return flops + sample_flops(params, validation)


def _pretrain(step: Step, figures: Figures) -> float:
    config = cast(pretrain.Config, step.config)
    params = _params(figures, config.model)
    prompt, solution = _need(figures.pretrain_tokens, "pretrain")
    flops = train_flops(params, config.steps * config.batch_size * (prompt + solution))
    # Validation generates as a train step's does by default (runners.stages.pretrain).
    written = min(solution, TrainConfig().max_new_tokens)
    validation = evaluations(config.steps, config.eval_every) * config.val_problems
    return flops + sample_flops(params, validation * (prompt + written))


def _sample(step: Step, figures: Figures) -> float:
    config = cast(sample.Config, step.config)
    model = _sampling_model(step, figures)
    written = min(_sample_tokens(figures, model), config.max_new_tokens)
    read = prompt_tokens(figures, config.prompt.few_shot)
    problems = _shard_size(config) or config.problems
    return sample_flops(_params(figures, model), problems * (read + config.samples * written))


def _rollout(step: Step, figures: Figures) -> float:
    config = cast(rollout.Config, step.config)
    model = _sampling_model(step, figures)
    # The negatives come from the samples behind the verdicts rolled out.
    sampled = _sample_steps(dict(step.inputs)["samples"])
    problems = _shard_size(config) or sum(
        _shard_size(s.config) or cast(sample.Config, s.config).problems for s in sampled
    )
    samples = min(cast(sample.Config, s.config).samples for s in sampled)
    negatives = problems * min(config.negatives_per_problem, samples)
    steps = _need(figures.solution_steps, "world.train (solutions to count steps in)")
    solution = _need(figures.solution_tokens, "cost.solution_tokens")
    written = min(solution, config.max_new_tokens)
    read = steps * prompt_tokens(figures, config.prompt.few_shot) + solution * (steps - 1) / 2
    continuations = config.rollouts * config.best_of * written * (steps + 1) / 2
    return sample_flops(_params(figures, model), negatives * (read + continuations))


def _evaluate(step: Step, figures: Figures) -> float:
    config = cast(evaluate.Config, step.config)
    model = _sampling_model(step, figures)
    problems = (
        _shard_size(config)
        or config.problems
        or _need(figures.eval_problems.get(config.split), f"eval set {config.split}'s size")
    )
    written = min(_need(figures.solution_tokens, "cost.solution_tokens"), config.max_new_tokens)
    passes = 2 if config.samples else 1  # the greedy pass, then the sampled one
    read = passes * prompt_tokens(figures, config.prompt.few_shot)
    return sample_flops(_params(figures, model), problems * (read + (1 + config.samples) * written))


def evaluations(steps: int, every: int) -> int:
    """Validations of a training run: every `every` steps and at the last one."""
    return steps // every + (1 if steps % every else 0)


def prompt_tokens(figures: Figures, few_shot: int) -> float:
    """A prompt as a model reads it: the problem, after `few_shot` solved exemplars."""
    prompt = _need(figures.prompt_tokens, "cost.prompt_tokens")
    solution = _need(figures.solution_tokens, "cost.solution_tokens")
    return prompt + few_shot * (prompt + solution)


def _trained_solution(step: Step, figures: Figures) -> float:
    """The solutions a train step learns from: a sampler's samples when it trains on them
    (their budget's length), else a solution's."""
    trained_on = dict(step.inputs).get("train_data")
    sampled = _sample_steps(trained_on) if trained_on else []
    if sampled:
        return _sample_tokens(figures, _sampling_model(sampled[0], figures))
    return _need(figures.solution_tokens, "cost.solution_tokens")


def _sample_steps(step: Step) -> list[Step]:
    """The sample steps (one, or its shards) whose samples `step` passes on through verify
    steps and merges of shards; none for other data (a build step's, a user's file)."""
    found: dict[str, Step] = {}
    todo = [step]
    while todo:
        current = todo.pop()
        if current.stage == "sample":
            found[current.id] = current
        elif current.stage in ("verify", "merge"):
            todo += [upstream for _, upstream in current.inputs]
    return list(found.values())


def _shard_size(config: BaseModel) -> int | None:
    """The problems of a shard's range (runners.shards); None for a step that is not a shard."""
    shard = getattr(config, "shard", None)
    return shard.problems if shard is not None else None


def _sampling_model(step: Step, figures: Figures) -> ModelConfig:
    """The model a sample, rollout or evaluate step runs: its `model` input's, or the sampler
    whose checkpoint it names."""
    trained = dict(step.inputs).get("model")
    if trained is not None:
        return cast(train.Config, trained.config).model
    return figures.checkpoints[cast(sample.Config, step.config).name_or_path or ""]


def _sample_tokens(figures: Figures, model: ModelConfig) -> float:
    if model in figures.sample_tokens:
        return figures.sample_tokens[model]
    return _need(figures.solution_tokens, "cost.solution_tokens")


def _params(figures: Figures, model: ModelConfig) -> float:
    return _need(figures.params.get(model), figures.params_field.get(model, "cost.model_params"))


def _need(value: T | None, field: str) -> T:
    if value is None:
        raise Missing(field)
    return value
