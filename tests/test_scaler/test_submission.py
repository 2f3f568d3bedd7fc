"""What a Slurm submission would be: array grouping, dependency edges and sbatch parameters.

Pure functions, pinned by golden files in tests/golden/ (regenerate one by deleting it and
running the test once, then read the diff). Steps are shown by stage and grid coordinates, not by
hash, so a changed runner default does not rewrite every golden file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SMALL_SPEC
from scaler.plan import Step, expand
from scaler.slurm.cluster import sbatch_script
from scaler.slurm.render import (
    NeedsArray,
    corresponding_ids,
    dependency_ids,
    group_arrays,
    resource_parameters,
    sbatch_parameters,
)
from scaler.spec.schema import Resources, Spec

GOLDEN = Path(__file__).parent / "golden"


def _plan(**changes):
    return expand(Spec.model_validate(SMALL_SPEC | changes))


def _label(step: Step) -> str:
    shown = {k: v for k, v in step.coords.items() if k in ("size", "seed", "eval_set")}
    return step.stage + "".join(f" {k}={v}" for k, v in shown.items())


def _describe(arrays, experiment: str, job_ids: list[str]) -> list[dict]:
    """The arrays as they would be submitted, given made-up job ids."""
    return [
        {
            "stage": array.stage,
            "steps": [_label(step) for step in array.steps],
            "parameters": sbatch_parameters(array, experiment, 8, dependency_ids(array, job_ids)),
        }
        for array in arrays
    ]


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if not path.exists():  # a new golden file: written once, then read and committed
        path.write_text(text)
        pytest.fail(f"wrote {path}; check it and commit it")
    assert text == path.read_text(), f"{name} changed; if that is intended, delete it and rerun"


def test_grid_is_one_array_per_stage_with_whole_array_dependencies():
    plan = _plan(
        sizes=[50, 100, 150],
        seeds=[0, 1],
        eval_sets=["test", "val"],
        resources={
            "default": {"partition": "cpu", "mem_gb": 8, "time_min": 30},
            "train": {"partition": "gpu", "gpus": 1, "account": "lab", "qos": "high",
                      "sbatch": {"constraint": "a100", "exclude": "node7"}},
        },
    )  # fmt: skip
    arrays = group_arrays(plan.steps, {}, plan.resources, max_array_size=1001)
    assert [(a.stage, len(a.steps)) for a in arrays] == [
        ("generate", 1),
        ("train", 6),
        ("evaluate", 12),
    ]
    assert arrays[1].needs_arrays == (NeedsArray(0, None),)
    assert arrays[2].needs_arrays == (NeedsArray(0, None), NeedsArray(1, None))
    described = _describe(arrays, plan.experiment, ["101", "102", "103"])
    _check_golden("submission_grid.json", json.dumps(described, indent=1) + "\n")


def test_sbatch_script_of_a_dependent_gpu_array(tmp_path):
    resources = Resources(
        cpus=8, gpus=2, mem_gb=64, time_min=720, partition="gpu", account="lab", qos="high",
        signal_delay_s=120, sbatch={"constraint": "h100", "exclude": "node7"},
    )  # fmt: skip
    plan = _plan()
    train = [step for step in plan.steps if step.stage == "train"]
    arrays = group_arrays(train, {"generate-x": "41"}, {"train": resources}, 1001)
    parameters = sbatch_parameters(arrays[0], "small", 4, ["41", "40_3"])
    script = sbatch_script(parameters, Path("/results/small/logs/slurm"), tasks=2, command="RUN")
    _check_golden("sbatch_train_array.sh", script)


def test_arrays_split_at_the_largest_array_and_depend_on_exact_tasks():
    plan = _plan(sizes=[10, 20, 30, 40, 50])
    arrays = group_arrays(plan.steps, {}, plan.resources, max_array_size=2)
    assert [(a.stage, len(a.steps)) for a in arrays] == [
        ("generate", 1),
        ("train", 2),
        ("train", 2),
        ("train", 1),
        ("evaluate", 2),
        ("evaluate", 2),
        ("evaluate", 1),
    ]
    # Each evaluate array waits on the generate job and only the train array holding its models,
    # task by task (the last, a single task, on that one job).
    assert [a.needs_arrays for a in arrays[4:]] == [
        (NeedsArray(0, None), NeedsArray(1, None, corresponding=True)),
        (NeedsArray(0, None), NeedsArray(2, None, corresponding=True)),
        (NeedsArray(0, None), NeedsArray(3, None)),
    ]
    ids = ["1", "2", "3", "4", "5", "6", "7"]
    assert dependency_ids(arrays[5], ids) == ["1"]
    assert corresponding_ids(arrays[5], ids) == ["3"]
    assert dependency_ids(arrays[6], ids) == ["1", "4"]


def test_a_subset_of_an_array_is_named_task_by_task_and_queued_inputs_by_their_job():
    plan = _plan(sizes=[50, 100, 150])
    generate, *rest = plan.steps
    trains = [s for s in rest if s.stage == "train"]
    evaluate_150 = next(s for s in rest if s.stage == "evaluate" and s.coords["size"] == 150)
    # The generate step is queued as job 40; the trains are submitted now; of the evaluations
    # only the one for size 150 is, so it needs task 2 of the train array, not all of it.
    arrays = group_arrays(
        [*trains, evaluate_150], {generate.name: "40"}, plan.resources, max_array_size=100
    )
    assert [len(a.steps) for a in arrays] == [3, 1]
    assert arrays[0].needs_jobs == ("40",)
    assert arrays[1].needs_arrays == (NeedsArray(0, (2,)),)
    assert dependency_ids(arrays[1], ["57"]) == ["40", "57_2"]
    parameters = sbatch_parameters(arrays[1], "small", 256, ["40", "57_2"])
    assert parameters["additional_parameters"] == {
        "dependency": "afterok:40:57_2",
        "kill-on-invalid-dep": "yes",
    }


def test_a_stage_at_two_depths_gets_one_array_per_depth():
    # train -> evaluate -> train again (as when a model is trained on its own samples): the
    # second train array must not be grouped with the first, or it would wait on itself.
    plan = _plan(sizes=[50])
    generate, first_train, evaluate = plan.steps
    second = Step("train", first_train.config, (("data", evaluate),), {"size": 50, "round": 2})
    arrays = group_arrays([generate, first_train, evaluate, second], {}, plan.resources, 1001)
    assert [a.stage for a in arrays] == ["generate", "train", "evaluate", "train"]
    for index, array in enumerate(arrays):
        assert all(need.array < index for need in array.needs_arrays)


def test_first_arrays_have_no_dependency_and_resources_map_to_sbatch_options():
    plan = _plan()
    arrays = group_arrays(plan.steps, {}, plan.resources, 1001)
    first = sbatch_parameters(arrays[0], "small", 256, [])
    assert "dependency" not in first["additional_parameters"]
    assert first["mem"] == "4096M" and first["time"] == 60 and "gpus_per_node" not in first
    assert "partition" not in first  # unset: the cluster's default partition
    checked = resource_parameters(Resources(mem_gb=0.5, gpus=1), "sample")
    assert checked["mem"] == "512M" and checked["gpus_per_node"] == 1
    assert "job_name" not in checked and "array_parallelism" not in checked


def test_an_array_that_maps_task_to_task_waits_with_aftercorr_in_the_order_of_its_inputs():
    # A 2x2 grid: evaluation i needs train task i and nothing else of the train array, so a
    # failed train task cancels its own evaluation only, not the other three.
    plan = _plan(sizes=[50, 100], seeds=[0, 1])
    generate, *rest = plan.steps
    shuffled = [s for s in rest if s.stage == "train"] + [
        s for s in reversed(rest) if s.stage == "evaluate"
    ]
    arrays = group_arrays([generate, *shuffled], {}, plan.resources, 1001)
    train, evaluate = arrays[1], arrays[2]
    assert [dict(evaluate.steps[i].inputs)["model"] for i in range(4)] == list(train.steps)
    assert evaluate.needs_arrays == (NeedsArray(0, None), NeedsArray(1, None, corresponding=True))
    parameters = sbatch_parameters(
        evaluate,
        "small",
        8,
        dependency_ids(evaluate, ["7", "8"]),
        corresponding_ids(evaluate, ["7", "8"]),
    )
    assert parameters["additional_parameters"] == {
        "dependency": "afterok:7,aftercorr:8",
        "kill-on-invalid-dep": "yes",
    }


def test_no_aftercorr_where_tasks_do_not_map_one_to_one():
    # Two evaluations per model (fan-out), a subset of the models (a re-run), a train needing
    # the one generate task: each waits with afterok on what it needs, as before.
    two_sets = _plan(sizes=[50, 100], eval_sets=["test", "val"])
    arrays = group_arrays(two_sets.steps, {}, two_sets.resources, 1001)
    assert not any(need.corresponding for array in arrays for need in array.needs_arrays)
    plan = _plan(sizes=[50, 100, 150])
    trains = [s for s in plan.steps if s.stage == "train"]
    evaluations = [s for s in plan.steps if s.stage == "evaluate"][1:]
    arrays = group_arrays([*trains, *evaluations], {}, plan.resources, 1001)
    assert arrays[1].needs_arrays == (NeedsArray(0, (1, 2)),)
