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
import io
import math
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from analysis.fit import FloatArray
from scaler.errors import SpecError
from scaler.layout import Layout
from scaler.spec.schema import Algorithm, arm_name

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

    def clip_error(self, error: FloatArray) -> FloatArray:
        """An error within the metric's range: a score's error lies in [0, 1]."""
        return np.clip(error, self.error_floor, 1.0 if self.higher_is_better else np.inf)

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
_EXPECTED = "expected arm, size, value and optional seed"


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
    lie in [0, 1] (an accuracy), otherwise it must be positive (an error or a loss).

    A table copied from a paper goes wrong quietly unless it is read strictly: UTF-8 (a
    byte-order mark is fine), blank lines skipped, every other row as many fields as the header,
    no column named twice, and where there is a seed column every row's seed a whole number >= 0.
    A model is one row: with a seed column no (arm, size, seed) comes twice; without one the rows
    of an (arm, size) are its seeds, and two rows alike in every column are refused (a copied row
    would narrow the intervals to nothing; distinct runs that scored alike need a seed column).
    Values that are all fractions although ``scale`` > 1 says percentages are refused too. Every
    error names the file, the line and the column.
    """
    where = str(path)
    if not math.isfinite(scale) or scale <= 0:
        raise SpecError(where, "--scale", f"expected a positive number, got {scale:g}")
    rows = _csv_rows(where, path)
    if not rows:
        raise SpecError(where, "line 1", f"no header; {_EXPECTED}")
    header_line, header = rows[0]
    columns = _columns(where, header_line, header)
    if len(rows) == 1:
        raise SpecError(where, "rows", "no points")
    has_seed = "seed" in columns
    facet_names = [name for name in columns if name not in (*_REQUIRED, "seed")]
    lines, arms, sizes, seeds, values = [], [], [], [], []
    facets: dict[str, list[str]] = {name: [] for name in facet_names}
    seen: dict[tuple, int] = {}  # a model's key -> the line it was first on
    for line, row in rows[1:]:
        if len(row) != len(columns):
            raise SpecError(
                where, f"line {line}", f"{len(row)} fields, the header has {len(columns)}"
            )
        record = dict(zip(columns, row, strict=True))
        arm = _text(where, line, record, "arm")
        size = _number(where, line, record, "size", positive=True)
        value = _number(where, line, record, "value")
        seed = _seed(where, line, record) if has_seed else -1
        if has_seed:
            key: tuple = (arm, size, seed)
            same = f"arm, size and seed ({arm}, {record['size']}, {record['seed']})"
            advice = "each model (arm, size, seed) is one row"
        else:
            key = (arm, size, value, *(record[name] for name in facet_names))
            same = f"arm, size and value ({arm}, {record['size']}, {record['value']})"
            same += f" and the same {', '.join(facet_names)}" if facet_names else ""
            advice = (
                "the rows at one arm and size are read as its seeds, and two alike in every "
                "column look like a copied row: delete it, or add a seed column if they are "
                "distinct runs"
            )
        if key in seen:
            raise SpecError(where, f"line {line}", f"the same {same} as line {seen[key]}; {advice}")
        seen[key] = line
        lines.append(line)
        arms.append(arm)
        sizes.append(size)
        seeds.append(seed)
        values.append(value)
        for name in facet_names:
            facets[name].append(record[name])
    raw = np.array(values)
    _check_range(where, lines, raw, higher_is_better, scale)
    return Points(
        metric=metric,
        higher_is_better=higher_is_better,
        arm=np.array(arms),
        size=np.array(sizes),
        seed=np.array(seeds),
        value=raw / scale,
        facets={name: np.array(column, dtype=object) for name, column in facets.items()},
        eval_size=eval_size,
    )


def _csv_rows(where: str, path: Path) -> list[tuple[int, list[str]]]:
    """The file's rows, fields stripped, each with the line it starts on; blank lines left out."""
    if not path.is_file():
        raise SpecError(where, "--points", "no such file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SpecError(where, "--points", f"cannot read it ({error.strerror})") from None
    # Bytes that are not UTF-8 become lone surrogates, so the row and column holding the first
    # of them can be named; utf-8-sig drops a byte-order mark (Excel writes one).
    text = data.decode("utf-8-sig", errors="surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[str]]] = []
    header: list[str] = []
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return rows
        except csv.Error as error:
            raise SpecError(where, f"line {line}", f"not a CSV row ({error})") from None
        fields = [cell.strip() for cell in row]
        if not any(fields):
            if len(fields) > 1:
                raise SpecError(where, f"line {line}", "only commas; delete the line")
            continue  # a blank line
        for index, cell in enumerate(fields):
            bad = next((ch for ch in cell if "\udc80" <= ch <= "\udcff"), None)
            if bad is not None:
                column = header[index] if index < len(header) else f"field {index + 1}"
                raise SpecError(
                    where,
                    f"line {line}: {column}",
                    f"not UTF-8 text (byte 0x{ord(bad) - 0xDC00:x}); save the file as UTF-8",
                )
        header = header or fields
        rows.append((line, fields))


def _columns(where: str, line: int, header: list[str]) -> list[str]:
    for index, name in enumerate(header):
        if not name:
            raise SpecError(where, f"line {line}: column {index + 1}", f"no name; {_EXPECTED}")
        if name in header[:index]:
            raise SpecError(
                where,
                f"line {line}: {name}",
                f"the header names this column twice (columns {header.index(name) + 1} and "
                f"{index + 1})",
            )
    missing = [name for name in _REQUIRED if name not in header]
    if missing:
        raise SpecError(where, f"line {line}: header", f"missing {missing}; {_EXPECTED}")
    return header


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


def _seed(where: str, line: int, record: dict[str, str]) -> int:
    """A whole number >= 0: "2" and "2.0" are seed 2; 1.7 is no seed (it used to become 1)."""
    number = _number(where, line, record, "seed")
    if not number.is_integer() or number < 0:
        raise SpecError(
            where, f"line {line}: seed", f"expected a whole number >= 0, got {record['seed']!r}"
        )
    return int(number)


def _check_range(
    where: str, lines: list[int], raw: FloatArray, higher_is_better: bool, scale: float
) -> None:
    """Scores in [0, 1] after ``scale``, or positive errors; ``raw`` is the file's values."""
    if higher_is_better and scale > 1 and 0 < raw.max() <= 1:
        # Percentages all at most 1% are rarer than fractions given with a --scale meant for
        # another table; the rare real case can be given as fractions without --scale.
        raise SpecError(
            where,
            f"lines {lines[0]}-{lines[-1]}: value",
            f"every value is in [0, 1], so they look like fractions already, yet --scale "
            f"{scale:g} would make them {raw.min() / scale:g} to {raw.max() / scale:g}; drop "
            f"--scale (with --direction higher and --scale above 1, values that are all at "
            f"most 1 are refused; give scores under 1% as fractions, without --scale)",
        )
    value = raw / scale
    outside = (value < 0) | (value > 1) if higher_is_better else value <= 0
    if not outside.any():
        return
    first = int(np.argmax(outside))
    if higher_is_better:
        hint = " (percentages? give --scale 100)" if scale == 1 and value.max() <= 100 else ""
        message = (
            f"with --direction higher the values must be scores in [0, 1] after --scale; "
            f"got {value.min():g} to {value.max():g}{hint}"
        )
    else:
        message = (
            "with --direction lower the values must be positive errors or losses; "
            f"got {value[first]:g}"
        )
    raise SpecError(where, f"line {lines[first]}: value", message)
