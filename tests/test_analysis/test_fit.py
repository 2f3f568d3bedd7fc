"""Fitting recovers known curves from synthetic data; diagnostics fire when they should."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.diagnostics import fit_warnings
from analysis.fit import PowerLawFit, fit_log_linear, fit_power_law
from analysis.fit_many import fit_power_law_many
from analysis.multipliers import effective_multiplier

SIZES = (100, 200, 400, 800, 1600, 3200, 6400, 12800)
SEEDS = 4
NOISE = 0.03  # multiplicative, as seed-to-seed spread of test error


def synthetic(E: float, A: float, alpha: float, *, seed: int, sizes=SIZES, k: float = 1.0):
    """Several seeds per size of err(k*D) with ~3% multiplicative noise."""
    rng = np.random.default_rng(seed)
    size_arr = np.repeat(np.asarray(sizes, dtype=float), SEEDS)
    clean = E + A * (k * size_arr) ** -alpha
    return size_arr, clean * np.exp(rng.normal(0.0, NOISE, size_arr.size))


@pytest.mark.parametrize(
    ("E", "A", "alpha", "seed"),
    [(0.10, 3.0, 0.5, 0), (0.20, 8.0, 0.7, 1), (0.05, 2.0, 0.35, 2)],
)
def test_recovers_known_curve(E, A, alpha, seed):
    sizes, errors = synthetic(E, A, alpha, seed=seed)
    fit = fit_power_law(sizes, errors)
    assert fit.converged
    assert fit.E == pytest.approx(E, abs=0.03)
    assert fit.alpha == pytest.approx(alpha, rel=0.25)
    # A and alpha trade off; the curve itself is what must match across the data range.
    grid = np.geomspace(SIZES[0], SIZES[-1], 20)
    truth = E + A * grid**-alpha
    np.testing.assert_allclose(fit.predict(grid), truth, rtol=0.03)


def test_counts_points_sizes_and_range():
    sizes, errors = synthetic(0.1, 3.0, 0.5, seed=3)
    fit = fit_power_law(sizes, errors)
    assert (fit.n_points, fit.n_sizes) == (len(SIZES) * SEEDS, len(SIZES))
    assert fit.size_range == (SIZES[0], SIZES[-1])


def test_E_zero_form_recovers_pure_power_law():
    sizes, errors = synthetic(0.0, 5.0, 0.4, seed=4)
    fit = fit_power_law(sizes, errors, fix_E_zero=True)
    assert fit.E == 0.0 and fit.E_fixed
    assert fit.A == pytest.approx(5.0, rel=0.15)
    assert fit.alpha == pytest.approx(0.4, abs=0.02)


def test_free_E_on_pure_power_law_finds_a_negligible_floor():
    # With noise, a floor of a few percent of the smallest error can fit slightly better than
    # none: E is not identified, but it must stay small and leave the curve right.
    sizes, errors = synthetic(0.0, 5.0, 0.4, seed=5)
    fit = fit_power_law(sizes, errors)
    assert fit.E < 0.1 * errors.min()
    grid = np.geomspace(SIZES[0], SIZES[-1], 20)
    np.testing.assert_allclose(fit.predict(grid), 5.0 * grid**-0.4, rtol=0.03)


def test_noise_free_pure_power_law_puts_E_at_its_bound_and_warns():
    sizes = np.asarray(SIZES, dtype=float)
    errors = 5.0 * sizes**-0.4
    fit = fit_power_law(sizes, errors)
    assert fit.E < 1e-6
    assert any("E is at its bound" in w for w in fit_warnings(fit, sizes, errors))


def test_inverse_undoes_predict():
    fit = PowerLawFit(
        E=0.1, A=3.0, alpha=0.5, loss=0.0, n_points=1, n_sizes=1,
        size_range=(100.0, 1000.0), converged=True,
    )  # fmt: skip
    sizes = np.array([1.0, 50.0, 700.0, 1e6])
    np.testing.assert_allclose(fit.inverse(fit.predict(sizes)), sizes, rtol=1e-9)
    assert fit.inverse(fit.predict(123.0)) == pytest.approx(123.0)


def test_inverse_is_inf_below_the_floor_and_nan_for_nan():
    fit = PowerLawFit(0.1, 3.0, 0.5, 0.0, 1, 1, (100.0, 1000.0), True)
    assert fit.inverse(0.1) == math.inf
    assert fit.inverse(0.05) == math.inf
    assert math.isnan(fit.inverse(math.nan))


@pytest.mark.parametrize("k", [2.0, 8.0])
def test_multiplier_recovers_known_data_factor(k):
    # The baseline spans larger sizes, so the matching baseline size k*D stays inside its range.
    base_sizes = (100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200)
    base = fit_power_law(*synthetic(0.1, 3.0, 0.5, seed=6, sizes=base_sizes))
    arm = fit_power_law(*synthetic(0.1, 3.0, 0.5, seed=7, sizes=(100, 200, 400, 800), k=k))
    at = np.array([200.0, 400.0, 800.0])
    estimate = effective_multiplier(base, arm, at)
    np.testing.assert_allclose(estimate.multiplier, k, rtol=0.25)
    assert not estimate.extrapolated.any()


def test_multiplier_is_scalar_for_scalar_and_flags_extrapolation():
    base = PowerLawFit(0.1, 3.0, 0.5, 0.0, 1, 1, (100.0, 1000.0), True)
    arm = PowerLawFit(0.1, 3.0 * 4.0**-0.5, 0.5, 0.0, 1, 1, (100.0, 1000.0), True)  # k = 4
    inside = effective_multiplier(base, arm, 200.0)
    assert inside.multiplier == pytest.approx(4.0)
    assert inside.extrapolated is False
    # 4 * 500 = 2000 lies beyond the baseline's largest fitted size.
    multiplier, extrapolated = effective_multiplier(base, arm, 500.0)
    assert multiplier == pytest.approx(4.0) and extrapolated is True


def test_multiplier_is_infinite_when_the_arm_beats_the_baseline_floor():
    base = PowerLawFit(0.2, 3.0, 0.5, 0.0, 1, 1, (100.0, 1000.0), True)
    arm = PowerLawFit(0.05, 3.0, 0.5, 0.0, 1, 1, (100.0, 1000.0), True)
    estimate = effective_multiplier(base, arm, 1e5)
    assert estimate.multiplier == math.inf and estimate.extrapolated is True


def test_warns_on_too_few_sizes():
    sizes, errors = synthetic(0.1, 3.0, 0.5, seed=8, sizes=(100, 1000))
    fit = fit_power_law(sizes, errors)
    assert any("under-determined" in w for w in fit_warnings(fit, sizes, errors))


def test_warns_on_non_monotone_seed_means():
    sizes, errors = synthetic(0.1, 3.0, 0.5, seed=9)
    errors = np.where(sizes == 1600, errors * 2.0, errors)
    fit = fit_power_law(sizes, errors)
    assert any("rises with D" in w for w in fit_warnings(fit, sizes, errors))


def test_clean_data_gives_no_warnings():
    sizes, errors = synthetic(0.1, 3.0, 0.5, seed=10)
    fit = fit_power_law(sizes, errors)
    assert fit_warnings(fit, sizes, errors) == []


def test_rejects_zero_error():
    with pytest.raises(ValueError, match="zero error"):
        fit_power_law([100, 200, 400], [0.3, 0.2, 0.0])


@pytest.mark.parametrize("fix_E_zero", [False, True])
@pytest.mark.parametrize("given_delta", [None, 0.02])
def test_many_at_once_matches_single_lbfgsb_fits(fix_E_zero, given_delta):
    """The vectorised refits reach the optimum L-BFGS-B finds, curve by curve."""
    rng = np.random.default_rng(11)
    sizes = np.repeat(np.asarray(SIZES, dtype=float), SEEDS)
    n = 24
    E, A, alpha = rng.uniform(0.02, 0.3, n), rng.uniform(1, 10, n), rng.uniform(0.2, 1.0, n)
    clean = (0 if fix_E_zero else E[:, None]) + A[:, None] * sizes ** -alpha[:, None]
    curves = clean * np.exp(rng.normal(0.0, 0.05, clean.shape))
    many = fit_power_law_many(sizes, curves, fix_E_zero=fix_E_zero, delta=given_delta)
    assert many.converged.all()
    grid = np.geomspace(SIZES[0], SIZES[-1], 10)
    for i, row in enumerate(curves):
        single = fit_power_law(sizes, row, fix_E_zero=fix_E_zero, delta=given_delta)
        # Without a given delta each path sets its own from its least-squares stage, so the
        # objectives themselves differ a little.
        tolerance = 1e-5 if given_delta else 1e-3
        assert many.loss[i] <= single.loss * (1 + tolerance) + 1e-12
        # Equal losses can sit at slightly different points of a flat valley.
        np.testing.assert_allclose(many.predict(grid)[i], single.predict(grid), rtol=1e-2)


def test_many_inverse_undoes_predict():
    sizes, errors = synthetic(0.1, 3.0, 0.5, seed=14)
    many = fit_power_law_many(sizes, np.stack([errors, errors * 1.1]))
    grid = np.array([150.0, 900.0, 5000.0])
    np.testing.assert_allclose(many.inverse(many.predict(grid)), np.stack([grid, grid]), rtol=1e-6)


def test_huber_delta_follows_the_seed_noise():
    """delta is 1.345 robust SDs of the residuals: it grows with the noise, never below 1e-3."""
    quiet = fit_power_law(*synthetic(0.1, 3.0, 0.5, seed=15))
    sizes = np.repeat(np.asarray(SIZES, dtype=float), SEEDS)
    noisy_errors = (0.1 + 3.0 * sizes**-0.5) * np.exp(
        np.random.default_rng(15).normal(0.0, 0.3, sizes.size)
    )
    noisy = fit_power_law(sizes, noisy_errors)
    assert 0.01 < quiet.delta < 0.08 and 0.15 < noisy.delta < 0.8
    exact = fit_power_law(SIZES, [0.1 + 3.0 * s**-0.5 for s in SIZES])
    assert exact.delta == pytest.approx(1e-3)


def test_to_dict_is_json_ready():
    import json

    sizes, errors = synthetic(0.1, 3.0, 0.5, seed=12)
    data = fit_power_law(sizes, errors).to_dict()
    assert json.loads(json.dumps(data))["size_range"] == [SIZES[0], SIZES[-1]]


def test_log_linear_recovers_intercept_and_slope():
    rng = np.random.default_rng(13)
    sizes = np.repeat(np.asarray(SIZES, dtype=float), SEEDS)
    accuracies = 0.05 + 0.06 * np.log(sizes) + rng.normal(0.0, 0.005, sizes.size)
    fit = fit_log_linear(sizes, accuracies)
    assert fit.a == pytest.approx(0.05, abs=0.02)
    assert fit.b == pytest.approx(0.06, abs=0.003)
    assert fit.r_squared > 0.99
    assert fit.predict(1000.0) == pytest.approx(0.05 + 0.06 * math.log(1000.0), abs=0.01)
