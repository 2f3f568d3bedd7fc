"""Fuzzed specs: every spec is either accepted and plannable, or refused in one line.

Specs are made from the small demo spec of conftest by hypothesis: fields set to values of the
wrong kind (strings, floats, bools, None, lists, mappings, huge and negative integers, inf and
nan, unicode, OmegaConf's `???` and `${...}`), keys deleted or added, sizes repeated, lists
emptied, and overrides in the dotted form `scaler plan` takes after the spec. The property, for
each: `scaler plan` (the real CLI, run in this process) exits 0 and prints a plan with steps,
or exits 2 with one line on stderr naming the spec file (or the override) and a field, with no
traceback; either way nothing is written under the results folder or beside the spec.

The default run is bounded (200 examples, about 20 s); `-m slow` runs 2,000.
"""

from __future__ import annotations

import copy
import re
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from conftest import SMALL_SPEC
from scaler.spec.schema import DemoWorld, ExecutorSettings, Resources, Spec, StageSettings


def _field_paths(model: type[BaseModel], prefix: str = "", depth: int = 0) -> list[str]:
    """Every field of `model` as a dotted path, its sub-models' fields too (three levels)."""
    paths = []
    for name, info in model.model_fields.items():
        paths.append(prefix + name)
        annotation = info.annotation
        inner = [annotation, *typing.get_args(annotation)]
        sub = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if sub is not None and depth < 2:
            paths += _field_paths(sub, f"{prefix}{name}.", depth + 1)
    return paths


PATHS = sorted(
    {
        *(p for p in _field_paths(Spec) if not p.startswith(("world.", "stages.", "executor."))),
        *_field_paths(DemoWorld, "world."),
        *_field_paths(StageSettings, "stages."),
        *_field_paths(ExecutorSettings, "executor."),
        *_field_paths(Resources, "resources.default."),
        *_field_paths(Resources, "resources.train."),
    }
)
"""The spec's fields, where mutations land (the sources' own fields are left to test_spec)."""

ODD_STRINGS = ["", "${nope}", "${experiment}", "???", "inf", "nan", "-0", "1e12", "true",
               "[1,", "{a: 1}", "ßü∂ƒ 漢字", "\t", "null", "0x10", "1_000"]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2, 50, 2**31, 2**32, 2**63, 10**12, 10**23]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("inf"), float("-inf"), float("nan"), 0.5, -0.0, 1e300]),
    st.text(max_size=12),
    st.sampled_from(ODD_STRINGS),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


PLAUSIBLE = st.one_of(
    st.integers(0, 400),
    st.floats(0, 1),
    st.sampled_from(["test", "val", "sft", "teacher", "demo", "x"]),
    st.lists(st.integers(1, 200), min_size=1, max_size=3),
)
"""Values of about the right kind and size, so that some specs are accepted and planned."""


def _set(spec: dict, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        child = spec.get(key)
        if not isinstance(child, dict):
            child = spec[key] = {}
        spec = child
    spec[last] = value


def _delete(spec: dict, dotted: str) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        spec = spec.get(key)
        if not isinstance(spec, dict):
            return
    spec.pop(last, None)


def _override_text(value: Any) -> str:
    """A value as typed after `key=` on the command line (flow YAML, or raw text)."""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...")


@st.composite
def mutated_specs(draw) -> tuple[dict, list[str]]:
    """(a spec, overrides): SMALL_SPEC with one to three mutations."""
    spec = copy.deepcopy(SMALL_SPEC)
    overrides: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["set", "set", "set", "delete", "unknown", "repeat", "empty",
                                     "override", "override"]))  # fmt: skip
        path = draw(st.sampled_from(PATHS))
        if kind == "set":
            _set(spec, path, draw(st.one_of(VALUES, PLAUSIBLE)))
        elif kind == "delete":
            _delete(spec, draw(st.sampled_from([*PATHS, "experiment", "world", "sizes"])))
        elif kind == "unknown":
            parent = path.rpartition(".")[0]
            key = draw(st.text(min_size=1, max_size=8).filter(lambda k: "." not in k))
            _set(spec, f"{parent}.{key}" if parent else key, draw(SCALARS))
        elif kind == "repeat":
            size = draw(st.sampled_from([50, 100, 0, -3]))
            _set(spec, draw(st.sampled_from(["sizes", "seeds", "eval_sets"])), [size, size])
        elif kind == "empty":
            _set(spec, draw(st.sampled_from(["sizes", "seeds", "eval_sets", "algorithms",
                                             "sources", "resources"])), [])  # fmt: skip
        else:
            text = draw(st.one_of(VALUES.map(_override_text), st.text(max_size=10)))
            overrides.append(f"{path}={text}")
    return spec, overrides


def _files(*folders: Path) -> set[Path]:
    return {p for folder in folders if folder.exists() for p in folder.rglob("*")}


TALLY: dict[str, int] = {}
"""How the examples ended (accepted, refused); printed at the end of the module (`-s`)."""


@pytest.fixture(scope="module", autouse=True)
def _print_tally():
    yield
    if TALLY:
        tried = sum(TALLY.values())
        print(f"\nfuzzed specs: {tried} tried, " + ", ".join(f"{n} {k}" for k, n in TALLY.items()))


def check_one(cli, folder: Path, results: Path, spec: dict, overrides: list[str]) -> str:
    """Plan `spec` with `overrides`; assert the property; return "accepted" or "refused"."""
    path = folder / "fuzz.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    before = _files(folder, results)
    run = cli(["plan", str(path), *overrides])
    assert _files(folder, results) == before, "scaler plan wrote a file"
    assert run.code in (0, 2), f"exit {run.code}: {run.err}"
    if run.code == 0:
        steps = re.search(r": (\d+) steps for (\d+) grid cells", run.out)
        assert steps and int(steps[1]) > 0 and int(steps[2]) > 0, run.out
        return "accepted"
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    assert "Traceback" not in run.err and lines[0].startswith("scaler: error: ")
    where = lines[0].removeprefix("scaler: error: ")
    named = where.startswith(f"{path}: ") or any(o.split("=")[0] in where for o in overrides)
    assert named, f"the error names neither the file nor an override: {lines[0]}"
    assert where.count(": ") >= 2 or where.startswith("overrides"), f"no field: {lines[0]}"
    return "refused"


def _fuzz(cli, tmp_path, monkeypatch, spec_and_overrides) -> None:
    results = tmp_path / "results"
    monkeypatch.setenv("SCALER_RESULTS", str(results))
    spec, overrides = spec_and_overrides
    outcome = check_one(cli, tmp_path, results, spec, overrides)
    TALLY[outcome] = TALLY.get(outcome, 0) + 1


FIXTURES_ARE_SHARED = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
"""One tmp_path and cli for all examples: each example checks that nothing new appears."""


@settings(max_examples=200, deadline=None, suppress_health_check=FIXTURES_ARE_SHARED)
@given(mutated_specs())
def test_a_fuzzed_spec_is_plannable_or_refused_in_one_line(cli, tmp_path, monkeypatch, example):
    _fuzz(cli, tmp_path, monkeypatch, example)


@pytest.mark.slow
@settings(max_examples=2000, deadline=None, suppress_health_check=FIXTURES_ARE_SHARED)
@given(mutated_specs())
def test_many_fuzzed_specs(cli, tmp_path, monkeypatch, example):
    _fuzz(cli, tmp_path, monkeypatch, example)


def test_the_small_spec_itself_is_plannable(cli, tmp_path, monkeypatch):
    # The property's other half holds for the unmutated spec: the fuzzer starts from a good one.
    results = tmp_path / "results"
    monkeypatch.setenv("SCALER_RESULTS", str(results))
    assert check_one(cli, tmp_path, results, copy.deepcopy(SMALL_SPEC), []) == "accepted"
