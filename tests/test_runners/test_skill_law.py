"""The Zipf-skill world's own scaling law (runners/worlds/skill_law.py) against an ideal learner
simulated in numpy, and against the project's fitter: known truth, recovered."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.fit import fit_power_law
from runners.worlds.skill_law import SkillLaw, simulate_ideal_learner


@pytest.mark.parametrize(
    ("law", "sizes"),
    [
        (SkillLaw(skills=5000, zipf=2.0), [50, 200, 800, 3200]),
        (SkillLaw(skills=500, zipf=1.5, per_problem=2, exposures=3), [100, 400, 1600]),
        (SkillLaw(skills=300, zipf=1.3, per_problem=3, exposures=2, chance=0.1), [100, 1000]),
    ],
    ids=["one skill", "two skills, three exposures", "three skills, guesses"],
)
def test_the_expected_error_is_what_an_ideal_learner_gets(law, sizes):
    simulated = simulate_ideal_learner(law, sizes, seeds=40, test_problems=2000, seed=1)
    mean = simulated.mean(axis=1)
    # The simulation's own noise: seeds' spread over sqrt(seeds), and a floor for the binomial
    # noise of 2,000 test problems.
    noise = np.maximum(simulated.std(axis=1, ddof=1) / np.sqrt(40), 1e-3)
    expected = law.expected_error(sizes)
    assert np.all(np.abs(mean - expected) < 4 * noise), (mean, expected, noise)


@pytest.mark.parametrize("zipf", [1.5, 2.0, 3.0])
@pytest.mark.parametrize(("per_problem", "exposures"), [(1, 1), (2, 3)])
def test_the_exponent_is_one_less_than_one_over_a_whatever_the_knobs(zipf, per_problem, exposures):
    law = SkillLaw(skills=100_000, zipf=zipf, per_problem=per_problem, exposures=exposures)
    low, high = law.power_law_range()
    sizes = np.rint(np.geomspace(max(low, 100), min(high, 1e6), 6))
    exact = law.expected_error(sizes)
    slopes = np.diff(np.log(exact)) / np.diff(np.log(sizes))
    assert law.exponent == pytest.approx(1 - 1 / zipf)
    assert np.all(np.abs(-slopes - law.exponent) < 0.05), slopes
    # Where the error is small, the closed form is the exact sum's value, constant included.
    small = exact < 0.05
    assert np.allclose(law.asymptotic_error(sizes)[small], exact[small], rtol=0.1)


def test_the_fitter_recovers_the_predicted_exponent_from_simulated_seeds():
    # What the demo must show, on an ideal learner: 5 sizes over 16x, 3 seeds each, the
    # world's test set of 1,000 problems; the power law's exponent comes back within its noise.
    law = SkillLaw(skills=20_000, zipf=2.0, per_problem=2, exposures=2)
    sizes = np.array([200, 400, 800, 1600, 3200])
    simulated = simulate_ideal_learner(law, sizes, seeds=3, test_problems=1000, seed=7)
    fit = fit_power_law(np.repeat(sizes, 3), simulated.ravel(), fix_E_zero=True)
    assert fit.alpha == pytest.approx(law.exponent, abs=0.08), fit


def test_past_the_rarest_skill_the_power_law_ends():
    law = SkillLaw(skills=50, zipf=2.0)
    _, high = law.power_law_range()
    far = law.expected_error([int(high * 1000)])[0]
    assert far < 0.2 * law.asymptotic_error([int(high * 1000)])[0]  # every skill is known


@pytest.mark.parametrize(
    "knobs",
    [{"zipf": 1.0}, {"skills": 0}, {"per_problem": 0}, {"exposures": 0}, {"chance": 1.0}],
)
def test_knobs_outside_the_law_are_refused(knobs):
    with pytest.raises(ValueError):
        SkillLaw(**({"skills": 10, "zipf": 2.0} | knobs))
