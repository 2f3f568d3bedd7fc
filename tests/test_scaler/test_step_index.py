"""`scaler status` from the step index a run writes (scaler.step_index) and the finished folders
it checks once (scaler.finished_memo): the same answer as expanding the saved spec, on a real
tiny run."""

from __future__ import annotations

import json
import os

import pytest

from conftest import SMALL_SPEC, write_spec
from scaler.layout import Layout


@pytest.fixture
def ran(tmp_path, results, cli) -> Layout:
    spec = write_spec(tmp_path / "small.yaml", SMALL_SPEC)
    done = cli(f"run {spec} sizes=[50] --executor inline")
    assert done.code == 0, done.err
    return Layout.for_experiment("small", results)


def _status(cli) -> str:
    status = cli("status small")
    assert status.code == 0, status.err
    # Wall times are the same files read either way; nothing else may differ.
    return status.out


def test_status_reads_the_index_instead_of_expanding_the_spec(ran, cli, monkeypatch):
    import scaler.plan

    assert ran.step_index.is_file()
    expanded = _status(cli)  # the index is read; check it gives what expanding gives
    os.replace(ran.step_index, ran.root / "kept.json")
    assert _status(cli) == expanded  # no index: the saved spec is expanded
    os.replace(ran.root / "kept.json", ran.step_index)

    def refuse(spec):
        raise AssertionError("status expanded the spec")

    monkeypatch.setattr(scaler.plan, "expand", refuse)
    assert _status(cli) == expanded
    assert "small: 3 steps; 3 done" in expanded


def test_an_index_of_another_spec_or_a_broken_one_is_not_read(ran, cli):
    whole = _status(cli)
    index = ran.step_index.read_bytes()
    ran.step_index.write_bytes(index[: len(index) // 2])  # cut off: not JSON
    assert _status(cli) == whole
    broken = json.loads(index)
    broken["inputs"][1] = [["data", 5]]  # an input that is not an earlier step
    ran.step_index.write_text(json.dumps(broken))
    assert _status(cli) == whole
    # The saved spec changed under the index (a run of two sizes that wrote only spec.json).
    ran.step_index.write_bytes(index)
    spec = json.loads(ran.spec_file.read_text())
    ran.spec_file.write_text(json.dumps(spec | {"sizes": [50, 100]}))
    assert "small: 5 steps; 3 done, 2 not submitted" in _status(cli)


def test_status_checks_a_finished_folder_once_and_again_when_its_manifest_changes(ran, cli):
    _status(cli)
    assert ran.finished_memo.is_file()
    evaluate = next((ran.steps / "evaluate").iterdir())
    result = evaluate / "result.json"
    result.write_text(result.read_text() + " ")  # after its check: a byte more
    # Status took the folder as whole when it checked it; plan checks every folder.
    assert "3 done" in _status(cli)
    planned = cli(f"plan {ran.root.parent.parent / 'small.yaml'} sizes=[50]")
    assert "1 damaged" in planned.out, planned.out
    # A folder whose manifest changed (a step run again, or its manifest touched) is checked.
    os.utime(evaluate / "manifest.json")
    status = _status(cli)
    assert "1 damaged" in status and f"DAMAGED {evaluate.name}: result.json is" in status


def test_status_from_the_index_loads_neither_the_spec_models_nor_the_runners(ran):
    # In a process of its own, as a person runs it: the import is what it saves.
    import subprocess
    import sys

    probe = (
        "import sys; from scaler.cli import main; main(['status', 'small']); "
        "print(sorted(m for m in sys.modules if m.startswith(('scaler.spec', 'runners', "
        "'pydantic', 'scaler.plan', 'scaler.cost'))))"
    )
    env = os.environ | {"SCALER_RESULTS": str(ran.root.parent)}
    shown = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                           text=True, check=True)  # fmt: skip
    assert "small: 3 steps; 3 done" in shown.stdout
    assert shown.stdout.strip().splitlines()[-1] == "['scaler.cost_view']"
