"""What the analysis owns beside the fits: its settings and arm order, its input errors (named
as keywords, re-spelled as flags by the CLI), its one number format, and its store tables."""

from __future__ import annotations

import math
import subprocess
import sys
import typing

import duckdb
import numpy as np
import pytest

from analysis.errors import ANALYSIS, ArgumentError
from analysis.format import estimate, math_number, number, percent, size
from analysis.record import save_analysis
from analysis.scaling import analyse
from analysis.schema import ANALYSIS_MIGRATIONS
from analysis.settings import ALGORITHM_ORDER, AnalysisSettings
from scaler.layout import Layout
from scaler.spec.schema import Algorithm
from scaler.store import MIGRATIONS, connect, migrate
from synthetic_points import synthetic_points


def test_the_arm_order_is_the_specs_algorithms():
    assert ALGORITHM_ORDER == typing.get_args(Algorithm)


def test_reading_the_settings_is_light():
    code = (
        "import analysis.settings, sys; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'numpy', 'scipy', 'duckdb', 'matplotlib', 'pandas'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------------------------
# Errors.


def test_an_argument_error_speaks_keywords_and_the_cli_respells_it():
    error = ArgumentError(
        "points.csv",
        "line 3: value",
        "with higher_is_better=True the values must be in [0, 1] after scale=; give scale=100",
        arguments=("scale", "higher_is_better"),
        in_file=True,
    )
    assert str(error).startswith("points.csv: line 3: value: with higher_is_better=True")
    flags = {"scale": "--scale", "higher_is_better=True": "--direction higher"}
    spelled = str(error.spelled("command line", flags))
    assert spelled == (
        "points.csv: line 3: value: with --direction higher the values must be in [0, 1] after "
        "--scale; give --scale 100"
    )


def test_a_setting_error_names_the_keyword_then_the_flag():
    error = ArgumentError(ANALYSIS, "confidence", "Input should be less than 1")
    assert str(error) == "analysis: confidence: Input should be less than 1"
    spelled = error.spelled("command line", {"confidence": "--confidence"})
    assert str(spelled) == "command line: --confidence: Input should be less than 1"


# --------------------------------------------------------------------------------------------
# One number format.


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3.5512, "3.55"),
        (1234.5, "1234"),  # was 1.23e+03 in `scaler fit` and 1234 in the report
        (math.inf, "∞"),  # was inf in `scaler fit` and ∞ in the report
        (-math.inf, "-∞"),
        (72855.2, "72855"),
        (1.5e5, "1.50e+05"),
        (8e-11, "8.00e-11"),
        (999.7, "1000"),
        (0.00123, "0.00123"),
        (0.0, "0"),
        (None, "–"),
        (math.nan, "–"),
    ],
)
def test_a_number_reads_the_same_everywhere(value, text):
    assert number(value) == text


def test_intervals_percentages_sizes_and_labels_use_the_same_rule():
    assert estimate(15.5, 4.02, math.inf) == "15.5 [4.02, ∞]"
    assert estimate(2.0, math.nan, math.nan) == "2"
    assert percent(0.1234, signed=True) == "+12.3%" and percent(None) == "–"
    assert size(4000) == "4,000" and size(2.5) == "2.5"
    assert math_number(3400) == "3400" and math_number(3.4e5) == r"3.4\times10^{5}"


# --------------------------------------------------------------------------------------------
# The analysis' tables.


def test_the_analysis_tables_are_its_own_migrations(tmp_path):
    con = connect(Layout(tmp_path / "new"))
    try:
        assert migrate(con, ANALYSIS_MIGRATIONS) == [name for name, _ in ANALYSIS_MIGRATIONS]
        assert migrate(con, ANALYSIS_MIGRATIONS) == []
        con.execute("SELECT method FROM multipliers").fetchall()  # 005 altered 004's table
        assert not {name for name, _ in ANALYSIS_MIGRATIONS} & {name for name, _ in MIGRATIONS}
    finally:
        con.close()


def test_a_database_made_before_the_tables_moved_is_not_migrated_again(tmp_path):
    """Such a database recorded 001 to 006 in one list; opening it and saving an analysis
    applies nothing (the names are the same) and finds the tables there."""
    layout = Layout(tmp_path / "old")
    layout.root.mkdir(parents=True)
    old = duckdb.connect(str(layout.database))
    old.execute("CREATE TABLE schema_migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ)")
    for name, sql in sorted(MIGRATIONS + ANALYSIS_MIGRATIONS):
        old.execute(sql)
        old.execute("INSERT INTO schema_migrations VALUES (?, now())", [name])
    old.close()
    con = connect(layout)
    try:
        assert migrate(con, ANALYSIS_MIGRATIONS) == []
    finally:
        con.close()
    points = synthetic_points(np.random.default_rng(0), {"sft": 1.0, "rft": 2.0}, problems=50)
    save_analysis(layout, analyse(points, AnalysisSettings(resamples=0), "synthetic"))
    con = connect(layout, read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM analyses").fetchone() == (1,)
        assert con.execute("SELECT count(*) FROM shared_fits").fetchone() == (1,)
    finally:
        con.close()
