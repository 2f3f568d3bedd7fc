"""What checking finished step folders against their manifests costs (scaler.manifest).

    .venv/bin/python benchmarks/bench_step_check.py [results/demo]

On a copy of a finished demo (`make demo` leaves one in results/demo; manifests are written
into the copy where the folders predate them): the quick check of every folder (a read of each
manifest, a stat per file), the same over 101 steps (the demo's folders repeated), the full
check that hashes every file, and the quick check of a folder copied with new mtimes (every file
hashed). Baseline in the same process: listing the step folders alone. Then `scaler run` of the
finished demo in a fresh process (nothing to run; collect checks every folder), against
`scaler --help`. Last, the quick check of 10,000 no-op steps (four small files each).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

from common import machine, median_seconds  # noqa: E402
from scaler.layout import Layout, write_json  # noqa: E402
from scaler.manifest import MANIFEST, check_steps, write_manifest  # noqa: E402


def _copy_demo(source: Path, target: Path) -> Layout:
    shutil.copytree(source, target)
    layout = Layout(target)
    for folder in layout.finished_dirs():
        if not (folder / MANIFEST).is_file():
            write_manifest(folder)
    return layout


def _grow(layout: Layout, steps: int) -> None:
    """Repeat the demo's folders under new names until there are `steps` (mtimes kept)."""
    originals = layout.finished_dirs()
    for i in range(steps - len(originals)):
        folder = originals[i % len(originals)]
        stage = folder.parent.name
        shutil.copytree(folder, folder.parent / f"{stage}-{i:016x}")


def _files(layout: Layout) -> int:
    return sum(1 for folder in layout.finished_dirs() for p in folder.rglob("*") if p.is_file())


def _checks(label: str, layout: Layout) -> None:
    steps, files = len(layout.finished_dirs()), _files(layout)
    megabytes = sum(p.stat().st_size for p in layout.steps.rglob("*") if p.is_file()) / 1e6
    listing = median_seconds(layout.done_names, repeats=7)
    quick = median_seconds(lambda: check_steps(layout), repeats=7)
    full = median_seconds(lambda: check_steps(layout, full=True), repeats=3)
    assert not check_steps(layout, full=True).damaged
    print(
        f"{label}: {steps} steps, {files} files, {megabytes:.1f} MB: quick check "
        f"{quick * 1e3:.1f} ms, full check {full:.3f} s; listing alone {listing * 1e3:.2f} ms"
    )


def _new_mtimes(layout: Layout) -> None:
    stamp = time.time_ns() + 10**9
    for path in layout.steps.rglob("*"):
        if path.is_file() and path.name != MANIFEST:
            os.utime(path, ns=(stamp, stamp))
    seconds = median_seconds(lambda: check_steps(layout), repeats=3)
    assert not check_steps(layout).damaged
    print(f"  quick check of a copy with new mtimes (every file hashed): {seconds:.3f} s")


def _scaler_seconds(*args: str) -> float:
    def call() -> None:
        done = subprocess.run([sys.executable, "-m", "scaler", *args], capture_output=True)
        assert done.returncode == 0, done.stderr.decode()

    return median_seconds(call, repeats=3)


def _rerun(layout: Layout) -> None:
    from scaler.plan import expand
    from scaler.spec.load import load_spec

    results = str(layout.root.parent)
    spec = str(ROOT / "specs" / "demo.yaml")
    names = {step.name for step in expand(load_spec(spec, [])).steps}
    if not names <= layout.done_names():
        print("  (skipped `scaler run`: the demo's folders are not all of specs/demo.yaml's steps)")
        return
    _scaler_seconds("--results", results, "run", spec)  # loads the copied folders once
    seconds = _scaler_seconds("--results", results, "run", spec)
    baseline = _scaler_seconds("--help")
    print(
        f"  `scaler run specs/demo.yaml`, all done: {seconds:.2f} s "
        f"(`scaler --help`: {baseline:.2f} s)"
    )


def _many_noop_steps(root: Path, steps: int) -> None:
    layout = Layout(root)
    for i in range(steps):
        folder = layout.step_dir("noop", f"noop-{i:016x}")
        folder.mkdir(parents=True)
        for name in ("config.json", "provenance.json", "result.json"):
            write_json(folder / name, {"metrics": {"value": i}, "name": folder.name})
        write_manifest(folder)
    quick = median_seconds(lambda: check_steps(layout), repeats=3)
    listing = median_seconds(layout.done_names, repeats=3)
    print(
        f"{steps} no-op steps: quick check {quick:.3f} s ({quick / steps * 1e6:.0f} us a step); "
        f"listing alone {listing * 1e3:.1f} ms"
    )


def main() -> None:
    source = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "results" / "demo")
    if not (source / "steps").is_dir():
        sys.exit(f"no finished demo at {source}: run `make demo` first, or name one")
    print(machine())
    with tempfile.TemporaryDirectory() as scratch:
        layout = _copy_demo(source, Path(scratch) / "demo" / "demo")
        _checks("the finished demo", layout)
        _rerun(layout)
        _grow(layout, 101)
        _checks("grown to 101 steps", layout)
        _new_mtimes(layout)
        _many_noop_steps(Path(scratch) / "noop", 10_000)


if __name__ == "__main__":
    main()
