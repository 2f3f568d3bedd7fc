"""Scaling analysis of scaler's results: fits, bootstrap intervals, multipliers, plots, reports.

For notebooks: ``open_experiment(name)`` (see analysis.experiment), ``analyse_csv(path, ...)``
for any table of points, and ``analyse(points, settings, data)`` on points of one's own.

The names below are imported on first use (PEP 562): `scaler` reads `analysis.settings` to
build its spec, and that must not pull in numpy, scipy or DuckDB.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analysis.experiment import Experiment, analyse_csv, open_experiment
    from analysis.points import Points
    from analysis.result import ScalingAnalysis
    from analysis.scaling import analyse

_HOMES = {
    "Experiment": "analysis.experiment",
    "analyse_csv": "analysis.experiment",
    "open_experiment": "analysis.experiment",
    "Points": "analysis.points",
    "ScalingAnalysis": "analysis.result",
    "analyse": "analysis.scaling",
}

__all__ = ["Experiment", "Points", "ScalingAnalysis", "analyse", "analyse_csv", "open_experiment"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value  # the next look-up is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
