"""The points a scaling analysis fits: one per trained model, grouped into arms.

Design
------
Every source of points (an experiment's DuckDB, a CSV of published results, a notebook's frame)
becomes one :class:`Points`: per model its arm, data size, seed and metric value, plus, where the
store has them, the per-problem outcomes on the eval set (models x problems). The outcomes are
what the bootstrap resamples; with them the error of a model is the mean over problems, so the
value and the outcomes never disagree.

The fitted quantity is always an error (lower is better, positive): ``1 - value`` for a score
whose higher values are better (accuracy, pass@k, maj@k), the value itself otherwise. A perfect
score has error 0, which a power law in log space cannot take; it is fitted as half a problem
wrong (``0.5 / n_problems``), the usual continuity correction.
"""

from __future__ import annotations

import csv
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from analysis.fit import FloatArray
from scaler.errors import SpecError
from scaler.layout import Layout
from scaler.spec import Algorithm, arm_name

METRIC_COLUMNS = {"accuracy": "correct", "pass_at_k": "pass_at_k", "maj_at_k": "maj_at_k"}
"""Metric -> the eval_problems column holding its per-problem outcome."""

FACETS = ("source", "algorithm", "model")


@dataclass(frozen=True)
class Points:
    """Per model: arm, size, seed, value; optionally the per-problem outcomes."""

    metric: str
    higher_is_better: bool
    arm: np.ndarray
    size: FloatArray
    seed: np.ndarray
    """Seed per model; -1 where the source of the points gave none."""
    value: FloatArray
    facets: dict[str, np.ndarray] = field(default_factory=dict)
    """Descriptive columns per model (source, algorithm, model) for grouping and plots."""
    outcomes: FloatArray | None = None
    """(models, problems): 1 correct, 0 wrong, nan where a model has no row for the problem."""
    eval_size: int | None = None
    """Problems behind each value, where known: sets the zero-error floor and, without
    outcomes, the binomial resampling of a value."""

    def __len__(self) -> int:
        return int(self.size.size)

    @property
    def arms(self) -> list[str]:
        return sorted(set(self.arm.tolist()), key=self.arm.tolist().index)

    @property
    def error(self) -> FloatArray:
        return self.to_error(self.value)

    def to_error(self, value: FloatArray) -> FloatArray:
        """Value -> the positive error fitted, with a perfect score floored (see the module)."""
        error = 1.0 - value if self.higher_is_better else np.asarray(value, dtype=float)
        return np.maximum(error, self.error_floor)

    def to_value(self, error: FloatArray) -> FloatArray:
        return 1.0 - error if self.higher_is_better else error

    @property
    def error_floor(self) -> float:
        return 0.5 / self.eval_size if self.eval_size else 0.0

    def select(self, mask: np.ndarray) -> Points:
        """The models where ``mask`` holds (all arrays cut alike)."""
        return replace(
            self,
            arm=self.arm[mask],
            size=self.size[mask],
            seed=self.seed[mask],
            value=self.value[mask],
            facets={name: column[mask] for name, column in self.facets.items()},
            outcomes=None if self.outcomes is None else self.outcomes[mask],
        )

    def of_arm(self, arm: str) -> Points:
        return self.select(self.arm == arm)

    def facet_of(self, arm: str, name: str) -> Any:
        """An arm's value of a descriptive column, or None."""
        column = self.facets.get(name)
        return None if column is None else column[self.arm == arm][0]

    def frame(self):
        """A pandas DataFrame: one row per model (notebooks)."""
        import pandas as pd

        return pd.DataFrame(
            {
                "arm": self.arm,
                **self.facets,
                "size": self.size,
                "seed": self.seed,
                self.metric: self.value,
                "error": self.error,
            }
        )


# --------------------------------------------------------------------------------------------
# From an experiment's results store.

_OUTCOMES_SQL = """
SELECT s.step_id, s.source, s.algorithm, s.model, s.size, s.seed, p.problem_id,
       CAST(p.{column} AS DOUBLE) AS outcome
FROM eval_problems p JOIN steps s USING (step_id)
WHERE s.stage = 'evaluate' AND s.eval_set = ?
ORDER BY s.source, list_position(?, s.algorithm), s.size, s.seed, s.step_id, p.problem_id
"""


def load_points(layout: Layout, eval_set: str = "test", metric: str = "accuracy") -> Points:
    """Every evaluated model of an experiment on ``eval_set``, with its per-problem outcomes."""
    from scaler.store import connect

    if metric not in METRIC_COLUMNS:
        raise SpecError("command line", "--metric", f"expected one of {list(METRIC_COLUMNS)}")
    con = connect(layout, read_only=True)
    try:
        columns = con.execute(
            _OUTCOMES_SQL.format(column=METRIC_COLUMNS[metric]),
            [eval_set, list(typing.get_args(Algorithm))],  # arms in the spec's algorithm order
        )
        rows = columns.fetchnumpy()
    finally:
        con.close()
    if len(rows["step_id"]) == 0:
        raise SpecError(
            "command line", "--eval-set", f"no evaluations on {eval_set!r} in {layout.database}"
        )
    outcome = np.ma.filled(np.ma.asarray(rows["outcome"], dtype=float), np.nan)  # null -> nan
    if np.isnan(outcome).all():
        raise SpecError(
            "command line",
            "--metric",
            f"{metric} was not measured on {eval_set!r}: evaluate with stages.evaluate.samples "
            "= k >= 2",
        )
    import pandas as pd

    # factorize numbers models and problems in order of appearance: the query's order.
    model_row, step_ids = pd.factorize(rows["step_id"])
    problem_column, problem_ids = pd.factorize(rows["problem_id"])
    model_index = np.unique(model_row, return_index=True)[1]  # each model's first row
    outcomes = np.full((step_ids.size, problem_ids.size), np.nan)
    outcomes[model_row, problem_column] = outcome

    sources = np.asarray(rows["source"], dtype=object)[model_index]
    algorithms = np.asarray(rows["algorithm"], dtype=object)[model_index]
    n_sources = len(set(sources.tolist()))
    return Points(
        metric=metric,
        higher_is_better=True,
        arm=np.array([arm_name(s, a, n_sources) for s, a in zip(sources, algorithms, strict=True)]),
        size=np.asarray(rows["size"], dtype=float)[model_index],
        seed=np.asarray(rows["seed"], dtype=int)[model_index],
        value=np.nanmean(outcomes, axis=1),
        facets={
            "source": sources,
            "algorithm": algorithms,
            "model": np.asarray(rows["model"], dtype=object)[model_index],
        },
        outcomes=outcomes,
        eval_size=int(problem_ids.size),
    )


# --------------------------------------------------------------------------------------------
# From a CSV of points (published results, other tools).

_REQUIRED = ("arm", "size", "value")


def read_points_csv(
    path: Path,
    *,
    higher_is_better: bool,
    scale: float = 1.0,
    eval_size: int | None = None,
    metric: str = "value",
) -> Points:
    """Points from a CSV with columns arm, size, value and optional seed (and any descriptive
    columns, kept as facets). ``value / scale`` is the metric; with ``higher_is_better`` it must
    lie in [0, 1] (an accuracy), otherwise it must be positive (an error or a loss)."""
    where = str(path)
    if not path.is_file():
        raise SpecError(where, "--points", "no such file")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in _REQUIRED if name not in header]
        if missing:
            raise SpecError(
                where, "columns", f"missing {missing}; expected arm, size, value and optional seed"
            )
        records = [{k.strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    if not records:
        raise SpecError(where, "rows", "no points")
    arms, sizes, seeds, values = [], [], [], []
    for line, record in enumerate(records, start=2):
        arms.append(_text(where, line, record, "arm"))
        sizes.append(_number(where, line, record, "size", positive=True))
        values.append(_number(where, line, record, "value") / scale)
        seeds.append(int(_number(where, line, record, "seed")) if record.get("seed") else -1)
    value = np.array(values)
    _check_range(where, value, higher_is_better, scale)
    facets = {
        name: np.array([record[name] for record in records], dtype=object)
        for name in header
        if name not in (*_REQUIRED, "seed")
    }
    return Points(
        metric=metric,
        higher_is_better=higher_is_better,
        arm=np.array(arms),
        size=np.array(sizes),
        seed=np.array(seeds),
        value=value,
        facets=facets,
        eval_size=eval_size,
    )


def _text(where: str, line: int, record: dict[str, str], column: str) -> str:
    if not record.get(column):
        raise SpecError(where, f"line {line}: {column}", "empty")
    return record[column]


def _number(
    where: str, line: int, record: dict[str, str], column: str, positive: bool = False
) -> float:
    text = _text(where, line, record, column)
    try:
        number = float(text)
    except ValueError:
        raise SpecError(
            where, f"line {line}: {column}", f"expected a number, got {text!r}"
        ) from None
    if not np.isfinite(number) or (positive and number <= 0):
        raise SpecError(
            where, f"line {line}: {column}", f"expected a {'positive ' if positive else ''}"
            f"finite number, got {text!r}"
        )  # fmt: skip
    return number


def _check_range(where: str, value: FloatArray, higher_is_better: bool, scale: float) -> None:
    if higher_is_better and (value.min() < 0 or value.max() > 1):
        hint = " (percentages? give --scale 100)" if scale == 1 and value.max() <= 100 else ""
        raise SpecError(
            where,
            "value",
            f"with --direction higher the values must be scores in [0, 1] after --scale; "
            f"got {value.min():g} to {value.max():g}{hint}",
        )
    if not higher_is_better and value.min() <= 0:
        raise SpecError(
            where,
            "value",
            "with --direction lower the values must be positive errors or losses; "
            f"got a minimum of {value.min():g}",
        )
