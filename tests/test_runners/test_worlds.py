"""The worlds behind one interface: what each tells the stages (runners/worlds/)."""

from __future__ import annotations

import pytest

from runners.worlds import world
from runners.worlds.demo import WorldConfig, make_problem


def test_the_demo_world_knows_its_steps_and_keys_paths_by_them():
    demo = world("demo")
    assert demo.knows_step_truth and (demo.step_separator, demo.min_step_chars) == (";", 0)
    assert demo.sampled_text("1 + 2 = A 3") == " 1 + 2 = A 3"
    problem = make_problem(WorldConfig(), 0, "train", 0)
    assert len(demo.path_key(problem, problem["solution"])) == problem["n_steps"]
    with pytest.raises(ValueError, match="demo world"):
        demo.judge(2.0, 1, {"version": 2})


@pytest.mark.parametrize("name", ["gsm8k", "math"])
def test_a_real_world_judges_answers_and_cuts_steps_at_lines(name):
    real = world(name)
    assert real.name == name and not real.knows_step_truth
    assert (real.step_separator, real.min_step_chars) == ("\n", 8)
    assert real.sampled_text(" 12") == " 12"
    assert real.path_key({}, "<<48/2=24>> so 24") == ("48/2=24",)


def test_an_unknown_world_names_the_known_ones():
    with pytest.raises(ValueError, match="world 'mnist': expected one of demo, gsm8k, math"):
        world("mnist")
