"""The points a scaling analysis fits: one per trained model, grouped into arms.

Design
------
Every source of points (an experiment's DuckDB, a CSV of published results read by
:mod:`analysis.points_csv`, a notebook's frame) becomes one :class:`Points`: per model its arm,
data size, seed and metric value, plus, where the store has them, the per-problem outcomes on
the eval set (models x problems). The outcomes are what the bootstrap resamples; with them the
error of a model is the mean over problems, so the value and the outcomes never disagree.

The fitted quantity is always an error (lower is better, positive): ``1 - value`` for a score
whose higher values are better (accuracy, pass@k, maj@k), the value itself otherwise. A perfect
score has error 0, which a power law in log space cannot take; it is fitted as half a problem
wrong (``0.5 / n_problems``), the usual continuity correction.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np

from analysis.errors import ANALYSIS, ArgumentError
from analysis.power_law import FloatArray
from analysis.settings import ALGORITHM_ORDER, arm_name
from scaler.layout import Layout

METRIC_COLUMNS = {"accuracy": "correct", "pass_at_k": "pass_at_k", "maj_at_k": "maj_at_k"}
"""Metric -> the eval_problems column holding its per-problem outcome."""

FACETS = ("source", "algorithm", "model")

_Error = TypeVar("_Error", float, FloatArray)
"""An error or errors: :meth:`Points.to_value` takes either and gives back the same kind."""


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

    def clip_error(self, error: FloatArray) -> FloatArray:
        """An error within the metric's range: a score's error lies in [0, 1]."""
        return np.clip(error, self.error_floor, 1.0 if self.higher_is_better else np.inf)

    def to_value(self, error: _Error) -> _Error:
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
        """An arm's value of a descriptive column, or None without the column. Where the arm's
        rows differ in it, their distinct values sorted and joined by ", " (a string, as the
        plots group arms by it and the results store keeps it in a text column)."""
        column = self.facets.get(name)
        if column is None:
            return None
        values = column[self.arm == arm]
        if values.size == 0:
            raise KeyError(f"no arm {arm!r}")
        distinct = sorted({str(value) for value in values})
        return values[0] if len(distinct) == 1 else ", ".join(distinct)

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

# One evaluation per trained model: a model evaluated again (on more problems, with
# stages.evaluate.problems raised, or with other decoding settings) is one point, not two; the
# evaluation with the most problems is kept, the latest of those.
_OUTCOMES_SQL = """
WITH kept AS (
    SELECT s.step_id
    FROM eval_problems p JOIN steps s USING (step_id) JOIN stage_results r USING (step_id)
    WHERE r.stage = 'evaluate' AND s.eval_set = ?
    GROUP BY s.step_id, s.inputs->>'$.model', s.ended_at
    QUALIFY row_number() OVER (
        PARTITION BY s.inputs->>'$.model' ORDER BY count(*) DESC, s.ended_at DESC, s.step_id
    ) = 1
)
SELECT s.step_id, s.source, s.algorithm, s.model, s.size, s.seed, p.problem_id,
       CAST(p.{column} AS DOUBLE) AS outcome
FROM eval_problems p JOIN steps s USING (step_id) JOIN kept USING (step_id)
ORDER BY s.source, list_position(?, s.algorithm), s.size, s.seed, s.step_id, p.problem_id
"""


def load_points(layout: Layout, eval_set: str = "test", metric: str = "accuracy") -> Points:
    """Every evaluated model of an experiment on ``eval_set``, with its per-problem outcomes."""
    from scaler.store import connect

    if metric not in METRIC_COLUMNS:
        raise ArgumentError(ANALYSIS, "metric", f"expected one of {list(METRIC_COLUMNS)}")
    con = connect(layout, read_only=True)
    try:
        columns = con.execute(
            _OUTCOMES_SQL.format(column=METRIC_COLUMNS[metric]),
            [eval_set, list(ALGORITHM_ORDER)],
        )
        rows = columns.fetchnumpy()
    finally:
        con.close()
    if len(rows["step_id"]) == 0:
        raise ArgumentError(
            ANALYSIS, "eval_set", f"no evaluations on {eval_set!r} in {layout.database}"
        )
    # null -> nan
    outcome: FloatArray = np.ma.filled(np.ma.asarray(rows["outcome"], dtype=float), np.nan)
    if np.isnan(outcome).all():
        raise ArgumentError(
            ANALYSIS,
            "metric",
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
