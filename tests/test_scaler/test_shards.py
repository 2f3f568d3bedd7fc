"""Sharded stages in the plan: pure expansion, ids, the spec's checks and the Slurm arrays.

A run of a sharded grid against an unsharded one is tests/e2e/test_sharded_runs.py.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from conftest import ROOT, SMALL_SPEC, tiny_gsm8k_spec, write_spec
from runners.shards import Shard, shards_of
from scaler.errors import SpecError
from scaler.plan import expand
from scaler.slurm.render import NeedsArray, group_arrays
from scaler.spec.load import load_spec

GOLDEN = Path(__file__).parent / "golden" / "step_ids.json"

SEEDED = {"seeding": "per_problem", "batch_size": 10}
SAMPLER = {"name": "weak", "model": SMALL_SPEC["model"], "train_size": 30, "samples": 2}


def _spec(tmp_path, name="s", **fields) -> Path:
    spec = copy.deepcopy(SMALL_SPEC) | {"experiment": name} | fields
    return write_spec(tmp_path / f"{name}.yaml", spec)


def _sharded(tmp_path, sizes, shard_size=10, name="s", **stages) -> Path:
    settings = {"sample": SEEDED | {"shard_size": shard_size}} | stages
    return _spec(tmp_path, name, sources=[SAMPLER], sizes=sizes, algorithms=["rft"],
                 stages=SMALL_SPEC["stages"] | settings)  # fmt: skip


def _step_names(path: Path) -> list[str]:
    return sorted(step.name for step in expand(load_spec(path)).steps)


def test_specs_without_shard_size_keep_their_step_ids(tmp_path):
    # The ids of these plans before stages could be sharded: shard_size, seeding and a
    # config's `shard` are left out of the ids of the steps that do not set them.
    golden = json.loads(GOLDEN.read_text())
    for name in ("demo", "setlur-demo", "bansal-demo"):
        assert _step_names(ROOT / "specs" / f"{name}.yaml") == golden[name], name
    assert _step_names(write_spec(tmp_path / "small.yaml", SMALL_SPEC)) == golden["small"]
    assert _step_names(tiny_gsm8k_spec(tmp_path)) == golden["tiny-gsm8k"]


def test_shards_are_fixed_ranges_with_a_partial_last():
    assert shards_of(25, 10) == [Shard(start=0, stop=10), Shard(start=10, stop=20),
                                 Shard(start=20, stop=25)]  # fmt: skip
    assert shards_of(20, 10) == shards_of(40, 10)[:2]
    assert shards_of(3, 10) == [Shard(start=0, stop=3)]
    assert 10 in Shard(start=10, stop=20) and 20 not in Shard(start=10, stop=20)
    with pytest.raises(ValidationError, match="holds problems"):
        Shard(start=5, stop=5)
    with pytest.raises(ValueError):
        shards_of(0, 10)


def test_a_sharded_stage_is_its_shards_and_a_merge_that_later_steps_read(tmp_path):
    plan = expand(load_spec(_sharded(tmp_path, [25])))
    stages = plan.by_stage()
    samples = [s for s in stages["sample"] if dict(s.inputs)["problems"].stage == "generate"]
    assert [s.config.shard for s in samples] == shards_of(25, 10)
    assert [s.config.problems for s in samples] == [10, 10, 5]
    merges = {(m.config.stage, tuple(role for role, _ in m.inputs)) for m in stages["merge"]}
    assert ("sample", ("shard_0", "shard_1", "shard_2")) in merges
    assert ("verify", ("shard_0", "shard_1", "shard_2", "candidates")) in merges
    # The sampler's verified samples are read through their merge: by the learner's training
    # and sampling, and by the build of RFT's data.
    by_id = {step.id: step for step in plan.steps}
    for step in plan.steps:
        for role, upstream in step.inputs:
            if upstream.stage in ("sample", "verify") and upstream.config.shard is not None:
                assert step.stage in ("verify", "merge"), (step.name, role)
    trained = [s for s in stages["train"] if "train_data" in dict(s.inputs)]
    assert {dict(s.inputs)["train_data"].stage for s in trained} == {"merge", "build"}
    assert all(by_id[s.id] is s for s in plan.steps)


def _sampler_shards(plan) -> list:
    """The sampler's sample shards (they read the world's problems) and their verify shards."""
    sampled = [s for s in plan.steps if s.stage == "sample"
               and dict(s.inputs)["problems"].stage == "generate"]  # fmt: skip
    judged = [s for s in plan.steps if s.stage == "verify"
              and any(dict(s.inputs)["candidates"] is x for x in sampled)]  # fmt: skip
    return sampled + judged


def test_nested_sizes_share_their_shards(tmp_path):
    def sampler_shards(sizes):
        return {s.id for s in _sampler_shards(expand(load_spec(_sharded(tmp_path, sizes))))}

    twenty, forty, twenty_five = sampler_shards([20]), sampler_shards([40]), sampler_shards([25])
    assert len(twenty) == 4 and len(forty) == 8
    assert twenty < forty
    # 25 = two whole shards and a partial one of its own.
    assert len(twenty_five & forty) == 4 and len(twenty_five - forty) == 2


def test_shard_ids_follow_their_range_not_the_shard_size(tmp_path):
    def shard_ids(sizes, shard_size):
        plan = expand(load_spec(_sharded(tmp_path, sizes, shard_size)))
        return {s.config.shard: s.id for s in _sampler_shards(plan) if s.stage == "sample"}

    ten, twenty = shard_ids([20], 10), shard_ids([20], 20)
    assert set(ten) == {Shard(start=0, stop=10), Shard(start=10, stop=20)}
    assert set(twenty) == {Shard(start=0, stop=20)} and not set(ten.values()) & set(twenty.values())
    # One range, whatever shard size cut it: one step.
    assert shard_ids([10], 10) == shard_ids([10], 20)


def test_rollouts_and_evaluations_split_by_their_own_shard_size(tmp_path):
    spec = _spec(
        tmp_path,
        sizes=[25],
        algorithms=["per_step_dpo"],
        stages=SMALL_SPEC["stages"]
        | {
            "rollout": SEEDED | {"shard_size": 10},
            "evaluate": {"batch_size": 10, "shard_size": 20},  # greedy: no seeding needed
        },
    )
    plan = expand(load_spec(spec))
    stages = plan.by_stage()
    assert "sample" in stages and all(s.config.shard is None for s in stages["sample"])
    assert [s.config.shard for s in stages["rollout"]] == shards_of(25, 10)
    # The 40 test problems of the per-step DPO model, in two shards.
    assert [s.config.shard for s in stages["evaluate"]] == shards_of(40, 20)
    (evaluation,) = [m for m in stages["merge"] if m.config.stage == "evaluate"]
    assert dict(evaluation.inputs)["model"] is dict(stages["evaluate"][0].inputs)["model"]
    (build,) = stages["build"]
    assert dict(build.inputs)["rollouts"].stage == "merge"


def _evaluations(path: Path, *overrides: str) -> dict[str, list]:
    stages = expand(load_spec(path, list(overrides))).by_stage()
    return {stage: stages.get(stage, []) for stage in ("train", "evaluate", "merge")}


def test_more_eval_problems_add_evaluations_only_and_with_shards_only_the_new_shards(tmp_path):
    spec = _spec(tmp_path)  # 40 test problems
    every = _evaluations(spec)
    half = _evaluations(spec, "stages.evaluate.problems=20")
    assert [s.id for s in half["train"]] == [s.id for s in every["train"]]
    assert {s.config.problems for s in half["evaluate"]} == {20}
    assert not {s.id for s in half["evaluate"]} & {s.id for s in every["evaluate"]}
    # All of the set, or more than it has, is the step without `problems`.
    for problems in (40, 1000):
        again = _evaluations(spec, f"stages.evaluate.problems={problems}")
        assert [s.id for s in again["evaluate"]] == [s.id for s in every["evaluate"]]

    sharded = ["stages.evaluate.shard_size=10", "stages.evaluate.batch_size=10"]
    first = _evaluations(spec, *sharded, "stages.evaluate.problems=20")
    more = _evaluations(spec, *sharded, "stages.evaluate.problems=40")
    assert [s.config.shard for s in first["evaluate"][:2]] == shards_of(20, 10)
    assert {s.config.problems for s in more["evaluate"]} == {None}  # the range says it
    new = {s.id for s in more["evaluate"]} - {s.id for s in first["evaluate"]}
    assert len(new) == len(more["evaluate"]) // 2  # each model's shards 2 and 3
    assert {s.id for s in more["evaluate"]} == {
        s.id for s in _evaluations(spec, *sharded)["evaluate"]
    }


@pytest.mark.parametrize(
    "stage, settings, message",
    [
        ("sample", {"shard_size": 10, "batch_size": 10}, "needs seeding: per_problem"),
        ("rollout", {"shard_size": 10}, "needs seeding: per_problem"),
        ("evaluate", {"shard_size": 10, "samples": 4, "batch_size": 10}, "needs seeding"),
        ("sample", {"shard_size": 15, **SEEDED}, "not a multiple of batch_size 10"),
        ("evaluate", {"shard_size": 15, "batch_size": 10}, "not a multiple of batch_size"),
    ],
)
def test_shard_settings_that_would_change_a_result_are_refused(tmp_path, stage, settings, message):
    spec = _spec(tmp_path, stages=SMALL_SPEC["stages"] | {stage: settings})
    with pytest.raises(SpecError, match=message):
        load_spec(spec)


def test_shard_settings_that_keep_results_are_taken(tmp_path):
    for stage, settings in [
        ("evaluate", {"shard_size": 15, "batch_size": 5}),  # greedy only
        ("rollout", {"shard_size": 7, "batch_size": 10, "seeding": "per_problem"}),
        ("sample", {"shard_size": 7, "backend": "vllm", "seeding": "per_problem"}),
    ]:
        load_spec(_spec(tmp_path, stages=SMALL_SPEC["stages"] | {stage: settings}))


def test_a_real_worlds_sharded_eval_set_is_counted_from_its_file(tmp_path):
    path = tiny_gsm8k_spec(tmp_path)
    spec = load_spec(path, ["stages.evaluate.shard_size=2", "stages.evaluate.batch_size=1"])
    assert spec.eval_set_size("test") == 5 and spec.eval_set_size("val") == 8
    plan = expand(spec)
    evaluations = [s for s in plan.steps if s.stage == "evaluate"]
    assert {s.config.shard for s in evaluations} == set(shards_of(5, 2))
    # A file whose records are counted only once it is read cannot be cut before.
    (tmp_path / "test.json").write_text((tmp_path / "test.jsonl").read_text())
    with pytest.raises(SpecError, match="stages.evaluate.shard_size: eval set 'test'"):
        load_spec(path, ["stages.evaluate.shard_size=2", "stages.evaluate.batch_size=1",
                         f"world.eval_files.test={tmp_path / 'test.json'}"])  # fmt: skip


def test_the_shards_of_a_stage_go_out_as_one_array(tmp_path):
    plan = expand(load_spec(_sharded(tmp_path, [40])))
    arrays = group_arrays(plan.steps, {}, plan.resources, max_array_size=1001)
    by_stage = {}
    for index, array in enumerate(arrays):
        by_stage.setdefault(array.stage, []).append((index, array))
    # The sampler's four sample shards, then the learner's (behind its training); their
    # verify shards each wait on their own sample shard only.
    (first_samples, sampler_shards), (_, learner_shards) = by_stage["sample"]
    assert len(sampler_shards.steps) == len(learner_shards.steps) == 4
    verify_arrays = [array for _, array in by_stage["verify"]]
    assert [len(array.steps) for array in verify_arrays] == [4, 4]
    assert NeedsArray(first_samples, None, corresponding=True) in verify_arrays[0].needs_arrays
