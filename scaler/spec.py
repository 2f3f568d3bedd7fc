"""The experiment spec: YAML in, a frozen, validated `Spec` out.

OmegaConf loads the file, merges `key=value` overrides and resolves interpolations; nothing in a
spec is ever executed. A pydantic model with `extra="forbid"` then decides what is valid. Every
problem becomes one `SpecError` naming the file, the field path and what was expected, raised
before anything is written. The per-stage settings are the runners' own config models, so a spec
is checked against exactly what the stages accept.
"""

from __future__ import annotations

import typing
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
)
from pydantic.fields import FieldInfo

from runners.evaluate import Settings as EvaluateSettings
from runners.generate import Config as GenerateConfig
from runners.model import ModelConfig
from runners.train import Settings as TrainSettings
from scaler.errors import SpecError
from scaler.layout import EXPERIMENT_NAME


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DemoWorld(GenerateConfig):
    """Procedurally generated multi-step arithmetic with known step truth (runs on a CPU)."""

    name: Literal["demo"] = "demo"


WORLD_NAMES = frozenset(typing.get_args(DemoWorld.model_fields["name"].annotation))


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
    "mem": "resources.mem_gb",
    "partition": "resources.partition",
    "account": "resources.account",
    "qos": "resources.qos",
}


def _not_owned(options: dict) -> dict:
    for key in options:
        owner = SBATCH_OPTIONS_OWNED.get(key.replace("_", "-").lstrip("-"))
        if owner:
            raise ValueError(f"sbatch option {key!r} is set by {owner}; remove it here")
    return options


SbatchOptions = Annotated[dict[str, str | int | bool], AfterValidator(_not_owned)]


class Resources(Strict):
    """What one step of a stage asks the executor for."""

    cpus: int = Field(1, ge=1, description="CPU cores; also the torch thread count.")
    gpus: int = Field(0, ge=0, description="GPUs per step.")
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
    fields = {
        field_name: (info.annotation | None, FieldInfo.merge_field_infos(info, default=None))
        for field_name, info in model.model_fields.items()
    }
    return create_model(name, __base__=Strict, __doc__=doc, **fields)


ResourceOverride = _all_optional(
    Resources,
    "ResourceOverride",
    "Per-stage changes to the default resources; unset fields keep the default.",
)


class StageSettings(Strict):
    """Settings of the stages that the grid does not vary."""

    train: TrainSettings = TrainSettings()
    evaluate: EvaluateSettings = EvaluateSettings()


class ExecutorSettings(Strict):
    """Where steps run. The command line's --executor wins over `name`."""

    name: Literal["inline", "local", "slurm"] = Field(
        "local", description="inline: in this process; local: subprocesses; slurm: sbatch."
    )
    parallel: int = Field(2, ge=1, description="Steps running at once (local executor).")
    retries: int = Field(0, ge=0, description="Times a failed step is submitted again.")
    array_parallelism: int = Field(
        256, ge=1, description="Slurm: tasks of one job array running at once."
    )
    max_array_size: int | None = Field(
        None, ge=1, description="Slurm: tasks per array; default: the cluster's MaxArraySize."
    )
    poll_s: float = Field(5.0, gt=0, description="Slurm: seconds between looks at the queue.")
    max_timeouts: int = Field(
        3, ge=0, description="Slurm: requeues of a step at its time limit (preemption is free)."
    )


def _unique(values: list, what: str) -> list:
    repeated = [v for v, n in Counter(values).items() if n > 1]
    if repeated:
        raise ValueError(f"{what} must be listed once each; repeated: {repeated}")
    return values


class Spec(Strict):
    """One experiment: a grid of sources x sizes x algorithms x seeds, evaluated on eval sets."""

    experiment: str = Field(pattern=EXPERIMENT_NAME, description="Names results/<experiment>/.")
    description: str = ""
    world: DemoWorld = Field(discriminator="name")
    model: ModelConfig = ModelConfig()
    sources: list[Literal["teacher"]] = Field(["teacher"], min_length=1)
    sizes: list[int] = Field(min_length=1, description="Training problems per cell.")
    algorithms: list[Literal["sft"]] = Field(["sft"], min_length=1)
    seeds: list[int] = Field([0], min_length=1)
    eval_sets: list[Literal["test", "val"]] = Field(["test"], min_length=1)
    stages: StageSettings = StageSettings()
    resources: dict[Literal["default", "generate", "train", "evaluate"], ResourceOverride] = {}
    executor: ExecutorSettings = ExecutorSettings()

    @field_validator("sizes")
    @classmethod
    def _sizes_positive_unique(cls, sizes: list[int]) -> list[int]:
        if any(size <= 0 for size in sizes):
            raise ValueError(f"sizes must be > 0, got {sizes}")
        return _unique(sizes, "sizes")

    @field_validator("sources", "algorithms", "seeds", "eval_sets")
    @classmethod
    def _listed_once(cls, values: list, info) -> list:
        return _unique(values, info.field_name)

    def resources_for(self, stage: str) -> Resources:
        merged: dict[str, Any] = {"sbatch": {}}
        for key in ("default", stage):
            if key in self.resources:
                override = self.resources[key].model_dump(exclude_none=True)
                # Extra sbatch options add up: a stage adds to or changes the default's.
                merged |= override | {"sbatch": merged["sbatch"] | override.get("sbatch", {})}
        return Resources(**merged)


def load_spec(path: str | Path, overrides: list[str] = ()) -> Spec:
    """Load, merge overrides, resolve and validate; raise SpecError on the first problem."""
    source = str(path)
    raw = _load_raw(Path(path), list(overrides))
    try:
        spec = Spec.model_validate(raw)
    except ValidationError as error:
        raise _spec_error(source, error) from None
    _check_sizes_fit_pool(spec, source)
    return spec


def _load_raw(path: Path, overrides: list[str]) -> dict:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException
    from yaml import YAMLError

    source = str(path)
    if not path.is_file():
        raise SpecError(source, "", "no such spec file")
    try:
        config = OmegaConf.load(path)
    except (YAMLError, OmegaConfBaseException, UnicodeDecodeError) as error:
        raise SpecError(source, "", f"not valid YAML: {_one_line(error)}") from None
    if not OmegaConf.is_dict(config):
        raise SpecError(source, "", "expected a mapping of keys at the top level")
    for item in overrides:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise SpecError("command line", item, "expected an override of the form key=value")
    try:
        cli = OmegaConf.from_dotlist(overrides)
    except (OmegaConfBaseException, YAMLError, ValueError) as error:
        raise SpecError("command line", " ".join(overrides), _one_line(error)) from None
    try:
        merged = OmegaConf.merge(config, cli)
        return OmegaConf.to_container(merged, resolve=True)
    except (OmegaConfBaseException, YAMLError, ValueError) as error:
        raise SpecError(source, _omegaconf_key(error), _one_line(error)) from None


def _one_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _omegaconf_key(error: Exception) -> str:
    return str(getattr(error, "full_key", "") or "")


def _check_sizes_fit_pool(spec: Spec, source: str) -> None:
    too_big = [size for size in spec.sizes if size > spec.world.train_pool]
    if too_big:
        raise SpecError(
            source,
            "sizes",
            f"{too_big} exceed world.train_pool={spec.world.train_pool}; "
            "raise train_pool or use smaller sizes",
        )


def _spec_error(source: str, error: ValidationError) -> SpecError:
    first = error.errors()[0]
    loc = [part for part in first["loc"] if not _is_union_tag(part)]
    field = ".".join(str(part) for part in loc)
    more = error.error_count() - 1
    if first["type"] == "extra_forbidden":
        valid = _valid_keys(loc[:-1])
        message = "unknown key" + (f"; valid keys: {', '.join(valid)}" if valid else "")
    elif first["type"] == "missing":
        message = "required key is missing"
    elif first["type"] == "value_error":
        message = first["msg"].removeprefix("Value error, ")
    elif first["type"] == "union_tag_invalid":
        ctx = first["ctx"]
        message = f"unknown {field} {ctx['tag']!r}; expected one of: {ctx['expected_tags']}"
    else:
        message = f"{first['msg']} (got {first['input']!r})"
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return SpecError(source, field or "(top level)", message)


def _is_union_tag(part: Any) -> bool:
    # Discriminated unions put the tag (the world's name) into the error location, and a bad
    # dict key is located at "<dict>.[key]".
    return part in WORLD_NAMES or part == "[key]"


def _valid_keys(loc: list) -> list[str]:
    """The field names of the model at `loc` inside Spec, for 'unknown key' errors."""
    annotation: Any = Spec
    for part in loc:
        model = _inner_model(annotation)
        if not _is_model(model):
            return []
        if isinstance(part, str) and part in model.model_fields:
            annotation = model.model_fields[part].annotation
        # Otherwise `part` is a list index or a dict key: the model inside stays the same.
    model = _inner_model(annotation)
    return sorted(model.model_fields) if _is_model(model) else []


def _is_model(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseModel)


def _inner_model(annotation: Any) -> Any:
    """Unwrap list[M], dict[K, M], M | None down to the model class M, if there is one."""
    if _is_model(annotation):
        return annotation
    for arg in typing.get_args(annotation):
        inner = _inner_model(arg)
        if _is_model(inner):
            return inner
    return annotation
