"""Multipliers that hold against known truth and against published-style tables: single-point
arms, the shared-exponent form, floors the data contradict, and the warnings that say what not
to trust."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.fit import fit_power_law
from analysis.fit_many import _solve, fit_shared_many
from analysis.points import Points
from analysis.result import SINGLE_POINT
from analysis.scaling import analyse
from analysis.settings import AnalysisSettings
from synthetic_points import synthetic_points, true_error

SIZES = (250, 500, 1000, 2000, 4000, 8000)


def settings(**overrides) -> AnalysisSettings:
    return AnalysisSettings(**({"resamples": 200} | overrides))


def table(rows: list[tuple[str, float, float]], eval_size: int | None = 1319) -> Points:
    """A published-style table: one accuracy per (arm, size), no seeds."""
    return Points(
        metric="accuracy",
        higher_is_better=True,
        arm=np.array([arm for arm, _, _ in rows]),
        size=np.array([size for _, size, _ in rows], dtype=float),
        seed=np.full(len(rows), -1),
        value=np.array([value for _, _, value in rows]),
        eval_size=eval_size,
    )


# A 70B-like SFT curve on GSM8K sizes (accuracy rising towards 0.632 at the full 7,473): an
# unbounded floor fits E above the full-data error, 0.368, and then an arm scoring below the
# baseline read as infinitely better.
BASELINE_70B = [
    ("sft", 467, 0.480), ("sft", 934, 0.560), ("sft", 1868, 0.598),
    ("sft", 3736, 0.611), ("sft", 7473, 0.632),
]  # fmt: skip


# --------------------------------------------------------------------------------------------
# The refitter never ends a batch.


def test_a_singular_step_is_solved_without_ending_the_batch():
    good = np.array([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 4.0]])
    singular = np.zeros((3, 3))
    vectors = np.array([[1.0, 1.0, 1.0], [1.0, 2.0, 3.0]])
    steps = _solve(np.stack([good, singular]), vectors)
    np.testing.assert_allclose(steps[0], [0.5, 1 / 3, 0.25])
    np.testing.assert_array_equal(steps[1], [0.0, 0.0, 0.0])


def test_flat_and_tied_grids_fit_at_every_resample_count():
    """The 2-size x 2-seed grid shape that ended `scaler fit` in a LinAlgError."""
    for values in ([0.10, 0.12, 0.10, 0.05], [0.10, 0.10, 0.10, 0.10], [1.0, 1.0, 0.99, 1.0]):
        points = table([("sft", s, v) for s, v in zip([200, 200, 400, 400], values, strict=True)])
        points = Points(**{**vars(points), "seed": np.array([0, 1, 0, 1]), "eval_size": 100})
        for resamples in (200, 1000):
            result = analyse(points, settings(resamples=resamples), "grid")
            assert result.arm("sft").fits["power"].intervals


# --------------------------------------------------------------------------------------------
# Floors the data contradict.


def test_the_floor_never_lies_above_the_lowest_mean_error():
    sizes = np.array([s for _, s, _ in BASELINE_70B], dtype=float)
    errors = 1 - np.array([v for _, _, v in BASELINE_70B])
    fit = fit_power_law(sizes, errors)
    assert fit.E <= errors.min() * (1 + 1e-9)


def test_a_worse_single_point_arm_is_worth_less_than_the_baseline():
    points = table(BASELINE_70B + [("rft", 7473, 0.620)])
    result = analyse(points, settings(), "yuan")
    (m,) = result.multipliers
    assert m.method == SINGLE_POINT and m.arm == "rft"
    assert 0 < m.value < 1 and m.low < 1
    # The baseline is nearly flat at its top: in some resamples the arm beats its floor, and
    # the interval says so (an upper end of inf) instead of the point estimate doing it.
    assert m.unbounded_share < 0.2


# --------------------------------------------------------------------------------------------
# Single-point arms.


@pytest.mark.parametrize("factor", [2.0, 4.0])
def test_a_single_point_arm_recovers_a_known_data_factor(factor):
    """An arm measured at D = 1000 only, whose error is the baseline's at factor x D."""
    rng = np.random.default_rng(20)
    base = synthetic_points(rng, {"sft": 1.0}, problems=2000)
    arm = synthetic_points(rng, {"rft": factor}, sizes=(1000,), problems=2000)
    # Both arms on the same eval problems: the arm's models score the baseline's problems.
    points = _join(base, arm)
    result = analyse(points, settings(), "synthetic")
    (m,) = result.multipliers
    assert m.method == SINGLE_POINT and m.size == 1000
    assert m.value == pytest.approx(factor, rel=0.25)
    assert m.low < factor < m.high
    assert not m.extrapolated


def test_a_single_point_arm_beyond_the_baseline_is_flagged():
    rng = np.random.default_rng(21)
    points = _join(
        synthetic_points(rng, {"sft": 1.0}, sizes=(250, 500, 1000)),
        synthetic_points(rng, {"rft": 8.0}, sizes=(1000,)),
    )
    (m,) = analyse(points, settings(resamples=50), "synthetic").multipliers
    assert m.extrapolated  # the baseline would need ~8,000 problems; it was measured to 1,000


def test_a_table_where_no_arm_has_two_sizes_warns_and_does_not_crash():
    points = table([("sft", 7473, 0.41), ("rft", 7473, 0.48), ("rft_u13b", 7473, 0.52)])
    result = analyse(points, settings(), "yuan")
    assert result.multipliers == [] and result.fitted_arms == []
    assert any(
        "rft: no multiplier: its baseline sft has a single size" in w for w in result.warnings
    )


def test_an_arm_without_its_baseline_is_named():
    rng = np.random.default_rng(22)
    points = synthetic_points(rng, {"teacher": 1.0, "rft": 2.0}, sizes=(250, 1000, 4000))
    result = analyse(points, settings(resamples=0), "synthetic")
    assert any("teacher: no multiplier: its baseline sft is not among the arms" in w
               for w in result.warnings)  # fmt: skip


# --------------------------------------------------------------------------------------------
# The shared-exponent form.


def test_shared_fit_recovers_its_parameters_on_clean_curves():
    sizes = np.repeat(np.asarray(SIZES, dtype=float), 3)
    both = np.concatenate([sizes, sizes])
    in_arm = np.r_[np.zeros(sizes.size), np.ones(sizes.size)]
    errors = np.where(in_arm > 0, true_error(both, 3.0), true_error(both))
    fit = fit_shared_many(both, errors, in_arm)
    assert fit.m[0] == pytest.approx(3.0, rel=1e-3)
    assert fit.alpha[0] == pytest.approx(0.5, rel=1e-3) and fit.E[0] == pytest.approx(
        0.05, rel=1e-2
    )


def test_shared_form_gives_m_with_a_narrower_interval_that_covers_the_truth():
    rng = np.random.default_rng(23)
    points = synthetic_points(rng, {"sft": 1.0, "rft": 3.0}, seed_noise=0.1)
    chosen = settings(sizes=[1000])
    shared = analyse(points, chosen.model_copy(update={"form": "shared"}), "synthetic")
    per_arm = analyse(points, chosen, "synthetic")
    (m,), (curves,) = shared.multipliers, per_arm.multipliers
    assert m.low < 3.0 < m.high
    assert m.high / m.low < curves.high / curves.low
    (fit,) = shared.shared
    assert fit.p_value > 0.05 and not fit.warnings


def test_shared_exponent_rejected_when_the_arm_scales_differently():
    rng = np.random.default_rng(24)
    steep = synthetic_points(rng, {"rft": 1.0}, curve=(0.05, 60.0, 0.8), problems=2000)
    points = _join(synthetic_points(rng, {"sft": 1.0}, problems=2000), steep)
    result = analyse(points, settings(form="shared", resamples=50), "synthetic")
    (fit,) = result.shared
    assert fit.p_value < 0.05
    assert any("reject a shared exponent" in w for w in result.warnings)


# --------------------------------------------------------------------------------------------
# Warnings that say what not to trust.


def test_alpha_at_its_bound_and_a_form_that_misses_its_points_warn():
    jump = table([("sft", 250, 0.10), ("sft", 500, 0.11), ("sft", 1000, 0.12),
                  ("sft", 2000, 0.95), ("sft", 4000, 0.96)])  # fmt: skip
    warnings = analyse(jump, settings(resamples=20), "demo").warnings
    assert any("the form explains little" in w or "misses it by" in w for w in warnings)
    steep = table([("sft", s, 1 - 0.6 * (s / 250) ** -6.0) for s in (250, 500, 1000, 2000)])
    warnings = analyse(steep, settings(resamples=0), "steep").warnings
    assert any("alpha is at its upper bound" in w for w in warnings)


def test_perfect_scores_warn():
    points = table([("sft", s, 1.0) for s in (250, 500, 1000)], eval_size=200)
    warnings = analyse(points, settings(resamples=20), "perfect").warnings
    assert any("every score is perfect" in w for w in warnings)


def test_clean_data_are_not_reported_unconverged_or_unfit():
    """Power-law data: the power forms describe them; the log-linear form, which bends the
    wrong way, is the one told it does not predict the largest size."""
    rng = np.random.default_rng(25)
    points = synthetic_points(rng, {"sft": 1.0, "rft": 2.0}, problems=2000)
    warnings = analyse(points, settings(), "synthetic").warnings
    power = [w for w in warnings if "(power)" in w or "(power_e0)" in w]
    assert not any("converg" in w or "explains little" in w or "misses it" in w
                   for w in power), warnings  # fmt: skip


def test_equal_seeds_with_nothing_else_to_redraw_warn_of_false_certainty():
    rows = [("sft", s, v) for s, v in ((250, 0.3), (500, 0.4), (1000, 0.5)) for _ in range(2)]
    points = table(rows, eval_size=None)
    points = Points(**{**vars(points), "seed": np.tile([0, 1], 3)})
    warnings = analyse(points, settings(), "ties").warnings
    assert any("an interval of no width" in w for w in warnings)


def test_score_intervals_stay_in_range_with_large_seed_spread():
    rng = np.random.default_rng(26)
    points = synthetic_points(
        rng, {"sft": 1.0}, sizes=(200, 400, 800), seeds=2, problems=100, seed_noise=0.8,
        curve=(0.3, 3.0, 0.3),
    )  # fmt: skip
    result = analyse(points, settings(resamples=500), "spread")
    for mean in result.arm("sft").means:
        assert 0 <= mean.low <= mean.high <= 1


def _join(*parts: Points) -> Points:
    """Points of several experiments as one: arrays concatenated, outcomes on shared problems."""
    first = parts[0]
    return Points(
        metric=first.metric,
        higher_is_better=first.higher_is_better,
        arm=np.concatenate([p.arm for p in parts]),
        size=np.concatenate([p.size for p in parts]),
        seed=np.concatenate([p.seed for p in parts]),
        value=np.concatenate([p.value for p in parts]),
        outcomes=np.concatenate([p.outcomes for p in parts]),
        eval_size=first.eval_size,
    )


def test_a_fit_at_its_optimum_is_not_reported_unconverged():
    """A flat curve on which L-BFGS-B ends "abnormally" in its line search, at the optimum."""
    sizes = np.repeat([250.0, 500.0, 1000.0, 2000.0, 4000.0], 2)
    errors = np.array(
        [0.22007954, 0.22168741, 0.22195766, 0.21937359, 0.22221902,
         0.21774984, 0.21979161, 0.22100813, 0.21915253, 0.21732477]
    )  # fmt: skip
    fit = fit_power_law(sizes, errors)
    assert fit.converged
