"""Verified step folders: a finished step whose files no longer match its manifest is seen by
`scaler plan` and `scaler status`, set aside by `scaler collect` (its rows gone from DuckDB) and
run again, alone, by `scaler run`, after which the database equals a clean run's.

The checks are tested on folders made here; the commands on one real run of the small demo
grid, copied for each case (mtimes kept, as the manifests recorded them). Commands that write
DuckDB run as subprocesses: a process keeps a DuckDB file it opened cached.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from conftest import SMALL_SPEC, finished_step_dirs, write_spec
from runners.files import ROW_FILES
from scaler.layout import Layout
from scaler.manifest import (
    DAMAGED_NOTE,
    MANIFEST,
    check_step,
    damaged_steps,
    file_hash,
    repair_damaged,
    write_manifest,
)
from scaler.store import CollectReport

# --- the checks, on folders made here ---------------------------------------------------------


def _step_folder(root: Path, name: str = "evaluate-0123abcd") -> Path:
    folder = root / "steps" / name.split("-")[0] / name
    (folder / "model").mkdir(parents=True)
    for record in ("config.json", "provenance.json", "result.json"):
        (folder / record).write_text('{"metrics": {"accuracy": 0.5}}')
    (folder / "problems.parquet").write_bytes(os.urandom(3000))
    (folder / "model" / "weights.bin").write_bytes(os.urandom(5000))
    write_manifest(folder)
    return folder


def _overwrite(path: Path, *, keep_mtime: bool) -> None:
    """The same number of bytes, different ones; the mtime set back if `keep_mtime`."""
    before = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    if keep_mtime:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    else:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))


QUICK_CASES = {
    "result.json deleted": (lambda f: (f / "result.json").unlink(), "result.json is missing"),
    "a Parquet truncated": (
        lambda f: os.truncate(f / "problems.parquet", 1000),
        "problems.parquet is 1000 bytes, its manifest says 3000",
    ),
    "a nested file overwritten, same size, new mtime": (
        lambda f: _overwrite(f / "model" / "weights.bin", keep_mtime=False),
        "model/weights.bin differs from its manifest (SHA-256)",
    ),
    "manifest.json deleted": (lambda f: (f / MANIFEST).unlink(), "manifest.json is missing"),
    "manifest.json garbage": (
        lambda f: (f / MANIFEST).write_text("{not json"),
        "manifest.json is unreadable (not JSON",
    ),
    "manifest.json without result.json": (
        lambda f: (f / MANIFEST).write_text(
            (f / MANIFEST).read_text().replace('"result.json"', '"other.json"')
        ),
        "manifest.json is unreadable (result.json not listed)",
    ),
}


@pytest.mark.parametrize("case", QUICK_CASES)
def test_the_quick_check_names_what_is_wrong(tmp_path, case):
    damage, reason = QUICK_CASES[case]
    folder = _step_folder(tmp_path)
    assert check_step(folder) is None and check_step(folder, full=True) is None
    damage(folder)
    assert check_step(folder).startswith(reason)
    assert check_step(folder, full=True).startswith(reason)


def test_an_overwrite_that_keeps_its_mtime_is_seen_by_the_full_check_only(tmp_path):
    folder = _step_folder(tmp_path)
    _overwrite(folder / "problems.parquet", keep_mtime=True)
    assert check_step(folder) is None  # stats only: nothing to see
    assert check_step(folder, full=True) == "problems.parquet differs from its manifest (SHA-256)"


def test_a_folder_copied_with_new_mtimes_still_passes(tmp_path):
    folder = _step_folder(tmp_path)
    copy = tmp_path / "copy" / "evaluate-0123abcd"
    shutil.copytree(folder, copy, copy_function=shutil.copyfile)  # new mtimes, same bytes
    assert (copy / "result.json").stat().st_mtime_ns != (folder / "result.json").stat().st_mtime_ns
    assert check_step(copy) is None
    assert (copy / MANIFEST).read_bytes() == (folder / MANIFEST).read_bytes()  # not rewritten


def test_repair_moves_a_damaged_step_aside_with_the_reason(tmp_path):
    layout = Layout(tmp_path)
    good = _step_folder(tmp_path, "train-00aa")
    bad = _step_folder(tmp_path, "evaluate-00bb")
    (bad / "result.json").unlink()
    assert damaged_steps(layout) == {"evaluate-00bb": "result.json is missing"}
    assert bad.is_dir()  # checking moves nothing

    # An older damaged copy of the same step is replaced.
    older = layout.damaged_dir("evaluate", "evaluate-00bb")
    older.mkdir()
    (older / "stale").write_text("")
    assert repair_damaged(layout) == [("evaluate-00bb", "result.json is missing")]
    assert not bad.exists() and good.is_dir()
    assert not (older / "stale").exists() and (older / "config.json").is_file()
    note = (older / DAMAGED_NOTE).read_text().splitlines()
    assert note[0] == "result.json is missing" and note[1].startswith("set aside at 20")
    assert layout.done_names() == {"train-00aa"}
    assert repair_damaged(layout) == []


def test_collects_line_names_a_few_damaged_steps_and_counts_the_rest():
    steps = tuple((f"train-{i}", "result.json is missing") for i in range(5))
    line = CollectReport(0, 3, Path("x.duckdb"), set_aside=steps, dropped=5).line()
    assert line.startswith("set aside 5 damaged steps (train-0: result.json is missing; ")
    assert "train-2: result.json is missing; and 2 more), which `scaler run` runs again" in line
    assert "train-3" not in line and "dropped 5 steps from the database" in line


# --- the commands, on a real run --------------------------------------------------------------


def _scaler(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scaler", *args], capture_output=True, text=True)


TIMINGS = "(_s|_seconds|_per_s)$"
"""Metrics that are wall times or speeds: they differ between any two runs."""


def _rows(results: Path) -> dict[str, list]:
    """What a run leaves in DuckDB that must not depend on when or where it ran."""
    queries = {
        "steps": "SELECT step_id, name, stage, experiment, world, model, source, algorithm, "
        "size, seed, eval_set, config, inputs FROM steps",
        "metrics": f"SELECT * FROM metrics WHERE NOT regexp_matches(name, '{TIMINGS}')",
        **{table: f"SELECT * FROM {table}" for table in ROW_FILES.values()},
    }
    con = duckdb.connect(str(results / "small" / "scaler.duckdb"), read_only=True)
    try:
        return {
            table: con.execute(f"{sql} ORDER BY ALL").fetchall() for table, sql in queries.items()
        }
    finally:
        con.close()


def _count_rows(results: Path, step_id: str) -> int:
    sql = " + ".join(
        f"(SELECT count(*) FROM {t} WHERE step_id = '{step_id}')"
        for t in ("steps", "metrics", *ROW_FILES.values())
    )
    found = _scaler("--results", str(results), "query", "small", f"SELECT {sql} AS n")
    assert found.returncode == 0, found.stderr
    return int(found.stdout.split()[-1])


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory) -> tuple[Path, dict[str, list]]:
    """One clean inline run of the small grid (its results folder) and its DuckDB rows."""
    root = tmp_path_factory.mktemp("clean")
    spec = write_spec(root / "small.yaml", SMALL_SPEC)
    ran = _scaler("--results", str(root / "results"), "run", str(spec), "--executor", "inline")
    assert ran.returncode == 0, ran.stderr
    return root / "results", _rows(root / "results")


@pytest.fixture
def copied(clean_run, results) -> Path:
    shutil.copytree(clean_run[0], results)  # copy2: the mtimes the manifests recorded
    return results


def _step(results: Path, stage: str) -> Path:
    """The finished folder of the size-50 step of `stage` (the grid's only one for generate)."""
    for folder in sorted((results / "small" / "steps" / stage).glob(f"{stage}-*")):
        if stage == "generate" or '"size": 50' in (folder / "config.json").read_text():
            return folder
    raise AssertionError(f"no {stage} step")


RUN_CASES = {
    "result.json deleted": ("evaluate", "result.json", "missing"),
    "a Parquet truncated": ("evaluate", "problems.parquet", "truncated"),
    "model weights overwritten, same size, new mtime": (
        "train",
        "model/model.safetensors",
        "overwritten",
    ),
    "manifest.json deleted": ("generate", MANIFEST, "missing"),
}


def _damage(folder: Path, file: str, how: str) -> str:
    """Damage `folder`'s `file` as `how` says; return the reason the check will give."""
    path = folder / file
    if how == "missing":
        path.unlink()
        return f"{file} is missing"
    if how == "truncated":
        size = path.stat().st_size
        os.truncate(path, size // 2)
        return f"{file} is {size // 2} bytes, its manifest says {size}"
    _overwrite(path, keep_mtime=how == "kept mtime")
    return f"{file} differs from its manifest (SHA-256)"


def _plan_and_status_show(cli, spec: Path, name: str, reason: str) -> None:
    plan = cli(f"plan {spec} --steps")
    assert plan.code == 0 and "4 done, 0 to run, 0 failed, 1 damaged" in plan.out
    assert f"DAMAGED {name}: {reason}" in plan.out
    assert "`scaler run` moves them aside (.damaged-<step>/) and runs them again" in plan.out
    assert any(line.split()[:2] == [name, "damaged"] for line in plan.out.splitlines())
    status = cli("status small")
    assert status.code == 0 and "small: 5 steps; 4 done, 1 damaged" in status.out
    assert f"DAMAGED {name}: {reason}" in status.out


def _rerun_runs_only(spec: Path, results: Path, name: str, clean: dict[str, list]) -> str:
    before = finished_step_dirs(results)
    rerun = _scaler("run", str(spec), "--executor", "inline")
    assert rerun.returncode == 0, rerun.stderr
    assert "ran 1 steps (4 were done)" in rerun.stdout and f"done {name} " in rerun.stdout
    after = finished_step_dirs(results)
    assert after.keys() == before.keys() | {name}
    assert all(after[n] == before[n] for n in before if n != name)  # nothing else ran
    assert _rows(results) == clean
    return rerun.stdout


@pytest.mark.parametrize("case", RUN_CASES)
def test_collect_sets_a_damaged_step_aside_and_run_runs_it_again(
    cli, copied, small_spec, clean_run, case
):
    stage, file, how = RUN_CASES[case]
    folder = _step(copied, stage)
    name, step_id = folder.name, folder.name.split("-", 1)[1]
    reason = _damage(folder, file, how)
    _plan_and_status_show(cli, small_spec, name, reason)

    collected = _scaler("collect", "small")
    assert collected.returncode == 0, collected.stderr
    assert collected.stdout.startswith(f"set aside 1 damaged steps ({name}: {reason})")
    assert "dropped 1 steps from the database" in collected.stdout
    assert "collected 0 new steps" in collected.stdout and "(4 in all)" in collected.stdout
    note = folder.parent / f".damaged-{name}" / DAMAGED_NOTE
    assert note.read_text().startswith(reason + "\n") and not folder.exists()
    assert _count_rows(copied, step_id) == 0
    # status and collect agree: the step is no longer done.
    assert "small: 5 steps; 4 done, 1 not submitted" in cli("status small").out

    _rerun_runs_only(small_spec, copied, name, clean_run[1])


def test_an_overwrite_keeping_its_mtime_is_found_by_collect_rebuild(
    cli, copied, small_spec, clean_run
):
    folder = _step(copied, "evaluate")
    name = folder.name
    reason = _damage(folder, "result.json", "kept mtime")
    # The quick check (plan, status, collect) sees sizes and mtimes only: all is well to them.
    assert "5 done, 0 to run, 0 failed" in cli(f"plan {small_spec}").out
    assert "collected 0 new steps" in _scaler("collect", "small").stdout
    rebuilt = _scaler("collect", "small", "--rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert f"set aside 1 damaged steps ({name}: {reason})" in rebuilt.stdout
    assert "collected 4 new steps" in rebuilt.stdout
    _rerun_runs_only(small_spec, copied, name, clean_run[1])


def test_a_rebuilt_database_loads_every_good_step_when_some_are_damaged(copied, small_spec):
    (_step(copied, "evaluate") / "result.json").unlink()
    os.truncate(_step(copied, "train") / "val_curve.json", 10)
    rebuilt = _scaler("collect", "small", "--rebuild")
    assert rebuilt.returncode == 0 and rebuilt.stderr == ""
    assert "set aside 2 damaged steps (" in rebuilt.stdout
    assert "collected 3 new steps" in rebuilt.stdout and "(3 in all)" in rebuilt.stdout
    query = _scaler("query", "small", "SELECT count(*) FROM evals")
    assert query.returncode == 0 and query.stdout.split()[-1] == "1"


def test_a_damage_the_quick_check_misses_is_set_aside_when_it_fails_to_load(copied):
    # Parquet garbage of the same size with its mtime set back, in a database being refilled.
    parquet = _step(copied, "evaluate") / "problems.parquet"
    before = parquet.stat()
    parquet.write_bytes(os.urandom(before.st_size))
    os.utime(parquet, ns=(before.st_atime_ns, before.st_mtime_ns))
    (copied / "small" / "scaler.duckdb").unlink()
    collected = _scaler("collect", "small")
    assert collected.returncode == 0 and collected.stderr == ""
    assert f"({parquet.parent.name}: problems.parquet differs from its manifest" in collected.stdout
    assert "collected 4 new steps" in collected.stdout


def test_a_file_that_matches_its_manifest_and_fails_to_load_is_one_line(copied):
    # What a stage writing a broken Parquet would leave: a bug, named by its file.
    parquet = _step(copied, "evaluate") / "problems.parquet"
    parquet.write_bytes(b"not a parquet file")
    write_manifest(parquet.parent)
    (copied / "small" / "scaler.duckdb").unlink()
    collected = _scaler("collect", "small")
    assert collected.returncode == 1 and collected.stderr.count("\n") == 1
    assert collected.stderr.startswith(f"scaler: error: {parquet} matches its manifest")
    assert "Traceback" not in collected.stderr and parquet.is_file()  # kept: nothing to repair


def test_scaler_run_repairs_a_damaged_step_itself(copied, small_spec, clean_run):
    # No collect first: the run sets the step aside, runs it, and the database, which held the
    # damaged step's old rows, gets the new folder's.
    folder = _step(copied, "evaluate")
    os.truncate(folder / "problems.parquet", 100)
    out = _rerun_runs_only(small_spec, copied, folder.name, clean_run[1])
    assert f"repairing {folder.name}: problems.parquet is 100 bytes" in out
    assert "dropped 1 steps from the database" in out and "collected 1 new steps" in out
    with duckdb.connect(str(copied / "small" / "scaler.duckdb"), read_only=True) as con:
        digest = con.execute(
            "SELECT manifest_sha256 FROM steps WHERE name = ?", [folder.name]
        ).fetchone()[0]
    assert digest == file_hash(folder / MANIFEST)
