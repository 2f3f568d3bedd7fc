"""Loading a spec: OmegaConf reads the YAML, merges `key=value` overrides and resolves
interpolations (nothing in a spec is executed); `Spec` validates (its rules across fields are
scaler.spec.checks); every problem becomes one `SpecError` naming the file (or `overrides`), the
field path and what was expected, before anything is written.
The data files the spec names are hashed here, so a step's id follows their content.
"""

from __future__ import annotations

import math
import re
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from runners.readers import count_records, fingerprint
from scaler.errors import ArgumentError, SpecError
from scaler.spec.checks import check_sizes_fit_pool
from scaler.spec.schema import SOURCE_KINDS, WORLD_NAMES, RealWorld, Spec, UserSource

OVERRIDES = "overrides"
"""The source of an error in an override (`load_spec(path, overrides)`): the CLI, where they are
the command line's `key=value` words, says so in its own words."""


def load_spec(path: str | Path, overrides: Sequence[str] = ()) -> Spec:
    """Load, merge overrides, resolve and validate; raise SpecError on the first problem."""
    source = str(path)
    raw = _load_raw(Path(path), list(overrides))
    try:
        spec = Spec.model_validate(raw)
    except ValidationError as error:
        raise _spec_error(source, error) from None
    _refuse_non_finite(source, spec.model_dump())
    _refuse_lax_numbers(source, spec.model_dump(), raw)
    _fingerprint_data(spec, source)
    check_sizes_fit_pool(spec, source)
    _count_eval_sets(spec, source)
    return spec


def _refuse_non_finite(source: str, value: Any, where: str = "") -> None:
    """inf and nan are valid YAML floats (and `lr=inf` parses as one) but no setting means them,
    and step ids cannot hash them: refuse them in the validated spec, naming the field, for
    every model the spec composes."""
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(source, where or "(top level)", f"expected a finite number, got {value}")
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        _refuse_non_finite(source, item, f"{where}.{key}" if where else str(key))


INT64 = 2**63
"""Whole numbers beyond int64 fit no array, tensor or DuckDB column a step writes them to."""


def _refuse_lax_numbers(source: str, value: Any, raw: Any, where: str = "") -> None:
    """A number field given `true` (pydantic reads it as 1), and whole numbers beyond int64:
    refused by field, comparing the validated spec with what was written, for every model the
    spec composes (the runners' settings among them)."""
    field = where or "(top level)"
    if isinstance(raw, bool) and not isinstance(value, bool) and isinstance(value, int | float):
        raise SpecError(source, field, f"expected a number, got {str(raw).lower()}")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= INT64:
        raise SpecError(source, field, f"expected a whole number below 2**63, got {value}")
    if isinstance(value, dict) and isinstance(raw, dict):
        for key, item in value.items():
            if key in raw:
                _refuse_lax_numbers(source, item, raw[key], f"{where}.{key}" if where else key)
    elif isinstance(value, list) and isinstance(raw, list) and len(value) == len(raw):
        for index, (item, written) in enumerate(zip(value, raw, strict=True)):
            _refuse_lax_numbers(source, item, written, f"{where}.{index}" if where else str(index))


def data_paths(spec: Spec) -> dict[str, str]:
    """Field path in the spec -> each data file or folder it names."""
    paths = {}
    if isinstance(spec.world, RealWorld):
        paths["world.train"] = spec.world.train
        paths |= {f"world.eval_files.{name}": path for name, path in spec.world.eval_files.items()}
    for i, source in enumerate(spec.sources):
        if isinstance(source, UserSource):
            paths[f"sources.{i}.path"] = source.path
    return paths


def _fingerprint_data(spec: Spec, source: str) -> None:
    """Hash every data file the spec names; a missing one is a SpecError naming its field."""
    for field, path in data_paths(spec).items():
        if path in spec._checksums:
            continue
        if not Path(path).exists():
            raise SpecError(source, field, f"no such file or folder: {path}")
        try:
            spec._checksums[path] = fingerprint(Path(path))
        except OSError as error:
            raise SpecError(source, field, f"cannot read {path}: {error}") from None


def _count_eval_sets(spec: Spec, source: str) -> None:
    """With stages.evaluate.shard_size, count the problems of each evaluated file of a real
    world, which the plan cuts into shards; a file whose records are not counted before it
    is read (not JSONL) is a SpecError. With stages.evaluate.problems alone, count those that
    can be counted, so that a `problems` over a file's size names the same step as all."""
    settings = spec.stages.evaluate
    if not isinstance(spec.world, RealWorld):
        return
    if settings.shard_size is None and settings.problems is None:
        return
    for name in spec.eval_sets:
        if name == "val":
            continue
        path = spec.world.eval_files[name]
        count = count_records(Path(path))
        if count is None and settings.shard_size is None:
            continue
        if count is None:
            raise SpecError(
                source,
                "stages.evaluate.shard_size",
                f"eval set {name!r} is read from {path}, whose problems are counted before "
                "running only in a JSONL file; shard a JSONL copy of it, or unset shard_size",
            )
        spec._eval_sizes[name] = count


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
        raise _yaml_error(source, path, error) from None
    if not OmegaConf.is_dict(config):
        raise SpecError(source, "", "expected a mapping of keys at the top level")
    for item in overrides:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise ArgumentError(
                OVERRIDES, printable(item), "expected an override of the form key=value"
            )
    try:
        OmegaConf.from_dotlist(overrides)
    except (OmegaConfBaseException, YAMLError, ValueError) as error:
        raise ArgumentError(OVERRIDES, printable(" ".join(overrides)), _one_line(error)) from None
    merged: Any = config
    for item in overrides:  # one at a time, so that a merge that fails names its override
        try:
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist([item]))
        except (OmegaConfBaseException, TypeError, ValueError) as error:
            # TypeError: a list given where the spec has a mapping, or the other way round.
            problem = f"cannot merge it: {_one_line(error)}"
            raise ArgumentError(OVERRIDES, printable(item), problem) from None
    try:
        # The top level was checked to be a mapping above, so the container is a dict.
        return typing.cast(dict, OmegaConf.to_container(merged, resolve=True))
    except (OmegaConfBaseException, YAMLError, ValueError) as error:
        raise SpecError(source, printable(_omegaconf_key(error)), _one_line(error)) from None


def _yaml_error(source: str, path: Path, error: Exception) -> SpecError:
    """A YAML error at its line and column, with the key written there when there is one:
    `bad.yaml: stages.train (line 5, column 4): not valid YAML: did not find expected key`."""
    mark = getattr(error, "problem_mark", None)
    if mark is None:
        return SpecError(source, "", f"not valid YAML: {_one_line(error)}")
    where = f"line {mark.line + 1}, column {mark.column + 1}"
    key = _key_at(path, mark.line)
    problem = getattr(error, "problem", None) or _one_line(error)
    context, context_mark = getattr(error, "context", None), getattr(error, "context_mark", None)
    if context and context_mark is not None:
        problem += f" ({context} from line {context_mark.line + 1})"
    problem = printable(problem)
    return SpecError(source, f"{key} ({where})" if key else where, f"not valid YAML: {problem}")


def _key_at(path: Path, line: int) -> str:
    """The dotted key written on `line` (0-based) of a YAML file, from the indentation of the
    lines above it; "" where the line holds no key."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    if line >= len(lines) or not (own := re.match(r"(\s*)([\w.-]+)\s*:", lines[line])):
        return ""
    keys, indent = [own.group(2)], len(own.group(1))
    for text in reversed(lines[:line]):
        above = re.match(r"(\s*)([\w.-]+)\s*:", text)
        if above and len(above.group(1)) < indent:
            keys.insert(0, above.group(2))
            indent = len(above.group(1))
    return ".".join(keys)


def _one_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return printable(text[0]) if text else type(error).__name__


def printable(text: str) -> str:
    """`text` with its control characters and line breaks escaped (`\\n`, `\\x0c`): a key or
    an override the user typed is quoted in a one-line error, and must not break that line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _omegaconf_key(error: Exception) -> str:
    return str(getattr(error, "full_key", "") or "")


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
    if not field and first["type"] == "value_error":
        # A check across fields names the field it is about: "sources.1.train_size: ...".
        named = re.match(r"([\w.\[\]-]+): (.*)", message, re.DOTALL)
        if named:
            field, message = named.groups()
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return SpecError(source, printable(field) or "(top level)", printable(message))


def _is_union_tag(part: Any) -> bool:
    # Discriminated unions put the tag (the world's name, the kind of source) into the error
    # location, and a bad dict key is located at "<dict>.[key]".
    return part in WORLD_NAMES or part in SOURCE_KINDS or part == "[key]"


def _valid_keys(loc: list) -> list[str]:
    """The field names of the model at `loc` inside Spec, for 'unknown key' errors."""
    annotation: Any = Spec
    for part in loc:
        model = _inner_model(annotation, part)
        if not _is_model(model):
            return []
        if isinstance(part, str) and part in model.model_fields:
            annotation = model.model_fields[part].annotation
        # Otherwise `part` is a list index or a dict key: the model inside stays the same.
    model = _inner_model(annotation)
    return sorted(model.model_fields) if _is_model(model) else []


def _is_model(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseModel)


def _inner_model(annotation: Any, field: Any = None) -> Any:
    """Unwrap list[M], dict[K, M], M | None down to the model class M, if there is one; of a
    union of models (the worlds), the first that has `field`, else the first."""
    if _is_model(annotation):
        return annotation
    models = [
        inner for arg in typing.get_args(annotation) if _is_model(inner := _inner_model(arg, field))
    ]
    with_field = [model for model in models if field in model.model_fields]
    return (with_field or models or [annotation])[0]
