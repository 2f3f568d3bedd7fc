"""Points from a CSV: published results, other tools' tables, read strictly.

A table copied from a paper goes wrong quietly unless it is read strictly, so every row is
checked and every error names the file, the line and the column (and, for a bad argument, the
keyword: see :mod:`analysis.errors`).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from analysis.errors import ArgumentError
from analysis.points import Points
from analysis.power_law import FloatArray
from scaler.errors import SpecError

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
    # Long (~70 lines) for its docstring, the rules a table is read by; the body is ~50 lines.
    where = str(path)
    if not math.isfinite(scale) or scale <= 0:
        raise ArgumentError(
            where, "scale", f"expected a positive number, got {scale:g}", in_file=True
        )
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
        key, same, advice = _model_key(record, (arm, size, value, seed), has_seed, facet_names)
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


def _model_key(
    record: dict[str, str], read: tuple, has_seed: bool, facet_names: list[str]
) -> tuple[tuple, str, str]:
    """What makes a row one model, how to name a repeat of it, and what to do about one."""
    arm, size, value, seed = read
    if has_seed:
        same = f"arm, size and seed ({arm}, {record['size']}, {record['seed']})"
        return (arm, size, seed), same, "each model (arm, size, seed) is one row"
    same = f"arm, size and value ({arm}, {record['size']}, {record['value']})"
    same += f" and the same {', '.join(facet_names)}" if facet_names else ""
    advice = (
        "the rows at one arm and size are read as its seeds, and two alike in every "
        "column look like a copied row: delete it, or add a seed column if they are "
        "distinct runs"
    )
    return (arm, size, value, *(record[name] for name in facet_names)), same, advice


def _csv_rows(where: str, path: Path) -> list[tuple[int, list[str]]]:
    """The file's rows, fields stripped, each with the line it starts on; blank lines left out."""
    if not path.is_file():
        raise ArgumentError(where, "path", "no such file", in_file=True)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ArgumentError(
            where, "path", f"cannot read it ({error.strerror})", in_file=True
        ) from None
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


_RANGE_ARGUMENTS = ("scale", "higher_is_better")


def _check_range(
    where: str, lines: list[int], raw: FloatArray, higher_is_better: bool, scale: float
) -> None:
    """Scores in [0, 1] after ``scale``, or positive errors; ``raw`` is the file's values."""
    if higher_is_better and scale > 1 and 0 < raw.max() <= 1:
        # Percentages all at most 1% are rarer than fractions given with a scale meant for
        # another table; the rare real case can be given as fractions without a scale.
        raise ArgumentError(
            where,
            f"lines {lines[0]}-{lines[-1]}: value",
            f"every value is in [0, 1], so they look like fractions already, yet scale="
            f"{scale:g} would make them {raw.min() / scale:g} to {raw.max() / scale:g}; drop "
            f"scale= (with higher_is_better=True and scale= above 1, values that are all at "
            f"most 1 are refused; give scores under 1% as fractions, without scale=)",
            arguments=_RANGE_ARGUMENTS,
            in_file=True,
        )
    value = raw / scale
    outside = (value < 0) | (value > 1) if higher_is_better else value <= 0
    if not outside.any():
        return
    first = int(np.argmax(outside))
    if higher_is_better:
        hint = " (percentages? give scale=100)" if scale == 1 and value.max() <= 100 else ""
        message = (
            f"with higher_is_better=True the values must be scores in [0, 1] after scale=; "
            f"got {value.min():g} to {value.max():g}{hint}"
        )
    else:
        message = (
            "with higher_is_better=False the values must be positive errors or losses; "
            f"got {value[first]:g}"
        )
    raise ArgumentError(
        where, f"line {lines[first]}: value", message, arguments=_RANGE_ARGUMENTS, in_file=True
    )
