"""Content fingerprints: canonical JSON and the short hash that names a step.

A fingerprint must mean the same thing on every machine and in every run, so values without a
canonical JSON form (sets, objects, NaN, infinities) are rejected instead of being str()-ed.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel

HASH_LENGTH = 16


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} value {value!r} has no canonical JSON form")


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces; raises TypeError/ValueError on ambiguous values."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), allow_nan=False, default=_refuse
    )


def content_hash(value: Any) -> str:
    """The first HASH_LENGTH hex digits of the SHA-256 of the canonical JSON of value."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:HASH_LENGTH]


def output_fields(config) -> dict[str, Any]:
    """The config fields that change a step's output, as JSON-ready values.

    A field declared with `json_schema_extra={"affects_output": False}` (a logging interval, a
    batch size that only trades memory for speed) is left out, so changing it reuses the cache.
    One declared with `json_schema_extra={"omitted_when_none": True}` is left out while it is
    None, in the config and in any model it holds (the demo world's `skills`): a field added to a
    stage keeps the ids of the configs that do not set it.
    """
    config_class: type[BaseModel] = type(config)
    dumped = config.model_dump(mode="json", exclude=fields_without_effect(config_class))
    return _without_unset_additions(config, dumped)


def _without_unset_additions(model: BaseModel, dumped: dict[str, Any]) -> dict[str, Any]:
    for name in fields_omitted_when_none(type(model)):
        if dumped.get(name, ...) is None:
            del dumped[name]
    for name, value in dumped.items():
        held: Any = getattr(model, name, None)
        if isinstance(value, dict) and hasattr(type(held), "model_fields"):
            _without_unset_additions(held, value)
    return dumped


@cache
def fields_without_effect(config_class: type[BaseModel]) -> frozenset[str] | None:
    skip = frozenset(
        name
        for name, info in config_class.model_fields.items()
        if isinstance(info.json_schema_extra, dict)
        and info.json_schema_extra.get("affects_output") is False
    )
    return skip or None


@cache
def fields_omitted_when_none(config_class: type[BaseModel]) -> tuple[str, ...]:
    return tuple(
        name
        for name, info in config_class.model_fields.items()
        if isinstance(info.json_schema_extra, dict)
        and info.json_schema_extra.get("omitted_when_none") is True
    )


class IntVariants:
    """Configs of one class that differ from `config` only in some integer fields (a train
    config's size and seed), made and hashed without validating and dumping each one.

    The canonical JSON of the output fields is written once with a mark in each varying field;
    a variant's text puts its integers in the marks' places, which is the text `output_fields`
    and `canonical_json` would give for it, character for character, so its hash is the same.
    Each distinct value of a field is validated once, in `config` with that field alone changed:
    fit for fields that no validator relates to each other.
    """

    def __init__(self, config: BaseModel, varying: tuple[str, ...]) -> None:
        self.config = config
        dumped = output_fields(config)
        marks = {}
        for name in varying:
            if type(dumped.get(name)) is not int:
                raise TypeError(f"{type(config).__name__}.{name} is not an output integer field")
            dumped[name] = marks[name] = f"\x00{name}\x00"
        text = canonical_json(dumped)
        self.pieces: list[str] = []
        self.slots: list[str] = []
        for name, mark in sorted(marks.items(), key=lambda item: text.index(json.dumps(item[1]))):
            quoted = json.dumps(mark)
            if text.count(quoted) != 1:
                raise ValueError(f"the mark of {name} is not unique in the config's JSON")
            before, text = text.split(quoted)
            self.pieces.append(before)
            self.slots.append(name)
        self.pieces.append(text)
        self.checked: set[tuple[str, int]] = set()

    def make(self, **values: int) -> tuple[BaseModel, str]:
        """The config with `values` in its varying fields, and its config hash."""
        for name, value in values.items():
            if (name, value) not in self.checked:
                if type(value) is not int:
                    raise TypeError(f"{name} must be an int, got {value!r}")
                type(self.config).model_validate(self.config.model_dump() | {name: value})
                self.checked.add((name, value))
        text = self.pieces[0]
        for name, piece in zip(self.slots, self.pieces[1:], strict=True):
            text += str(values[name]) + piece
        digest = hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]
        return self._copy(values), digest

    def _copy(self, values: dict[str, int]) -> BaseModel:
        # What `model_copy(update=values)` returns, in a third of its time (it copies the
        # field, extra and private dicts first); a model with extra or private fields is left
        # to it.
        base = self.config
        if base.__pydantic_extra__ or base.__pydantic_private__:
            return base.model_copy(update=values)
        clone = type(base).__new__(type(base))
        object.__setattr__(clone, "__dict__", base.__dict__ | values)
        object.__setattr__(clone, "__pydantic_fields_set__", base.model_fields_set | values.keys())
        object.__setattr__(clone, "__pydantic_extra__", None)
        object.__setattr__(clone, "__pydantic_private__", None)
        return clone
