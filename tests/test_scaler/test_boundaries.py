"""The three packages keep to their rooms: what each may import from the others, read from the
source (not from a run), so a new leak is a test failure rather than a habit.

- runners/ imports neither scaler/ nor analysis/, and no stage imports another stage;
- scaler/ takes from analysis/ only its settings, except the CLI, which ties the three together;
- scaler/ takes from runners/ the stages' declared settings and contracts and the few pure
  helpers a spec is checked with;
- analysis/ takes from scaler/ its store, layout, errors, step hashing and terminal tables; the
  report's provenance page also expands the saved spec's plan.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import ROOT

CLI = {"scaler/cli.py", "scaler/commands.py", "scaler/verify_file.py"}

SCALER_FROM_RUNNERS = {
    "runners.stages",  # the stages' Config/Settings models and their declared inputs
    *(
        f"runners.stages.{stage}"
        for stage in (
            "build evaluate generate merge prepare pretrain rollout sample source train verify"
        ).split()
    ),
    "runners.files",  # the exchanged files and Parquet schemas the store loads
    "runners.model",
    "runners.prompts",
    "runners.compute_budget",
    "runners.progress",  # the variable naming a step's progress file, set by its job
    "runners.shards",  # the ranges the plan cuts a sharded stage's problems into
    "runners.readers",  # counting and hashing the data files a spec names
    "runners.judging.conventions",  # the verifier's identity, part of judging steps' ids
    "runners.worlds.demo",  # the demo world's vocabulary, to count a tiny model's parameters
    "runners.worlds.demo_tokenizer",
    "runners.training",  # the step budget of a size, which the cost estimate prices
    "runners",  # the worlds package, whose solutions the cost estimate counts tokens of
    "runners.credit",  # splitting a solution into steps, for the rollouts' token counts
}
ANALYSIS_FROM_SCALER = {
    "scaler.errors",
    "scaler.layout",
    "scaler.store",
    "scaler.fingerprint",
    "scaler.text",
}
REPORT_PROVENANCE = {"scaler.plan", "scaler.spec.schema", "scaler.status", "scaler.cost_view"}
SCALER_FROM_ANALYSIS = {"analysis.settings", "analysis.format"}  # format: the cost's numbers
# `scaler suggest` prices candidates with the plan and forecasts them with the analysis: the one
# orchestrator module that reads the points, as `scaler fit` (the CLI) does.
SUGGEST = {"analysis.experiment", "analysis.points", "analysis.forecast"}


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function (`from a import b` as a)."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _from(modules: set[str], package: str) -> set[str]:
    return {m for m in modules if m == package or m.startswith(package + ".")}


@pytest.mark.parametrize("path", _sources("runners"), ids=_name)
def test_runners_import_neither_scaler_nor_analysis(path):
    modules = _imports(path)
    assert not _from(modules, "scaler") | _from(modules, "analysis")


@pytest.mark.parametrize("path", _sources("runners/stages"), ids=_name)
def test_no_stage_imports_another(path):
    stages = {f"runners.stages.{p.stem}" for p in _sources("runners/stages")}
    assert not (_imports(path) & stages) - {f"runners.stages.{path.stem}"}


@pytest.mark.parametrize("path", _sources("scaler"), ids=_name)
def test_scaler_takes_from_the_others_only_what_they_declare(path):
    modules = _imports(path)
    if _name(path) in CLI:
        return
    allowed = SCALER_FROM_ANALYSIS | (SUGGEST if path.stem == "suggest" else set())
    assert _from(modules, "analysis") <= allowed
    assert _from(modules, "runners") <= SCALER_FROM_RUNNERS


@pytest.mark.parametrize("path", _sources("analysis"), ids=_name)
def test_analysis_takes_from_scaler_its_store_and_layout(path):
    allowed = ANALYSIS_FROM_SCALER | (
        REPORT_PROVENANCE if path.stem == "report_provenance" else set()
    )
    assert _from(_imports(path), "scaler") - {"scaler"} <= allowed
