"""Expansion and hashing: pure functions, tested alone (no I/O)."""

from __future__ import annotations

import math

import pytest

from conftest import tiny_gsm8k_spec, write_spec
from scaler.fingerprint import canonical_json, content_hash
from scaler.plan import expand
from scaler.spec.load import load_spec


def _plan(small_spec, *overrides):
    return expand(load_spec(small_spec, list(overrides)))


def _ids(plan, stage):
    return {step.coords.get("size"): step.id for step in plan.steps if step.stage == stage}


def test_same_config_same_ids(small_spec):
    first, second = _plan(small_spec), _plan(small_spec)
    assert [s.id for s in first.steps] == [s.id for s in second.steps]


@pytest.mark.parametrize(
    "override, changed_stages",
    [
        ("stages.train.lr=0.01", {"train", "evaluate"}),
        ("model.hidden=64", {"train", "evaluate"}),
        ("world.modulus=19", {"generate", "train", "evaluate"}),
        ("world.seed=1", {"generate", "train", "evaluate"}),
        ("stages.evaluate.max_new_tokens=30", {"evaluate"}),
    ],
)
def test_output_changing_fields_change_ids_downstream(small_spec, override, changed_stages):
    base, changed = _plan(small_spec), _plan(small_spec, override)
    for stage in ("generate", "train", "evaluate"):
        same = _ids(base, stage) == _ids(changed, stage)
        assert same == (stage not in changed_stages), (override, stage)


@pytest.mark.parametrize(
    "override",
    [
        "resources.default.cpus=2",
        "resources.train.mem_gb=64",
        "resources.train.time_min=600",
        "executor.name=local",
        "executor.parallel=7",
        "description=another-description",
    ],
)
def test_resources_and_descriptions_do_not_change_ids(small_spec, override):
    assert [s.id for s in _plan(small_spec).steps] == [
        s.id for s in _plan(small_spec, override).steps
    ]


def test_experiment_name_does_not_change_ids(small_spec):
    # The same work under another experiment name is the same step (its folder differs).
    assert [s.id for s in _plan(small_spec).steps] == [
        s.id for s in _plan(small_spec, "experiment=other").steps
    ]


def test_shared_steps_appear_once(small_spec):
    plan = _plan(small_spec, "sizes=[25,50,100]", "seeds=[0,1]", "eval_sets=[test,val]")
    stages = [step.stage for step in plan.steps]
    assert stages.count("generate") == 1
    assert stages.count("train") == 3 * 2
    assert stages.count("evaluate") == 3 * 2 * 2
    generate = next(s for s in plan.steps if s.stage == "generate")
    assert plan.cells[generate.id] == 3 * 2 * 2
    assert all(plan.cells[s.id] == 2 for s in plan.steps if s.stage == "train")


def test_steps_come_after_their_inputs(small_spec):
    seen = set()
    for step in _plan(small_spec, "seeds=[0,1,2]").steps:
        assert all(inp.id in seen for _, inp in step.inputs)
        seen.add(step.id)


def test_sizes_share_one_data_step_and_adding_a_size_reuses_the_rest(small_spec):
    # Sizes are prefixes of one seeded order: the data step does not depend on the sizes, so a
    # new size leaves every existing step's id alone.
    small = _plan(small_spec, "sizes=[50,100]")
    grown = _plan(small_spec, "sizes=[50,100,200]")
    assert set(s.id for s in small.steps) < set(s.id for s in grown.steps)
    assert len(grown.steps) == len(small.steps) + 2


def test_extra_seeds_add_cells_at_their_size_only_and_leave_the_rest(small_spec):
    grid = _plan(small_spec, "seeds=[0,1]")
    more = _plan(small_spec, "seeds=[0,1]", "extra_seeds=[{size: 100, seeds: [7]}]")
    assert set(s.id for s in grid.steps) < set(s.id for s in more.steps)
    added = [s for s in more.steps if s.id not in {g.id for g in grid.steps}]
    assert {(s.stage, s.coords["size"], s.coords["seed"]) for s in added} == {
        ("train", 100, 7),
        ("evaluate", 100, 7),
    }
    # The same cell as a seed of the whole grid would be: one step, whichever way it is asked.
    everywhere = _plan(small_spec, "seeds=[0,1,7]")
    assert {s.id for s in added} < {s.id for s in everywhere.steps}


def test_grid_coordinates(small_spec):
    plan = _plan(small_spec, "seeds=[4]")
    train = [s for s in plan.steps if s.stage == "train"]
    assert {(s.coords["size"], s.coords["seed"], s.coords["algorithm"]) for s in train} == {
        (50, 4, "sft"),
        (100, 4, "sft"),
    }
    evaluate = [s for s in plan.steps if s.stage == "evaluate"]
    assert all(s.coords["eval_set"] == "test" for s in evaluate)


@pytest.mark.parametrize("value", [math.nan, math.inf, {1, 2}, object(), b"bytes"])
def test_fingerprints_refuse_values_without_a_canonical_form(value):
    with pytest.raises((TypeError, ValueError)):
        content_hash({"x": value})


def test_canonical_json_is_order_independent():
    assert canonical_json({"b": 1, "a": [1, 2]}) == canonical_json({"a": [1, 2], "b": 1})
    assert content_hash({"b": 1, "a": 2}) == content_hash({"a": 2, "b": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 1.5})


def test_plan_of_the_demo_spec(tmp_path):
    from conftest import ROOT

    plan = expand(load_spec(ROOT / "specs" / "demo.yaml"))
    spec = load_spec(ROOT / "specs" / "demo.yaml")
    assert len(spec.sizes) >= 5 and max(spec.sizes) / min(spec.sizes) >= 16
    assert len(spec.seeds) >= 3 and len(spec.arm_names()) >= 2  # a multiplier with intervals
    cells = len(spec.sizes) * len(spec.seeds)
    by_stage = {stage: len(steps) for stage, steps in plan.by_stage().items()}
    # SFT, then RFT from its samples: sample, verify, build, train and each arm's evaluation.
    assert by_stage == {"generate": 1, "pretrain": 1, "sample": cells, "verify": cells,
                        "build": cells, "train": 2 * cells, "evaluate": 2 * cells}  # fmt: skip
    (base,) = plan.by_stage()["pretrain"]
    assert all(dict(step.inputs)["init"] is base for step in plan.by_stage()["train"])
    write_spec(tmp_path / "x.yaml", {"experiment": "x", "world": {"name": "demo"}, "sizes": [10]})
    assert len(expand(load_spec(tmp_path / "x.yaml")).steps) == 3


def test_a_field_omitted_when_none_leaves_the_id_until_it_is_set():
    from pydantic import BaseModel, Field

    from runners import OMITTED_WHEN_NONE
    from scaler.plan import config_hash

    class Before(BaseModel):
        lr: float = 0.1

    class After(Before):
        verifier: dict | None = Field(None, json_schema_extra=OMITTED_WHEN_NONE)

    assert config_hash(After()) == config_hash(Before())
    assert config_hash(After(verifier={"version": 2})) != config_hash(Before())
    assert config_hash(After(verifier={"version": 2})) != config_hash(After(verifier={}))


JUDGING = {"verify", "evaluate", "rollout", "train"}


def test_world_verify_conventions_change_the_ids_of_steps_that_judge(tmp_path):
    default = expand(load_spec(tiny_gsm8k_spec(tmp_path)))
    as_sets = expand(load_spec(tiny_gsm8k_spec(tmp_path, verify={"lists": "set"})))
    same = expand(load_spec(tiny_gsm8k_spec(tmp_path, verify={"lists": "ordered"})))
    stages = {step.stage for step in default.steps}
    assert JUDGING <= stages
    for stage in stages:
        assert set(_ids(same, stage).values()) == set(_ids(default, stage).values()), stage
        changed = _ids(as_sets, stage) != _ids(default, stage)
        assert changed == (stage != "prepare"), stage  # the rest read a judging step's output
    verifiers = {
        step.stage: step.config.verifier for step in as_sets.steps if step.stage in JUDGING
    }
    assert all(verifiers[stage]["conventions"]["lists"] == "set" for stage in JUDGING)
    assert verifiers["verify"]["conventions"]["fallback"] == "last number"  # gsm8k's default


def test_the_demo_world_has_no_verifier_in_its_configs(small_spec):
    plan = _plan(small_spec)
    assert all(getattr(step.config, "verifier", None) is None for step in plan.steps)


# --- contracts: the roles a plan wires are the ones each stage declares ----------------------


def _every_spec(tmp_path):
    """The demo specs (every algorithm, sampler sources) and a real-world one."""
    from conftest import ROOT

    demos = [ROOT / "specs" / f"{name}.yaml" for name in ("demo", "bansal-demo", "setlur-demo")]
    return [*demos, tiny_gsm8k_spec(tmp_path)]


def test_every_step_of_the_demo_and_real_plans_wires_what_its_stage_declares(tmp_path):
    from scaler.plan import check_wiring
    from scaler.stages import STAGES

    stages = set()
    for path in _every_spec(tmp_path):
        for step in expand(load_spec(path)).steps:
            check_wiring(step)  # expand checked it too; this says what is checked
            declared = STAGES[step.stage].inputs
            assert all(any(d.matches(role) for d in declared) for role, _ in step.inputs)
            stages.add(step.stage)
    assert stages >= {"generate", "prepare", "sample", "verify", "rollout", "build", "train"}


def test_every_stage_declares_its_inputs_and_outputs():
    from runners.stages import Input
    from scaler.stages import STAGES

    for stage in STAGES.values():
        assert all(isinstance(d, Input) for d in stage.inputs), stage.name
        assert stage.outputs and all(isinstance(name, str) for name in stage.outputs), stage.name


def _data_and_model(small_spec):
    plan = _plan(small_spec)
    by_stage = plan.by_stage()
    return by_stage["generate"][0], by_stage["train"][0], by_stage["evaluate"][0]


def test_a_plan_that_wires_an_undeclared_role_fails_when_it_is_built(small_spec):
    from scaler.plan import Step, check_wiring

    data, model, evaluate = _data_and_model(small_spec)
    misspelt = Step("evaluate", evaluate.config, (("modle", model), ("data", data)))
    with pytest.raises(ValueError, match="stage 'evaluate' has no input 'modle'; it reads model"):
        check_wiring(misspelt)
    missing = Step("evaluate", evaluate.config, (("data", data),))
    with pytest.raises(ValueError, match="stage 'evaluate' needs the input.s. model"):
        check_wiring(missing)
    # `model` wired to a step that writes no model/ folder.
    wrong_source = Step("evaluate", evaluate.config, (("model", data), ("data", data)))
    with pytest.raises(ValueError, match="reads model from its 'model' input"):
        check_wiring(wrong_source)


def test_expand_checks_every_step_it_adds(small_spec, monkeypatch):
    from runners.stages import Input, evaluate

    monkeypatch.setattr(evaluate, "INPUTS", (Input("checkpoint"), Input("data")))
    with pytest.raises(ValueError, match="stage 'evaluate' has no input 'model'"):
        _plan(small_spec)


def test_cell_configs_made_from_one_template_equal_configs_built_whole(small_spec):
    """A grid's train configs are copies of one validated config with their size and seed put
    in (scaler.fingerprint.IntVariants): each equals the config built whole, with its hash."""
    from pydantic import ValidationError

    from runners.stages import train
    from scaler.fingerprint import IntVariants
    from scaler.plan import config_hash

    trained = next(s for s in _plan(small_spec).steps if s.stage == "train")
    variants = IntVariants(trained.config, ("size", "seed"))
    for size, seed in [(7, 3), (10_000, 0), (1, 2**32 - 1)]:
        config, hashed = variants.make(size=size, seed=seed)
        whole = train.Config(**trained.config.model_dump() | {"size": size, "seed": seed})
        assert config == whole and config.model_fields_set == whole.model_fields_set
        assert hashed == config_hash(whole)
    assert trained.config.size == trained.coords["size"]  # the template is left as it was
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        variants.make(size=0, seed=0)
    with pytest.raises(TypeError, match="seed must be an int"):
        variants.make(size=7, seed=True)


def test_step_identity_is_the_canonical_json_of_its_parts(small_spec):
    from scaler.plan import identity_json
    from scaler.stages import STAGES

    for step in _plan(small_spec, "algorithms=[sft,rft,dpo]").steps:
        identity = {
            "stage": step.stage,
            "version": STAGES[step.stage].version,
            "config": step.config_hash,
            "inputs": {role: source.id for role, source in reversed(step.inputs)},
        }
        assert identity_json(step.stage, step.config_hash, step.inputs) == canonical_json(identity)
        assert step.id == content_hash(identity)
