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
