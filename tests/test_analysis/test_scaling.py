"""The analysis on synthetic experiments whose truth is known: per-problem outcomes drawn from
known error curves, arms that differ by a known data factor, seeds with their own noise."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.bootstrap import resample_errors
from analysis.points import Points
from analysis.scaling import analyse
from analysis.settings import AnalysisSettings
from scaler.errors import SpecError
from synthetic_points import CURVE, synthetic_points, true_error

SIZES = (250, 500, 1000, 2000, 4000, 8000)
TRUE = dict(zip(("E", "A", "alpha"), CURVE, strict=True))
experiment = synthetic_points


def settings(**overrides) -> AnalysisSettings:
    return AnalysisSettings(**({"resamples": 200} | overrides))


def test_recovers_the_known_curve_with_intervals_that_cover_it():
    points = experiment(np.random.default_rng(0), {"sft": 1.0}, problems=2000)
    fit = analyse(points, settings(), "synthetic").arm("sft").fits["power"]
    assert fit.params["alpha"] == pytest.approx(TRUE["alpha"], rel=0.25)
    low, high = fit.intervals["alpha"]
    assert low < TRUE["alpha"] < high
    predicted = fit.fit.predict(np.array(SIZES, dtype=float))
    np.testing.assert_allclose(predicted, true_error(SIZES), rtol=0.08)


@pytest.mark.parametrize("factor", [2.0, 4.0])
def test_multiplier_recovers_a_known_data_factor(factor):
    """An arm whose error at D is the baseline's at factor x D is worth factor x the data."""
    points = experiment(np.random.default_rng(1), {"sft": 1.0, "rft": factor}, problems=1000)
    result = analyse(points, settings(sizes=[1000, 2000]), "synthetic")
    assert [m.arm for m in result.multipliers] == ["rft", "rft"]
    for m in result.multipliers:
        assert m.baseline == "sft"
        assert m.value == pytest.approx(factor, rel=0.2)
        assert m.low < factor < m.high
        assert not m.extrapolated


def test_multiplier_beyond_the_baseline_sizes_is_flagged():
    points = experiment(np.random.default_rng(2), {"sft": 1.0, "rft": 4.0})
    result = analyse(points, settings(sizes=[4000, 8000], resamples=0), "synthetic")
    # The baseline needs ~4 x 8000 problems to match: beyond its largest size, 8000.
    assert [m.extrapolated for m in result.multipliers] == [True, True]


@pytest.mark.slow
@pytest.mark.parametrize("seed_noise", [0.05, 0.2])
def test_bootstrap_intervals_cover_the_truth_at_about_their_nominal_rate(seed_noise):
    """Little seed spread (the model x problem noise dominates) and much (seeds dominate)."""
    _coverage_check(draws=100, seed_noise=seed_noise, tolerance=0.1)


def test_bootstrap_interval_coverage_quick():
    """The same check on fewer draws, with a wider band: run in every `make test`."""
    _coverage_check(draws=40, seed_noise=0.1, tolerance=0.17)


def _coverage_check(draws: int, seed_noise: float, tolerance: float) -> None:
    """Over repeated synthetic experiments, the 80% interval of m(1000) holds the true factor
    in about 80% of them."""
    factor, confidence, hits = 2.0, 0.8, 0
    for draw in range(draws):
        points = experiment(
            np.random.default_rng(100 + draw), {"sft": 1.0, "rft": factor}, seed_noise=seed_noise
        )
        result = analyse(
            points,
            settings(sizes=[1000], confidence=confidence, resamples=200, seed=draw),
            "synthetic",
        )
        (m,) = result.multipliers
        hits += m.low <= factor <= m.high
    coverage = hits / draws
    assert abs(coverage - confidence) <= tolerance, coverage


def test_resamples_redraw_the_same_seeds_and_problems_in_every_arm():
    """Arms that ran the same seeds redraw them alike; problems are drawn once for all."""
    rng = np.random.default_rng(3)
    points = experiment(rng, {"sft": 1.0, "rft": 1.0}, seed_noise=0.0, problems=50)
    # Make the two arms identical model for model: then paired draws give identical errors.
    half = len(points) // 2
    points.outcomes[half:] = points.outcomes[:half]
    points = Points(**{**vars(points), "value": points.outcomes.mean(axis=1)})
    draws = resample_errors(points, 100, np.random.default_rng(0))
    np.testing.assert_array_equal(draws["sft"].errors, draws["rft"].errors)
    assert draws["sft"].errors.shape == (100, len(SIZES) * 3)
    assert draws["sft"].errors.std(axis=0).min() > 0  # the problems were redrawn


def test_resampled_errors_centre_on_the_data():
    points = experiment(np.random.default_rng(4), {"sft": 1.0})
    draws = resample_errors(points, 2000, np.random.default_rng(1))["sft"]
    for size in SIZES:
        at_size = points.size == size
        np.testing.assert_allclose(
            draws.errors[:, draws.sizes == size].mean(), points.error[at_size].mean(), rtol=0.03
        )


def test_redraws_that_all_pick_the_same_seeds_stay_finite():
    """Two seeds of a loss, and every one of 7 redraws picked both: the draws' means agree to
    rounding, and scaling by that zero spread once sent errors to inf and 0 (generator seed 269
    draws exactly that)."""
    points = Points(
        metric="loss",
        higher_is_better=False,
        arm=np.array(["rft"] * 3),
        size=np.array([10.0, 80.0, 80.0]),
        seed=np.array([0, 0, 1]),
        value=np.array([4.068, 4.565, 3.037]),
        facets={},
    )
    errors = resample_errors(points, 7, np.random.default_rng(269))["rft"].errors
    assert np.isfinite(errors).all() and (errors > 0).all()
    np.testing.assert_allclose(errors[:, 1:].mean(axis=1), 3.801)


def test_every_form_is_fitted_and_reports_its_quality():
    points = experiment(np.random.default_rng(5), {"sft": 1.0})
    arm = analyse(points, settings(resamples=50), "synthetic").arm("sft")
    assert set(arm.fits) == {"power", "power_e0", "log_linear"}
    assert set(arm.fits["power"].params) == {"E", "A", "alpha"}
    assert set(arm.fits["power_e0"].params) == {"A", "alpha"}
    assert set(arm.fits["log_linear"].params) == {"intercept", "slope"}
    for fit in arm.fits.values():
        assert fit.quality["r_squared"] > 0.8
        assert abs(fit.quality["holdout_error"]) < 0.5
    assert len(arm.means) == len(SIZES)
    assert all(m.low <= m.error <= m.high for m in arm.means)
    assert arm.band is not None and (arm.band.low <= arm.band.high).all()


def test_warnings_fire_on_the_bad_cases():
    rng = np.random.default_rng(6)
    few_sizes = experiment(rng, {"sft": 1.0}, sizes=(500, 1000, 2000))
    warnings = analyse(few_sizes, settings(resamples=0), "synthetic").warnings
    assert any("3 distinct sizes for 3 parameters" in w for w in warnings)

    rising = experiment(rng, {"sft": 1.0}, problems=2000)
    rising.outcomes[rising.size == 8000] = 0.0  # the largest models get everything wrong
    rising = Points(**{**vars(rising), "value": rising.outcomes.mean(axis=1)})
    warnings = analyse(rising, settings(resamples=0), "synthetic").warnings
    assert any("rises with D" in w for w in warnings)

    no_floor = experiment(rng, {"sft": 1.0}, seeds=1)
    pure = Points(
        **{
            **vars(no_floor),
            "outcomes": None,
            "eval_size": None,
            "value": 1 - 3.0 * no_floor.size**-0.5,
        }
    )
    warnings = analyse(pure, settings(), "synthetic").warnings
    assert any("E is at its bound" in w for w in warnings)
    assert any("no intervals" in w for w in warnings)

    one_size = experiment(rng, {"sft": 1.0, "rft": 2.0}, sizes=(500,))
    warnings = analyse(one_size, settings(resamples=0), "synthetic").warnings
    assert any("a single size" in w for w in warnings)


def test_unknown_baseline_is_a_clear_error():
    points = experiment(np.random.default_rng(7), {"sft": 1.0, "rft": 2.0})
    with pytest.raises(SpecError, match="'teacher:sft' is not a fitted arm"):
        analyse(points, settings(baseline="teacher:sft", resamples=0), "synthetic")


def test_to_dict_is_strict_json():
    import json

    points = experiment(np.random.default_rng(8), {"sft": 1.0, "rft": 100.0})
    result = analyse(points, settings(sizes=[8000], resamples=50), "synthetic")
    text = json.dumps(result.to_dict(), allow_nan=False)
    assert json.loads(text)["multipliers"][0]["arm"] == "rft"
