"""The pretrained base: one content-addressed `pretrain` step that every cell fine-tunes from, kept
in the results root's shared store, so that a second experiment on the machine reuses it.

The runs are real (a pretraining corpus generated, a model trained with trl for a few steps, the
fine-tuning started from its weights); the settings are tiny so that they fit in CI.
"""

from __future__ import annotations

import json

import pytest

from conftest import SMALL_SPEC, write_spec
from scaler.plan import expand
from scaler.spec.load import load_spec

TINY_PRETRAIN = {"problems": 60, "steps": 6, "eval_every": 3, "val_problems": 10}
SKILLS = {"count": 30, "zipf": 1.5, "per_problem": 2, "pretrain_count": 6}
WITH_BASE = dict(SMALL_SPEC, world=dict(SMALL_SPEC["world"], skills=SKILLS), pretrain=TINY_PRETRAIN)


def _spec(tmp_path, name: str, **changes):
    return write_spec(tmp_path / f"{name}.yaml", dict(WITH_BASE, experiment=name, **changes))


def _pretrain_id(path) -> str:
    return next(step.id for step in expand(load_spec(path)).steps if step.stage == "pretrain")


def test_every_model_trained_from_scratch_starts_from_the_one_base(tmp_path):
    spec = _spec(tmp_path, "a", algorithms=["sft", "rft", "dpo"])
    plan = expand(load_spec(spec))
    base = next(step for step in plan.steps if step.stage == "pretrain")
    inits = [dict(step.inputs).get("init") for step in plan.steps if step.stage == "train"]
    by_algorithm = {}
    for step in plan.steps:
        if step.stage == "train":
            by_algorithm.setdefault(step.coords["algorithm"], set()).add(dict(step.inputs)["init"])
    assert by_algorithm["sft"] == by_algorithm["rft"] == {base}  # rft starts from the base
    assert all(init is not None for init in inits)
    assert all(init.stage == "train" for init in by_algorithm["dpo"])  # dpo: from SFT
    assert plan.cells[base.id] == len([s for s in plan.steps if s.stage == "evaluate"])


def test_the_base_depends_on_the_world_s_knobs_and_the_model_not_its_seed_or_sizes(tmp_path):
    first = _pretrain_id(_spec(tmp_path, "a"))
    other_world = dict(WITH_BASE["world"], seed=5, train_pool=150, test_problems=20)
    assert _pretrain_id(_spec(tmp_path, "b", world=other_world, sizes=[30])) == first
    # A shortcut is planted in the fine-tuning pool only: the corpus and the base are the same.
    cued = dict(WITH_BASE["world"], skills=dict(SKILLS, shortcut=0.8))
    assert _pretrain_id(_spec(tmp_path, "cued", world=cued)) == first
    assert _pretrain_id(_spec(tmp_path, "c", world=dict(other_world, modulus=13))) != first
    bigger = dict(WITH_BASE["model"], hidden=64)
    assert _pretrain_id(_spec(tmp_path, "d", model=bigger)) != first


def test_a_second_experiment_reuses_the_base_the_first_pretrained(cli, results, tmp_path):
    first = _spec(tmp_path, "first", sizes=[50])
    done = cli(f"run {first} --executor inline")
    assert done.code == 0, done.err
    store = results / "_store" / "steps" / "pretrain"
    (base,) = [p for p in store.iterdir() if not p.name.startswith(".")]
    assert not (results / "first" / "steps" / "pretrain").exists()
    pretrained_at = (base / "result.json").stat().st_mtime_ns
    train = next((results / "first" / "steps" / "train").iterdir())
    assert json.loads((train / "config.json").read_text())["inputs"]["init"] == str(base)

    # Another experiment, another world seed: everything runs except the base.
    second = _spec(tmp_path, "second", world=dict(WITH_BASE["world"], seed=1), sizes=[50])
    assert f"{base.name}" in cli(f"plan {second} --steps").out
    assert "pretrain      1     1" in cli(f"plan {second}").out
    again = cli(f"run {second} --executor inline")
    assert again.code == 0, again.err
    attempts = (results / "second" / "logs" / "attempts.jsonl").read_text()
    assert "pretrain-" not in attempts and "train-" in attempts
    assert (base / "result.json").stat().st_mtime_ns == pretrained_at
    assert [p.name for p in store.iterdir() if not p.name.startswith(".")] == [base.name]


def test_a_real_world_cannot_pretrain(cli, tmp_path):
    from conftest import tiny_gsm8k_spec

    spec = tiny_gsm8k_spec(tmp_path)
    text = spec.read_text() + "pretrain: {steps: 10}\n"
    spec.write_text(text)
    refused = cli(f"plan {spec}")
    assert refused.code == 2 and "pretrain: only the demo world" in refused.err


@pytest.mark.parametrize("field", ["skills", "pretrain"])
def test_a_bad_skill_or_pretrain_setting_is_one_line(cli, tmp_path, field):
    bad = {"skills": {"count": 0}} if field == "skills" else {}
    world = dict(WITH_BASE["world"], **bad)
    spec = _spec(tmp_path, "bad", world=world, pretrain={"steps": 0} if bad == {} else None)
    refused = cli(f"plan {spec}")
    assert refused.code == 2 and field in refused.err and "Traceback" not in refused.err


def test_a_sampler_trained_on_teacher_data_starts_from_a_base_of_its_own(tmp_path):
    weak = {"layers": 1, "hidden": 16, "heads": 2, "intermediate": 32}
    sampler = {"name": "weak", "model": weak, "train_size": 50, "samples": 2}
    plan = expand(load_spec(_spec(tmp_path, "s", sources=["teacher", sampler])))
    bases = {s.config.model.hidden: s for s in plan.steps if s.stage == "pretrain"}
    assert sorted(bases) == [16, 32]  # the learner's (SMALL_SPEC) and the sampler's
    trains = [s for s in plan.steps if s.stage == "train"]
    sampler_train = next(s for s in trains if s.config.model.hidden == 16)
    assert dict(sampler_train.inputs)["init"] is bases[16]
    assert all(dict(s.inputs)["init"] is bases[32] for s in trains if s is not sampler_train)
