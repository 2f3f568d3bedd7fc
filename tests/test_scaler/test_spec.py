"""Bad input gets one clear error (file, field, what was expected), exit 2, nothing written."""

from __future__ import annotations

import copy
import json

import pytest

from conftest import SMALL_SPEC, tiny_gsm8k_spec, write_spec
from scaler.errors import SpecError
from scaler.spec.load import load_spec
from scaler.spec.schema import AnswerConventions, Spec


def _variant(**changes) -> dict:
    spec = copy.deepcopy(SMALL_SPEC)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        target = spec
        for key in parents:
            target = target.setdefault(key, {})
        target[last] = value
    return spec


BAD_SPECS = [
    # (changes, field named in the error, words the message must contain)
    ({"world__modulos": 13}, "world.modulos", "unknown key; valid keys: "),
    ({"stages__train__lr": "fast"}, "stages.train.lr", "valid number"),
    ({"sizes": [100, 0]}, "sizes", "> 0"),
    ({"sizes": [-5]}, "sizes", "> 0"),
    ({"sizes": [100, 100]}, "sizes", "repeated: [100]"),
    ({"sizes": []}, "sizes", "at least 1"),
    ({"sizes": "many"}, "sizes", "valid list"),
    ({"seeds": [1, 1]}, "seeds", "repeated"),
    ({"algorithms": ["sft", "magic"]}, "algorithms.1", "'sft'"),
    ({"world__name": "gsm9k"}, "world", "unknown world 'gsm9k'"),
    ({"experiment": "../escape"}, "experiment", "should match pattern"),
    ({"experiment": "/abs/path"}, "experiment", "should match pattern"),
    (
        {"resources__train__cpuz": 2},
        "resources.train.cpuz",
        "valid keys: account, cpus, gpus, mem_gb, nodes, partition, processes, qos, sbatch, "
        "signal_delay_s",
    ),
    (
        {"resources__default__sbatch": {"constraint": "a100", "time": 5}},
        "resources.default.sbatch",
        "sbatch option 'time' is set by resources.time_min",
    ),
    ({"resources__gpu": {"cpus": 2}}, "resources.gpu", "'default', 'generate', 'prepare'"),
    ({"executor__retries": -1}, "executor.retries", "greater than or equal to 0"),
    ({"resources__train__cpus": 0}, "resources.train.cpus", "greater than or equal to 1"),
    ({"executor__name": "cloud"}, "executor.name", "'inline', 'local', 'warm' or 'slurm'"),
    ({"sizes": [100, 5000]}, "sizes", "exceed world.train_pool=200"),
    ({"unknown_top": 1}, "unknown_top", "valid keys: algorithms, analysis, cost, description"),
    ({"analysis__baseline": "rft"}, "analysis.baseline", "expected one of ['sft']"),
    ({"analysis__metric": "maj_at_k"}, "analysis.metric", "stages.evaluate.samples"),
    ({"analysis__eval_set": "val"}, "analysis.eval_set", "expected one of eval_sets"),
    ({"analysis__confidence": 1.5}, "analysis.confidence", "less than 1"),
    ({"analysis__sizes": [0]}, "analysis.sizes", "sizes > 0"),
    ({"extra_seeds": [{"size": 75, "seeds": [3]}]}, "extra_seeds.0.size", "not one of sizes"),
    ({"extra_seeds": [{"size": 50, "seeds": [0]}]}, "extra_seeds.0.seeds", "[0] already in"),
    ({"extra_seeds": [{"size": 50, "seeds": [3, 3]}]}, "extra_seeds.0.seeds", "listed twice"),
    (
        {"extra_seeds": [{"size": 50, "seeds": [3]}, {"size": 50, "seeds": [4]}]},
        "extra_seeds.1.size",
        "named twice",
    ),
    ({"extra_seeds": [{"size": 50, "seeds": []}]}, "extra_seeds.0.seeds", "at least 1"),
    # The demo world's checker knows every step: it has no answer conventions to set.
    ({"world__verify": {"lists": "set"}}, "world.verify", "unknown key; valid keys: "),
]


@pytest.mark.parametrize("changes, field, words", BAD_SPECS)
def test_bad_spec_names_file_field_and_expectation(tmp_path, changes, field, words):
    path = write_spec(tmp_path / "bad.yaml", _variant(**changes))
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert caught.value.source == str(path)
    assert caught.value.field == field
    assert words in caught.value.message
    assert "\n" not in str(caught.value)


def test_missing_experiment_is_reported(tmp_path):
    spec = copy.deepcopy(SMALL_SPEC)
    del spec["experiment"]
    with pytest.raises(SpecError, match="experiment: required key is missing"):
        load_spec(write_spec(tmp_path / "s.yaml", spec))


@pytest.mark.parametrize(
    "text, words",
    [
        ("experiment: [unclosed\n", "not valid YAML"),
        ("- a\n- b\n", "mapping of keys at the top level"),
        ("experiment: x\nexperiment: y\n", "not valid YAML"),
    ],
)
def test_malformed_yaml(tmp_path, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=words):
        load_spec(path)


@pytest.mark.parametrize(
    "text, field, words",
    [
        (
            "experiment: x\nstages:\n  train:\n    lr: 1\n   bad: 2\n",
            "stages.train.bad (line 5, column 4)",
            "did not find expected key (while parsing a block mapping from line 3)",
        ),
        (
            "experiment: x\nsizes: [100]\nsizes: [200]\n",
            "sizes (line 3, column 1)",
            "duplicate key",
        ),
        ("experiment: [unclosed\n", "line 2, column 1", "from line 1"),
    ],
)
def test_a_yaml_error_names_its_line_column_and_key(tmp_path, text, field, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert caught.value.field == field
    assert caught.value.message.startswith("not valid YAML: ") and words in caught.value.message


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "absent.yaml")


def test_yaml_tags_are_never_executed(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.yaml"
    path.write_text(f"experiment: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(SpecError):
        load_spec(path)
    assert not marker.exists()


def test_overrides_merge_and_interpolate(small_spec):
    spec = load_spec(small_spec, ["sizes=[10,20,40]", "seeds=[3]", "description=${experiment}-x"])
    assert spec.sizes == [10, 20, 40] and spec.seeds == [3]
    assert spec.description == "small-x"


@pytest.mark.parametrize(
    "override, field, words",
    [
        ("sizes", "sizes", "key=value"),
        ("=3", "=3", "key=value"),
        ("sizes=[1,", "sizes=[1,", ""),
        ("description=${nowhere}", "description", "nowhere"),
        ("stages.train.lrr=1", "stages.train.lrr", "unknown key"),
        # A list where the spec has a mapping: OmegaConf's merge raised a bare TypeError.
        ("stages.evaluate=[]", "stages.evaluate=[]", "cannot merge it"),
        ("stages.train=[1]", "stages.train=[1]", "cannot merge it"),
    ],
)
def test_bad_overrides(small_spec, override, field, words):
    _refused(small_spec, override, field, words)


def _refused(small_spec, override: str, field: str, words: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(small_spec, [override])
    assert caught.value.field == field
    assert words in caught.value.message


@pytest.mark.parametrize(
    "override, field, words",
    [
        ("sizes=[true]", "sizes.0", "valid integer"),  # not a size-1 model
        ("sizes=['100']", "sizes.0", "valid integer"),
        ("sizes=[100.0]", "sizes.0", "valid integer"),
        ("seeds=['0']", "seeds.0", "valid integer"),
        ("seeds=[-1]", "seeds.0", "greater than or equal to 0"),
        ("seeds=[4294967296]", "seeds.0", "less than or equal to 4294967295"),
        ("seeds=[1e23]", "seeds.0", "valid integer"),
        ("world.train_pool=1e12", "world.train_pool", "less than or equal to 1000000"),
        ("stages.train.lr=inf", "stages.train.lr", "expected a finite number, got inf"),
        ("stages.sample.temperature=inf", "stages.sample.temperature", "finite"),
        ("stages.train.lr=nan", "stages.train.lr", ""),
        # true is not a number: pydantic would read it as 1 in every runner's settings.
        ("stages.train.lr=true", "stages.train.lr", "expected a number, got true"),
        ("world.seed=false", "world.seed", "expected a number, got false"),
        ("resources.train.cpus=true", "resources.train.cpus", "expected a number, got true"),
        # Beyond int64 nothing downstream can hold it (a tensor, a DuckDB column).
        (
            "stages.train.max_new_tokens=9223372036854775808",
            "stages.train.max_new_tokens",
            "below 2**63",
        ),
        ("stages.evaluate.seed=-9223372036854775809", "stages.evaluate.seed", "below 2**63"),
    ],
)
def test_values_that_cannot_run_are_refused(small_spec, override, field, words):
    """Strict whole numbers for sizes and seeds, seeds numpy and torch accept, a problem count
    the generator finishes, and finite floats everywhere."""
    _refused(small_spec, override, field, words)


@pytest.mark.parametrize(
    "key",
    ["stages.train.a\nb", "world.\x0c", "stages.evaluate.\u2028x", "resources.train.\x85"],
)
def test_an_error_quoting_a_control_character_stays_one_line(tmp_path, small_spec, key):
    # A key with a line break, in the file or in an override, is quoted escaped (`a\nb`).
    in_file = _variant(**{key.replace(".", "__"): 1})
    for path, overrides in (
        (write_spec(tmp_path / "k.yaml", in_file), []),
        (small_spec, [f"{key}=1"]),
    ):
        with pytest.raises(SpecError) as caught:
            load_spec(path, overrides)
        assert len(str(caught.value).splitlines()) == 1, str(caught.value)
        assert "unknown key" in caught.value.message


def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(cli, results, small_spec):
    for args in (
        f"run {small_spec} sizes=[0]",
        f"run {small_spec} world.bogus=1",
        f"plan {small_spec} algorithms=[rl]",
        f"run {small_spec.parent / 'absent.yaml'}",
        "query ../etc 'SELECT 1'",
        "fit never-ran",
    ):
        result = cli(args)
        assert result.code == 2, args
        assert result.err.startswith("scaler: error: ") and result.err.count("\n") == 1, result.err
    assert not results.exists()


def test_every_command_has_help(cli):
    for command in ("", "plan", "run", "collect", "query", "fit", "plot"):
        result = cli(f"{command} --help")
        assert result.code == 0 and "usage: scaler" in result.out


def test_the_demo_spec_validates():
    # The real-world specs need the data they name: tests/test_runners/test_real_world.py
    # plans them.
    from conftest import ROOT

    assert load_spec(ROOT / "specs" / "demo.yaml").experiment == "demo"


def test_the_readme_spec_example_is_valid(tmp_path):
    from conftest import ROOT

    def first_yaml(text: str) -> str:
        return text.split("```yaml\n")[1].split("```", 1)[0]

    example = first_yaml((ROOT / "README.md").read_text())
    slurm_example = first_yaml((ROOT / "docs" / "slurm.md").read_text())
    path = tmp_path / "readme.yaml"
    path.write_text(example)
    spec = load_spec(path)
    assert spec.experiment == "demo" and spec.sizes == [50, 100, 200, 400, 800]
    # The Slurm resources example (docs/slurm.md) replaces the first one's resources and
    # executor.
    path.write_text(example.split("resources:")[0] + slurm_example)
    on_slurm = load_spec(path)
    assert on_slurm.resources_for("train").sbatch == {
        "constraint": "a100",
        "exclude": "node[07-08]",
    }
    assert on_slurm.resources_for("evaluate").partition == "cpu"


def test_a_saved_spec_with_resources_loads_again(tmp_path):
    # spec.json (what `scaler status` reads back) holds every override field, unset ones null.
    spec = load_spec(
        write_spec(
            tmp_path / "s.yaml",
            SMALL_SPEC
            | {
                "resources": {"default": {"cpus": 1, "time_min": 30}, "train": {"sbatch": {"x": 1}}}
            },
        )
    )
    again = Spec.model_validate(json.loads(spec.model_dump_json()))
    assert again.resources_for("train") == spec.resources_for("train")


def test_world_verify_declares_exactly_the_verifiers_conventions():
    import typing

    from runners.judging.conventions import Conventions

    declared = AnswerConventions.model_fields
    assert list(declared) == Conventions.names()
    types = typing.get_type_hints(Conventions)
    for name, info in declared.items():
        assert info.default is None, name
        assert info.annotation == types[name] | None, name  # same type and allowed values
    assert AnswerConventions().overrides() == {}


BAD_CONVENTIONS = [
    ({"lists": "bag"}, "world.verify.lists", "'ordered' or 'set'"),
    ({"fallback": "last word"}, "world.verify.fallback", "'last expression', 'last number'"),
    ({"extraction": "regex"}, "world.verify.extraction", "'latex+expr', 'latex' or 'expr'"),
    ({"precision": 16}, "world.verify.precision", "less than or equal to 15"),
    ({"percent": "maybe"}, "world.verify.percent", "valid boolean"),
    ({"list": "set"}, "world.verify.list", "unknown key; valid keys: decimal_comma, extraction"),
]


@pytest.mark.parametrize("verify, field, words", BAD_CONVENTIONS)
def test_bad_world_verify_names_its_field(tmp_path, verify, field, words):
    path = tiny_gsm8k_spec(tmp_path, verify=verify)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert (caught.value.source, caught.value.field) == (str(path), field)
    assert words in caught.value.message


def test_world_verify_sets_only_what_it_names(tmp_path):
    spec = load_spec(tiny_gsm8k_spec(tmp_path, verify={"lists": "set", "precision": 3}))
    assert spec.world.verify.overrides() == {"lists": "set", "precision": 3}
    assert load_spec(tiny_gsm8k_spec(tmp_path)).world.verify is None
