"""Reading a CSV of points (`read_points_csv`, `scaler fit --points`) and `--sizes`: every bad
file is one error naming the file, the line and the column, through the library and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis.points import Points
from analysis.points_csv import read_points_csv
from scaler.cli import _sizes
from scaler.errors import SpecError

HIGHER = {"higher_is_better": True}
LOWER = {"higher_is_better": False}
PERCENT = {"higher_is_better": True, "scale": 100.0}

# (case, file content, read_points_csv keywords, fragments the error must hold besides the file)
BAD_FILES = [
    (
        "more fields than the header",
        "arm,size,value,seed\nsft,100,0.3,0\nsft,200,0.4,0\nsft,400,0.5,0,9\n",
        HIGHER,
        ["line 4: ", "5 fields, the header has 4"],
    ),
    (
        "fewer fields than the header",
        "arm,size,value,seed\nsft,100,0.3,0\nsft,200,0.4,0\nsft,400,0.5\n",
        HIGHER,
        ["line 4: ", "3 fields, the header has 4"],
    ),
    (
        "bytes that are not UTF-8",
        b"arm,size,value,model\nsft,100,0.3,caf\xe9\n",
        HIGHER,
        ["line 2: model: ", "not UTF-8", "0xe9"],
    ),
    (
        "a column named twice",
        "arm,size,value,seed,seed\nsft,100,0.3,0,1\nsft,200,0.4,0,1\n",
        HIGHER,
        ["line 1: seed: ", "twice", "columns 4 and 5"],
    ),
    (
        "a column without a name",
        "arm,size,value,\nsft,100,0.3,\n",
        HIGHER,
        ["line 1: column 4: ", "no name"],
    ),
    (
        "a missing column",
        "arm,size\nsft,100\n",
        HIGHER,
        ["line 1: header: ", "missing ['value']"],
    ),
    (
        "a seed that is not whole",
        "arm,size,value,seed\nsft,100,0.3,2.0\nsft,100,0.31,1.7\nsft,200,0.4,1\n",
        HIGHER,
        ["line 3: seed: ", "whole number", "'1.7'"],
    ),
    (
        "a negative seed",
        "arm,size,value,seed\nsft,100,0.3,-1\n",
        HIGHER,
        ["line 2: seed: ", "whole number >= 0", "'-1'"],
    ),
    (
        "a row without a seed where the column is there",
        "arm,size,value,seed\nsft,100,0.3,0\nsft,100,0.31,\n",
        HIGHER,
        ["line 3: seed: ", "empty"],
    ),
    (
        "fractions with --scale 100",
        "arm,size,value\nsft,100,0.3\nsft,200,0.4\nsft,400,0.45\n",
        PERCENT,
        ["lines 2-4: value: ", "look like fractions already", "drop --scale", "0.003 to 0.0045"],
    ),
    (
        "percentages without --scale",
        "arm,size,value\nsft,100,0.3\nsft,200,35\n",
        HIGHER,
        ["line 3: value: ", "[0, 1]", "0.3 to 35", "give --scale 100"],
    ),
    (
        "a score below 0",
        "arm,size,value\nsft,100,0.3\nsft,200,-0.1\n",
        HIGHER,
        ["line 3: value: ", "[0, 1]"],
    ),
    (
        "an error that is not positive",
        "arm,size,value\nsft,100,0.3\nsft,200,0\n",
        LOWER,
        ["line 3: value: ", "positive errors or losses", "got 0"],
    ),
    (
        "one model twice, the same score",
        "arm,size,value,seed\nsft,100,0.3,0\nsft,200,0.4,0\nsft,100,0.3,0\n",
        HIGHER,
        ["line 4: ", "the same arm, size and seed (sft, 100, 0)", "as line 2"],
    ),
    (
        "one model twice, two scores",
        "arm,size,value,seed\nsft,100,0.3,0\nsft,100.0,0.35,0.0\n",
        HIGHER,
        ["line 3: ", "the same arm, size and seed (sft, 100.0, 0.0)", "as line 2"],
    ),
    (
        "a copied row without a seed column",
        "arm,size,value\nsft,100,0.3\nsft,200,0.4\nsft,100,0.30\n",
        HIGHER,
        ["line 4: ", "the same arm, size and value (sft, 100, 0.30)", "as line 2", "seed column"],
    ),
    (
        "a copied row with facets",
        "arm,size,value,model\nsft,100,0.3,a\nsft,100,0.3,a\n",
        HIGHER,
        ["line 3: ", "and the same model as line 2", "add a seed column"],
    ),
    (
        "a line of commas",
        "arm,size,value\nsft,100,0.3\n,,\nsft,200,0.4\n",
        HIGHER,
        ["line 3: ", "only commas"],
    ),
    ("a value that is nan", "arm,size,value\nsft,100,nan\n", HIGHER, ["line 2: value: ", "'nan'"]),
    ("a value that is inf", "arm,size,value\nsft,100,inf\n", LOWER, ["line 2: value: ", "'inf'"]),
    ("a value that is no number", "arm,size,value\nsft,100,abc\n", HIGHER, ["line 2: value: "]),
    ("a size of 0", "arm,size,value\nsft,0,0.3\n", HIGHER, ["line 2: size: ", "positive"]),
    ("a negative size", "arm,size,value\nsft,-5,0.3\n", HIGHER, ["line 2: size: ", "positive"]),
    ("an empty arm", "arm,size,value\n,100,0.3\n", HIGHER, ["line 2: arm: ", "empty"]),
    ("an empty arm of spaces", "arm,size,value\n  ,100,0.3\n", HIGHER, ["line 2: arm: "]),
    ("a header only", "arm,size,value\n\n", HIGHER, ["rows: ", "no points"]),
    ("an empty file", "", HIGHER, ["line 1: ", "no header"]),
]


def _write(tmp_path: Path, content: str | bytes, name: str = "points.csv") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _flags(keywords: dict) -> str:
    flags = f"--direction {'higher' if keywords['higher_is_better'] else 'lower'}"
    return flags + (f" --scale {keywords['scale']:g}" if "scale" in keywords else "")


@pytest.mark.parametrize(
    ("content", "keywords", "fragments"),
    [case[1:] for case in BAD_FILES],
    ids=[case[0] for case in BAD_FILES],
)
def test_a_bad_file_is_an_error_naming_the_file_the_line_and_the_column(
    tmp_path, content, keywords, fragments
):
    path = _write(tmp_path, content)
    with pytest.raises(SpecError) as raised:
        read_points_csv(path, **keywords)
    message = str(raised.value)
    assert message.startswith(f"{path}: "), message
    for fragment in fragments:
        assert _as_keywords(fragment) in message, message
    assert "--" not in message.removeprefix(str(path))  # a notebook passed keywords, not flags


def _as_keywords(fragment: str) -> str:
    """What the library says for a flag the CLI names: `scale=100` for `--scale 100`."""
    return fragment.replace("--scale 100", "scale=100").replace("--scale", "scale=")


@pytest.mark.parametrize(
    ("content", "keywords", "fragments"),
    [case[1:] for case in BAD_FILES],
    ids=[case[0] for case in BAD_FILES],
)
def test_a_bad_file_is_one_line_and_exit_2_from_the_cli(
    cli, tmp_path, content, keywords, fragments
):
    path = _write(tmp_path, content)
    out = cli(f"fit --points {path} {_flags(keywords)} --resamples 10")
    assert out.code == 2, out.err
    assert out.out == ""
    assert out.err.startswith(f"scaler: error: {path}: ") and out.err.count("\n") == 1, out.err
    for fragment in fragments:
        assert fragment in out.err, out.err


def test_a_file_without_a_direction_asks_for_one(cli, tmp_path):
    path = _write(tmp_path, "arm,size,value\nsft,100,0.3\nsft,200,0.4\n")
    out = cli(f"fit --points {path}")
    assert out.code == 2 and "--direction: say which way the metric improves" in out.err


def test_a_missing_file_is_named(cli, tmp_path):
    out = cli(f"fit --points {tmp_path / 'nope.csv'} --direction higher")
    assert out.code == 2 and "nope.csv: --points: no such file" in out.err


@pytest.mark.parametrize("scale", ["0", "-1", "nan", "inf"])
def test_a_scale_must_be_positive_and_finite(cli, tmp_path, scale):
    path = _write(tmp_path, "arm,size,value\nsft,100,30\nsft,200,40\n")
    out = cli(f"fit --points {path} --direction higher --scale={scale}")
    assert out.code == 2 and "--scale" in out.err and "Traceback" not in out.err, out.err
    with pytest.raises(SpecError, match="scale: expected a positive number"):
        read_points_csv(path, higher_is_better=True, scale=float(scale))


# --------------------------------------------------------------------------------------------
# Files that are fine.

WELL_FORMED = (
    "\ufeffarm,size,value,seed,model\r\n"
    "\r\n"
    "sft,1000,31.5,0,llama\r\n"
    "sft, 1000 ,30.5,1.0,llama\r\n"
    "\r\n"
    "sft,2000,35.0,2.0,llama\r\n"
    "rft,1000,33.0,0,mistral\r\n"
    '"rft",2000,38.0,0,qwen\r\n'
    "\r\n"
    "\r\n"
)


def test_a_well_formed_file_with_a_bom_blank_lines_and_whole_float_seeds_reads(tmp_path):
    points = read_points_csv(_write(tmp_path, WELL_FORMED), higher_is_better=True, scale=100)
    assert points.arm.tolist() == ["sft", "sft", "sft", "rft", "rft"]
    np.testing.assert_array_equal(points.size, [1000, 1000, 2000, 1000, 2000])
    assert points.seed.tolist() == [0, 1, 2, 0, 0] and points.seed.dtype.kind == "i"
    np.testing.assert_allclose(points.value, [0.315, 0.305, 0.35, 0.33, 0.38])
    assert list(points.facets) == ["model"]
    assert points.facets["model"].tolist() == ["llama"] * 3 + ["mistral", "qwen"]
    assert points.facet_of("sft", "model") == "llama"


def test_rows_at_one_arm_and_size_without_a_seed_column_are_its_seeds(tmp_path):
    content = "arm,size,value,model\nsft,100,0.3,a\nsft,100,0.32,a\nsft,100,0.3,b\nsft,200,0.4,a\n"
    points = read_points_csv(_write(tmp_path, content), higher_is_better=True)
    assert points.seed.tolist() == [-1] * 4
    np.testing.assert_allclose(points.value, [0.3, 0.32, 0.3, 0.4])


def test_fractions_with_a_scale_are_fine_for_errors(tmp_path):
    # The fraction rule is for scores only: losses have no range that says what scale they are in.
    content = "arm,size,value\nsft,100,0.5\nsft,200,0.4\n"
    points = read_points_csv(_write(tmp_path, content), higher_is_better=False, scale=100)
    np.testing.assert_allclose(points.value, [0.005, 0.004])


def test_the_fit_of_a_well_formed_file_reports_each_arms_facet(cli, tmp_path):
    path = _write(tmp_path, WELL_FORMED)
    out = cli(f"fit --points {path} --direction higher --scale 100 --resamples 20 --json")
    assert out.code == 0, out.err
    arms = {arm["arm"]: arm for arm in json.loads(out.out)["arms"]}
    assert arms["sft"]["model"] == "llama" and arms["sft"]["n_points"] == 3
    assert arms["rft"]["model"] == "mistral, qwen"  # the rows differ: every value


def test_facet_of_is_the_value_the_arms_rows_share_else_all_of_them():
    points = Points(
        metric="accuracy",
        higher_is_better=True,
        arm=np.array(["sft", "sft", "rft", "rft", "rft"]),
        size=np.array([1.0, 2.0, 1.0, 2.0, 4.0]),
        seed=np.full(5, -1),
        value=np.full(5, 0.5),
        facets={"source": np.array(["b", "b", "b", "a", "b"], dtype=object)},
    )
    assert points.facet_of("sft", "source") == "b"
    assert points.facet_of("rft", "source") == "a, b"
    assert points.facet_of("sft", "model") is None


# --------------------------------------------------------------------------------------------
# --sizes

CSV_FOR_SIZES = "arm,size,value\n" + "".join(
    f"{arm},{size},{value}\n"
    for arm, shift in (("sft", 0.0), ("rft", 0.05))
    for size, value in ((100, 0.3), (200, 0.4), (400, 0.45), (800, 0.5))
    for value in [value + shift]
)


def test_sizes_are_positive_whole_numbers_written_any_way():
    assert _sizes("1000,4000") == [1000, 4000]
    assert _sizes("1e12, 2.5e3,7473.0") == [10**12, 2500, 7473]
    assert all(type(size) is int for size in _sizes("1e12,2.5e3"))


@pytest.mark.parametrize("sizes", ["1e12", "2.5e3,100"])
def test_fit_reports_multipliers_at_the_sizes_given(cli, tmp_path, sizes):
    path = _write(tmp_path, CSV_FOR_SIZES)
    out = cli(f"fit --points {path} --direction higher --resamples 10 --json --sizes {sizes}")
    assert out.code == 0, out.err
    reported = sorted({m["size"] for m in json.loads(out.out)["multipliers"]})
    assert reported == sorted(float(size) for size in sizes.split(","))


@pytest.mark.parametrize(
    ("flag", "got"),
    [
        ("--sizes=-5,100", "got '-5,100'"),
        ("--sizes -5,100", "got none (a value that starts with '-' is read as an option)"),
        ("--sizes", "got none"),
        ("--sizes 0", "got '0'"),
        ("--sizes abc", "got 'abc'"),
        ("--sizes 100,,200", "got '100,,200'"),
        ("--sizes 100,", "got '100,'"),
        ("--sizes nan", "got 'nan'"),
        ("--sizes 1e400", "got '1e400'"),
        ("--sizes 2.5,100", "got '2.5,100': 2.5 is not a whole number of problems"),
    ],
)
def test_bad_sizes_are_one_line_and_exit_2(cli, tmp_path, flag, got):
    path = _write(tmp_path, CSV_FOR_SIZES)
    out = cli(f"fit --points {path} --direction higher --resamples 10 {flag}")
    assert out.code == 2 and out.out == ""
    expected = "scaler: error: command line: --sizes: expected positive sizes like 1000,4000; "
    assert out.err.startswith(expected + got) and out.err.count("\n") == 1, out.err
