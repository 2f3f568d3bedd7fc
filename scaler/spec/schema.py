"""The experiment spec's models: the frozen `Spec` tree, strict (`extra="forbid"`).

The per-stage settings are the runners' own config models and the analysis settings the
analysis' own, so a spec is checked against exactly what the stages and the fitter accept.
The rules across fields are `scaler.spec.checks`; loading and error translation are
`scaler.spec.load`.
"""

from __future__ import annotations

import typing
from collections import Counter
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    StrictInt,
    Tag,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from analysis.settings import AnalysisSettings, arm_name
from runners.compute_budget import samples_per_problem
from runners.model import ModelConfig, tiny_parameter_count
from runners.prompts import PromptConfig
from runners.stages.build import DpoSettings, PerStepDpoSettings, RftSettings
from runners.stages.evaluate import Settings as EvaluateSettings
from runners.stages.generate import Config as GenerateConfig
from runners.stages.prepare import Settings as RealWorldSettings
from runners.stages.pretrain import Settings as PretrainSettings
from runners.stages.rollout import Settings as RolloutSettings
from runners.stages.sample import Settings as SampleSettings
from runners.stages.source import Settings as SourceSettings
from runners.stages.train import DpoTrainSettings
from runners.stages.train import Settings as TrainSettings
from runners.stages.verify import Settings as VerifySettings
from runners.worlds.demo import vocabulary
from runners.worlds.demo_tokenizer import SPECIAL_TOKENS
from scaler.layout import EXPERIMENT_NAME
from scaler.stages import STAGES


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DemoWorld(GenerateConfig):
    """Procedurally generated multi-step arithmetic with known step truth (runs on a CPU)."""

    name: Literal["demo"] = "demo"


class AnswerConventions(Strict):
    """`world.verify`: what counts as the same answer, each field overriding the world's default
    (runners/judging/conventions.py `Conventions` and `WORLDS`; docs/verifier.md). Declared
    here, not imported, so that reading a spec stays light; tests/test_scaler/test_spec.py
    checks the fields match."""

    precision: int | None = Field(None, ge=0, le=15)
    """Decimal places numbers are rounded to before comparing (0-15)."""
    strip_units: bool | None = None
    """Drop units and unit words after a value (`30\\text{ cm}^2` is 30)."""
    percent: bool | None = None
    """`X%` matches `X` as well as `X/100`."""
    lists: Literal["ordered", "set"] | None = None
    """A bare list keeps its order unless the gold is written as a set; "set": every list is."""
    fallback: Literal["last expression", "last number", "none"] | None = None
    """The answer of a text with no marker: the last expression, the last number, or none."""
    extraction: Literal["latex+expr", "latex", "expr"] | None = None
    """What math-verify looks for: LaTeX and plain expressions, LaTeX only, or plain only."""
    strict: bool | None = None
    """math-verify's strict: variables matter (`f(x)` is not `f(y)`), sets are not tuples."""
    set_relation: bool | None = None
    """An interval gold matches a chain of inequalities (`-2 \\le x \\le 7`)."""
    decimal_comma: bool | None = None
    """One number with a comma not followed by three digits (`1,22`) has a decimal comma."""

    def overrides(self) -> dict[str, Any]:
        """The conventions set here, by name; the rest are the world's defaults."""
        return self.model_dump(exclude_none=True)


class RealWorld(RealWorldSettings):
    """GSM8K or MATH problems read from files (or local `datasets` copies) named here."""

    name: Literal["gsm8k", "math"]
    verify: AnswerConventions | None = None
    """Answer conventions that differ from the world's defaults (docs/verifier.md)."""


World = Annotated[DemoWorld | RealWorld, Field(discriminator="name")]
WORLD_NAMES = frozenset(
    name
    for world in (DemoWorld, RealWorld)
    for name in typing.get_args(world.model_fields["name"].annotation)
)
DEMO_EVAL_SETS = ("test", "val")


class UserSource(SourceSettings):
    """A user's own synthetic data: problems with teacher solutions and gold answers, verified
    before training."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """Names the source in results (the `source` column)."""
    path: str
    """JSONL file, another file `datasets` reads, or a local dataset folder."""
    keep: Literal["correct", "all"] = "correct"
    """Train on the solutions judged correct, or on all of them."""

    @field_validator("name")
    @classmethod
    def _not_teacher(cls, name: str) -> str:
        if name == "teacher":
            raise ValueError("'teacher' names the world's own solutions; pick another name")
        return name


class SamplingBudget(Strict):
    """Compute-matched sampling (Bansal et al. 2024): samples per problem from a FLOPs budget."""

    flops_per_problem: float = Field(gt=0)
    """Sampling FLOPs per problem; a sample of T tokens from a P-parameter model costs 2*P*T."""
    tokens_per_sample: float = Field(gt=0)
    """Assumed tokens per sample (the same for every sampler, as in the paper)."""


class SamplerSource(Strict):
    """Training data written by a model: its samples of every training problem, verified, the
    correct ones kept. In the demo world the sampler is a tiny model trained first on
    `train_size` teacher problems; in a real world, a checkpoint sampled as it is (or
    fine-tuned first when `train_size` is set)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """Names the source in results (the `source` column)."""
    model: ModelConfig
    """The sampler: a tiny architecture (demo) or `name_or_path` (real)."""
    train_size: int | None = Field(None, ge=1)
    """Teacher problems the sampler is fine-tuned on before sampling (required in the demo)."""
    train_seed: int = 0
    """Seed of that fine-tuning."""
    train: TrainSettings | None = None
    """Its training settings; default: stages.train (a larger sampler may need more steps)."""
    params: float | None = Field(None, gt=0)
    """Parameter count for `budget` and the cost estimate (real worlds; the demo world counts
    its tiny models)."""
    samples: int | None = Field(None, ge=1)
    """k: samples per problem; default: stages.sample.samples (or what `budget` buys)."""
    budget: SamplingBudget | None = None
    """Samples per problem from a FLOPs budget instead of `samples`."""
    keep: Literal["correct", "all"] = "correct"
    """Train on the samples judged correct, or on all of them."""

    @field_validator("name")
    @classmethod
    def _not_teacher(cls, name: str) -> str:
        return UserSource._not_teacher(name)

    @model_validator(mode="after")
    def _one_way_to_count(self) -> SamplerSource:
        if self.samples is not None and self.budget is not None:
            raise ValueError("give samples or budget, not both")
        return self


def _source_kind(value: Any) -> str | None:
    """Which kind of source a spec entry is: a name, a data file (`path`) or a sampler
    (`model`); None gives the one error below."""
    if isinstance(value, str | UserSource | SamplerSource):
        return {str: "teacher", UserSource: "file", SamplerSource: "sampler"}[type(value)]
    if isinstance(value, dict):
        return "file" if "path" in value else "sampler" if "model" in value else None
    return None


SOURCE_KINDS = ("teacher", "file", "sampler")
Source = Annotated[
    Annotated[Literal["teacher"], Tag("teacher")]
    | Annotated[UserSource, Tag("file")]
    | Annotated[SamplerSource, Tag("sampler")],
    Discriminator(
        _source_kind,
        custom_error_type="source",
        custom_error_message="expected 'teacher', a data file {name, path, ...} or a sampler "
        "{name, model, ...}",
    ),
]


def source_name(source: Source) -> str:
    return source if isinstance(source, str) else source.name


# sbatch options that scaler sets itself, from the fields above or from the plan.
SBATCH_OPTIONS_OWNED = {
    "array": "the plan",
    "dependency": "the plan",
    "kill-on-invalid-dep": "the plan",
    "output": "scaler (logs/slurm/)",
    "error": "scaler (logs/slurm/)",
    "open-mode": "scaler",
    "job-name": "scaler",
    "signal": "resources.signal_delay_s",
    "time": "resources.time_min",
    "cpus-per-task": "resources.cpus",
    "gpus-per-node": "resources.gpus",
    "nodes": "resources.nodes",
    "ntasks-per-node": "resources.processes",
    "mem": "resources.mem_gb",
    "partition": "resources.partition",
    "account": "resources.account",
    "qos": "resources.qos",
}


def _not_owned(options: dict | None) -> dict | None:
    for key in options or {}:  # None: a ResourceOverride leaving the default's options
        owner = SBATCH_OPTIONS_OWNED.get(key.replace("_", "-").lstrip("-"))
        if owner:
            raise ValueError(f"sbatch option {key!r} is set by {owner}; remove it here")
    return options


SbatchOptions = Annotated[dict[str, str | int | bool], AfterValidator(_not_owned)]


class Resources(Strict):
    """What one step of a stage asks the executor for."""

    cpus: int = Field(1, ge=1, description="CPU cores; also the torch thread count.")
    gpus: int = Field(0, ge=0, description="GPUs per node of a step.")
    nodes: int = Field(1, ge=1, description="Nodes per step (its processes span them).")
    processes: int | None = Field(
        None,
        ge=1,
        description="Processes (torch.distributed ranks) per node of a train or pretrain step; "
        "None: one per GPU, or 1.",
    )
    mem_gb: float = Field(4.0, gt=0, description="Memory per step in GiB.")
    time_min: int = Field(60, ge=1, description="Time limit per step in minutes.")
    partition: str | None = Field(None, min_length=1, description="Slurm partition.")
    account: str | None = Field(None, min_length=1, description="Slurm account to charge.")
    qos: str | None = Field(None, min_length=1, description="Slurm quality of service.")
    signal_delay_s: int = Field(
        90, ge=1, description="Slurm warns a job this long before its time limit (checkpoint)."
    )
    sbatch: SbatchOptions = Field(
        {}, description="Other sbatch options, e.g. {constraint: a100, exclude: node7}."
    )


def _all_optional(model: type[BaseModel], name: str, doc: str) -> type[BaseModel]:
    """`model` with every field optional and unset by default, keeping its constraints."""
    fields: dict[str, Any] = {
        field_name: (_optional(info.annotation), FieldInfo.merge_field_infos(info, default=None))
        for field_name, info in model.model_fields.items()
    }
    return create_model(name, __base__=Strict, __doc__=doc, **fields)


def _optional(annotation: Any) -> Any:
    return annotation | None


if typing.TYPE_CHECKING:  # a model made at run time; to the type checker, a strict model
    ResourceOverride = Strict
else:
    ResourceOverride = _all_optional(
        Resources,
        "ResourceOverride",
        "Per-stage changes to the default resources; unset fields keep the default.",
    )


_RESOURCE_KEYS = ("default", *STAGES)
ResourceKey = Literal[_RESOURCE_KEYS]  # type: ignore[valid-type]  # the stages, known at import


class BuildSettings(Strict):
    """How each algorithm's training data is built from samples and rollouts."""

    rft: RftSettings = RftSettings()
    dpo: DpoSettings = DpoSettings()
    per_step_dpo: PerStepDpoSettings = PerStepDpoSettings()


class StageSettings(Strict):
    """Settings of the stages that the grid does not vary."""

    train: TrainSettings = TrainSettings()
    dpo_train: DpoTrainSettings = DpoTrainSettings()
    evaluate: EvaluateSettings = EvaluateSettings()
    verify: VerifySettings = VerifySettings()
    sample: SampleSettings = SampleSettings()
    rollout: RolloutSettings = RolloutSettings()
    build: BuildSettings = BuildSettings()


class ExecutorSettings(Strict):
    """Where steps run. The command line's --executor wins over `name`."""

    name: Literal["inline", "local", "warm", "slurm"] = Field(
        "local",
        description="inline: in this process; local: a fresh process per step (submitit); "
        "warm: worker processes reused from step to step; slurm: sbatch.",
    )
    parallel: int = Field(2, ge=1, description="Steps running at once (local executor).")
    retries: int = Field(0, ge=0, description="Times a failed step is submitted again.")
    array_parallelism: int = Field(
        256, ge=1, description="Slurm: tasks of one job array running at once."
    )
    max_array_size: int | None = Field(
        None, ge=1, description="Slurm: tasks per array; default: the cluster's MaxArraySize."
    )
    max_jobs: int | None = Field(
        None,
        ge=1,
        description="Slurm: this experiment's tasks queued or running at once; the rest go in "
        "waves as they end. Default: what MaxJobCount and accounting's submit limits leave "
        "room for.",
    )
    poll_s: float = Field(5.0, gt=0, description="Slurm: seconds between looks at the queue.")
    max_timeouts: int = Field(
        3, ge=0, description="Slurm: requeues of a step at its time limit (preemption is free)."
    )


class CostSettings(Strict):
    """`cost`: what `scaler plan` prices a plan from (scaler.cost) where the spec does not say
    it otherwise. The demo world counts its models and tokens; a real world's are declared."""

    model_params: float | None = Field(None, gt=0)
    """The learner's parameter count (real worlds; the demo world counts its tiny models)."""
    prompt_tokens: float | None = Field(None, gt=0)
    """Typical tokens of one problem as the template writes it, exemplars not included (real
    worlds; the demo world counts them)."""
    solution_tokens: float | None = Field(None, gt=0)
    """Typical tokens of a solution, the teacher's or a model's; a sampler with a budget writes
    its budget's tokens_per_sample (real worlds; the demo world counts them)."""
    gpu_flops: float = Field(989e12, gt=0)
    """Peak FLOP/s of one GPU; the default is an H100 SXM's dense bf16."""
    utilisation: float = Field(0.4, gt=0, le=1)
    """Share of that peak a step sustains (model FLOPs utilisation)."""


def _unique(values: list, what: str) -> list:
    repeated = [v for v, n in Counter(values).items() if n > 1]
    if repeated:
        raise ValueError(f"{what} must be listed once each; repeated: {repeated}")
    return values


Algorithm = Literal["sft", "rft", "dpo", "per_step_dpo"]
"""sft: on the source's data; rft: plus the SFT model's distinct correct samples; dpo: pairs of
its correct and incorrect samples; per_step_dpo: pairs around the first pit of its negatives."""


Seed = Annotated[StrictInt, Field(ge=0, le=2**32 - 1)]
"""Whole numbers only (not true, "1" or 1.0), within what numpy and torch seed with."""


class SeedsAt(Strict):
    """Seeds one size runs besides the grid's."""

    size: StrictInt = Field(description="One of `sizes`.")
    seeds: list[Seed] = Field(min_length=1, description="Seeds not in `seeds`.")


class Spec(Strict):
    """One experiment: a grid of sources x sizes x algorithms x seeds, evaluated on eval sets."""

    experiment: str = Field(pattern=EXPERIMENT_NAME, description="Names results/<experiment>/.")
    description: str = ""
    vars: dict[str, Any] = Field(
        {}, description="Free values to interpolate elsewhere as ${vars.name}; unused otherwise."
    )
    world: World
    model: ModelConfig = ModelConfig()
    pretrain: PretrainSettings | None = Field(
        None,
        description="Demo world: train the model's base first, on the world's pretraining "
        "corpus, and fine-tune from it (one step shared by every experiment); None: from scratch.",
    )
    prompt: PromptConfig = PromptConfig()
    sources: list[Source] = Field(["teacher"], min_length=1)
    sizes: list[StrictInt] = Field(min_length=1, description="Training problems per cell.")
    algorithms: list[Algorithm] = Field(["sft"], min_length=1)
    seeds: list[Seed] = Field([0], min_length=1)
    extra_seeds: list[SeedsAt] = Field(
        [],
        description="More seeds at some sizes: each names a size and the seeds it runs besides "
        "`seeds`, for every arm (what `scaler suggest` offers where one size's seeds matter).",
    )
    eval_sets: list[str] = Field(["test"], min_length=1)
    stages: StageSettings = StageSettings()
    resources: dict[ResourceKey, ResourceOverride] = {}
    executor: ExecutorSettings = ExecutorSettings()
    analysis: AnalysisSettings = AnalysisSettings()
    cost: CostSettings = Field(
        CostSettings(), description="What `scaler plan` estimates FLOPs and GPU-hours from."
    )

    _checksums: dict[str, str] = PrivateAttr(default_factory=dict)
    """Data path -> SHA-256 of its content, filled by load_spec: steps are named by content."""
    _eval_sizes: dict[str, int] = PrivateAttr(default_factory=dict)
    """Eval set -> its problems, counted by load_spec in a real world's JSONL files when
    stages.evaluate.shard_size or stages.evaluate.problems needs the count."""

    @field_validator("sizes")
    @classmethod
    def _sizes_positive_unique(cls, sizes: list[int]) -> list[int]:
        if any(size <= 0 for size in sizes):
            raise ValueError(f"sizes must be > 0, got {sizes}")
        return _unique(sizes, "sizes")

    @field_validator("algorithms", "seeds", "eval_sets")
    @classmethod
    def _listed_once(cls, values: list, info) -> list:
        return _unique(values, info.field_name)

    @field_validator("sources")
    @classmethod
    def _sources_named_once(cls, sources: list[Source]) -> list[Source]:
        _unique([source_name(s) for s in sources], "sources (by name)")
        return sources

    @model_validator(mode="after")
    def _fits_world(self) -> Spec:
        # The rules across fields are plain functions (scaler.spec.checks), imported here
        # because they need the models of this module.
        from scaler.spec.checks import check_spec

        check_spec(self)
        return self

    def seeds_at(self, size: int) -> list[int]:
        """The seeds of the cells at `size`: the grid's and that size's `extra_seeds`."""
        extra = [seed for more in self.extra_seeds if more.size == size for seed in more.seeds]
        return [*self.seeds, *extra]

    def arm_names(self) -> list[str]:
        """Every (source, algorithm) arm of the grid, as analysis names them."""
        names = [source_name(s) for s in self.sources]
        return [arm_name(s, a, len(names)) for s in names for a in self.algorithms]

    def sampler_params(self, source: SamplerSource) -> float | None:
        """The sampler's parameter count: given, or counted for the demo world's tiny models."""
        if source.params is not None or not isinstance(self.world, DemoWorld):
            return source.params
        vocab = len(SPECIAL_TOKENS) + len(vocabulary(self.world))
        return tiny_parameter_count(source.model, vocab)

    def sampler_samples(self, source: SamplerSource) -> int:
        """k: samples per problem the sampler draws (given, bought by its budget, or the
        default of stages.sample)."""
        if source.samples is not None:
            return source.samples
        if source.budget is None:
            return self.stages.sample.samples
        params = self.sampler_params(source)
        if params is None:  # checks.check_sampler refuses a budget without a parameter count
            raise ValueError(f"sampler {source.name!r}: a budget needs params")
        budget = source.budget
        return samples_per_problem(budget.flops_per_problem, params, budget.tokens_per_sample)

    def eval_set_names(self) -> list[str]:
        if isinstance(self.world, DemoWorld):
            return list(DEMO_EVAL_SETS)
        return [*self.world.eval_files, "val"]

    def checksum(self, path: str) -> str:
        return self._checksums[path]

    def eval_set_size(self, name: str) -> int | None:
        """Problems of eval set `name`: the demo world's knobs, a real world's `val_problems`,
        or the records load_spec counted in its file (None where it counted none)."""
        if isinstance(self.world, DemoWorld):
            return {"test": self.world.test_problems, "val": self.world.val_problems}[name]
        if name == "val":
            return self.world.val_problems
        return self._eval_sizes.get(name)

    def resources_for(self, stage: str) -> Resources:
        merged: dict[str, Any] = {"sbatch": {}}
        for key in ("default", stage):
            if key in self.resources:
                override = self.resources[key].model_dump(exclude_none=True)
                # Extra sbatch options add up: a stage adds to or changes the default's.
                merged |= override | {"sbatch": merged["sbatch"] | override.get("sbatch", {})}
        return Resources(**merged)
