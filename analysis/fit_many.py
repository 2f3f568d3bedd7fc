"""Many power-law fits at once: the engine of the bootstrap.

Design
------
A bootstrap refits every resample: 100 curves x 1,000 resamples is 1e5 fits, which a
Python-level optimiser loop cannot do in seconds. Here all curves advance together, as arrays of
shape (n_curves, ...), through a damped Gauss-Newton (Levenberg-Marquardt) iteration on the same
objective as :func:`analysis.fit.fit_power_law`: the mean Huber loss of the log residuals, in the
same internal parameters (e, a, alpha) with the same bounds.

The Huber loss is handled by iteratively reweighted least squares: at the current residuals r
the weights ``min(1, delta/|r|)`` give a quadratic that lies above the Huber loss and touches it
there, so a step that lowers the quadratic lowers the loss. Each curve has its own damping, raised
when its trial step is refused and lowered when accepted; a step is kept only if that curve's
loss falls, so every curve's loss decreases monotonically. Bounds are kept by projection. A curve
stops when its accepted steps no longer change the loss, or its damping says no step helps.

Starts: each curve starts from the best of a small grid (scored in one pass) or, when given, a
known nearby optimum (the full-data fit, for resamples of the same data), whichever has the
lower loss. The iteration then follows a continuation in delta: least squares first (smooth,
quick into the right basin), then 27, 9 and 3 times the final delta, then the objective itself
to tolerance. The parametrisation, bounds and start grid are :mod:`analysis.power_law`'s.
tests/test_analysis/test_fit.py checks the optima against L-BFGS-B's on the same curves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from analysis.curve_params import LogLinearParams, PowerLawParams, SharedParams
from analysis.power_law import (
    LEAST_SQUARES_DELTA,
    LOG_M_BOUND,
    FloatArray,
    bounds,
    centred,
    delta_from_residuals,
    raw_amplitude,
    start_grid,
)

# A smaller grid than the single fit's: a start from the full-data optimum (when given) does
# most of the work, and the grid only guards against resamples far from it.
_START_E_FRACTIONS = (0.1, 0.5, 0.9)
_START_ALPHAS = (0.1, 0.25, 0.5, 1.0, 2.0)
# A shared-exponent fit also starts from a few data factors m = exp(mu) of the arm.
_START_LOG_M = (-2.0, -1.0, 0.0, 1.0, 2.0)

_PATH_FACTORS = (27.0, 9.0, 3.0)
_PATH_TOLERANCE, _PATH_ITERATIONS = 1e-5, 60
_TOLERANCE, _MAX_ITERATIONS = 1e-7, 300
_MAX_DAMPING = 1e10
# Curves per block: keeps the (curves x starts x points) arrays in cache-sized pieces.
_BLOCK = 8192


def fit_power_law_many(
    sizes: ArrayLike,
    errors: ArrayLike,
    *,
    fix_E_zero: bool = False,
    start: PowerLawParams | None = None,
    delta: ArrayLike | None = None,
) -> PowerLawParams:
    """Fit one curve per row of ``errors`` (n_curves, n_points).

    ``sizes`` is (n_points,) when every curve has the same sizes, or (n_curves, n_points).
    ``start`` (fits of data like these: one per curve, or one for all) is tried beside the
    start grid for every curve. ``delta`` is Huber's, as in fit_power_law: given (the point
    fit's, for its resamples) or set per curve from the residuals of a least-squares fit.
    """
    starts = None if start is None else (start.E, start.A, start.alpha)
    return PowerLawParams(*_fit_blocks(sizes, errors, fix_E_zero, starts, delta))


def fit_shared_many(
    sizes: ArrayLike,
    errors: ArrayLike,
    in_arm: ArrayLike,
    *,
    start: SharedParams | None = None,
    delta: ArrayLike | None = None,
) -> SharedParams:
    """Fit one arm and its baseline jointly, one pair per row of ``errors`` (n_curves, n_points):
    E, A and alpha shared, the arm's data worth m times the baseline's.

    ``sizes`` and ``in_arm`` (True for the arm's points, False for the baseline's) are
    (n_points,) or (n_curves, n_points). The objective is the plain forms': the mean Huber loss
    of the log residuals over both curves' points; ``delta`` is one for all curves or one each.
    """
    starts = None if start is None else (start.E, start.A, start.alpha, start.m)
    return SharedParams(*_fit_blocks(sizes, errors, False, starts, delta, in_arm))


def _fit_blocks(
    sizes: ArrayLike,
    errors: ArrayLike,
    fix_E_zero: bool,
    start: tuple[Any, ...] | None,
    delta: ArrayLike | None,
    in_arm: ArrayLike | None = None,
) -> list[FloatArray]:
    """The curves fitted in blocks of _BLOCK; one array per returned field (see _fit_block).

    ``start`` holds E, A, alpha (and m), each one for all curves or one per curve; ``delta``
    likewise."""
    err, size_arr = _checked(sizes, errors)
    n_curves = err.shape[0]
    known = None if start is None else np.stack([np.broadcast_to(v, n_curves) for v in start])
    deltas = None if delta is None else np.broadcast_to(np.asarray(delta, float), (n_curves,))
    marks = None if in_arm is None else np.broadcast_to(np.asarray(in_arm, float), err.shape)
    blocks = [
        _fit_block(
            size_arr[rows],
            err[rows],
            fix_E_zero,
            None if known is None else known[:, rows],
            None if deltas is None else deltas[rows],
            in_arm=None if marks is None else marks[rows],
        )
        for rows in (slice(i, i + _BLOCK) for i in range(0, n_curves, _BLOCK))
    ]
    return [np.concatenate(parts) for parts in zip(*blocks, strict=True)]


def _checked(sizes: ArrayLike, errors: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Errors (n_curves, n_points) and sizes broadcast to them, both finite and positive."""
    err = np.atleast_2d(np.asarray(errors, dtype=float))
    size_arr = np.asarray(sizes, dtype=float)
    size_arr = np.broadcast_to(size_arr if size_arr.ndim == 2 else size_arr[None, :], err.shape)
    if not (np.all(np.isfinite(err)) and np.all(err > 0)):
        raise ValueError("errors must be finite and positive; clip zeros before fitting")
    if not (np.all(np.isfinite(size_arr)) and np.all(size_arr > 0)):
        raise ValueError("sizes must be finite and positive")
    return err, size_arr


@dataclass(frozen=True)
class _Curves:
    """A block of curves in the optimiser's coordinates: (n_curves, n_points) arrays.

    ``in_arm`` marks the points of the arm in a shared-exponent fit (1.0) against its
    baseline's (0.0); the fourth parameter mu = log m shifts the arm's log sizes. None for the
    plain forms, whose parameters are (e, a, alpha) only.
    """

    log_size: FloatArray
    log_err: FloatArray
    in_arm: FloatArray | None = None

    def take(self, index: Any) -> _Curves:
        return _Curves(
            self.log_size[index],
            self.log_err[index],
            None if self.in_arm is None else self.in_arm[index],
        )

    def broadcast_over_starts(self) -> _Curves:
        """Views of shape (n_curves, 1, n_points), against starts (n_curves, n_starts, P)."""
        return _Curves(
            self.log_size[:, None, :],
            self.log_err[:, None, :],
            None if self.in_arm is None else self.in_arm[:, None, :],
        )


def _fit_block(
    sizes: FloatArray,
    errors: FloatArray,
    fix_E_zero: bool,
    start: FloatArray | None,
    delta: FloatArray | None,
    in_arm: FloatArray | None = None,
) -> tuple[FloatArray, ...]:
    """Fit a block of curves; ``start`` is (P, n_curves) rows E, A, alpha (and m), or None.

    Returns E, A, alpha, (m,) loss, converged."""
    log_size_raw = np.log(sizes)
    log_size_ref = log_size_raw.mean(axis=1)
    curves = _Curves(log_size_raw - log_size_ref[:, None], np.log(errors), in_arm)
    lower, upper = _bounds(sizes, errors, fix_E_zero, shared=in_arm is not None)

    theta = _best_start(curves, lower, upper, fix_E_zero, start, log_size_ref)

    # Continuation in delta: from least squares (smooth, quick into the right basin) down to
    # the objective's own delta, which is then solved to tolerance.
    n_curves = errors.shape[0]
    path = np.full(n_curves, LEAST_SQUARES_DELTA)
    theta, *_ = _levenberg_marquardt(
        theta, curves, lower, upper, path, _PATH_TOLERANCE, _PATH_ITERATIONS
    )
    if delta is None:
        final = _noise_scaled_deltas(theta, curves)
    else:
        final = np.broadcast_to(np.asarray(delta, dtype=float), (n_curves,)).copy()
    for factor in _PATH_FACTORS:
        path = np.minimum(final * factor, LEAST_SQUARES_DELTA)
        theta, *_ = _levenberg_marquardt(
            theta, curves, lower, upper, path, _PATH_TOLERANCE, _PATH_ITERATIONS
        )
    theta, loss, converged = _levenberg_marquardt(
        theta, curves, lower, upper, final, _TOLERANCE, _MAX_ITERATIONS
    )
    e, a, alpha = theta.T[:3]
    shift = [np.exp(theta[:, 3])] if in_arm is not None else []
    return (
        np.zeros_like(e) if fix_E_zero else np.exp(e),
        raw_amplitude(a, alpha, log_size_ref),
        alpha,
        *shift,
        loss,
        converged,
    )


def _best_start(
    curves: _Curves,
    lower: FloatArray,
    upper: FloatArray,
    fix_E_zero: bool,
    start: FloatArray | None,
    log_size_ref: FloatArray,
) -> FloatArray:
    """Per curve, the start of lowest least-squares loss: the grid's, or the known fit."""
    starts = start_grid(
        curves.log_err,
        e_fractions=(0.0,) if fix_E_zero else _START_E_FRACTIONS,
        alphas=_START_ALPHAS,
        log_m=_START_LOG_M if curves.in_arm is not None else None,
    )
    if start is not None:
        E, A, alpha, *m = start
        e, a, _ = centred(E, A, alpha, log_size_ref)
        if fix_E_zero:
            e = np.full_like(alpha, -np.inf)
        known = [e, a, alpha] + [np.log(v) for v in m]
        starts = np.concatenate([starts, np.stack(known, axis=1)[:, None, :]], axis=1)
    starts = np.clip(starts, lower[:, None, :], upper[:, None, :])
    start_losses = _loss(
        starts,
        curves.broadcast_over_starts(),
        np.full(len(starts), LEAST_SQUARES_DELTA),  # the first stage is least squares
    )
    return starts[np.arange(len(starts)), np.argmin(start_losses, axis=1)]


def _bounds(
    sizes: FloatArray, errors: FloatArray, fix_E_zero: bool, shared: bool = False
) -> tuple[FloatArray, FloatArray]:
    """Per-curve bounds on (e, a, alpha[, mu]): power_law.bounds, with mu's for a shared pair
    and none on e in the E = 0 form (it stays -inf)."""
    low, high = bounds(sizes, errors)
    if shared:
        low = np.column_stack([low, np.full(len(low), -LOG_M_BOUND)])
        high = np.column_stack([high, np.full(len(high), LOG_M_BOUND)])
    if fix_E_zero:
        low[:, 0] = high[:, 0] = -np.inf
    return low, high


def _levenberg_marquardt(
    theta: FloatArray,
    curves: _Curves,
    lower: FloatArray,
    upper: FloatArray,
    delta: FloatArray,
    tolerance: float,
    max_iterations: int,
) -> tuple[FloatArray, FloatArray, np.ndarray]:
    """Minimise every curve's Huber loss (its own ``delta``) from ``theta``; returns theta,
    loss, converged."""
    n_curves = theta.shape[0]
    fixed_e = ~np.isfinite(lower[:, 0])
    loss = _loss(theta, curves, delta)
    damping = np.full(n_curves, 1e-3)
    done = np.zeros(n_curves, dtype=bool)
    converged = np.zeros(n_curves, dtype=bool)
    for _ in range(max_iterations):
        active = np.flatnonzero(~done)
        if active.size == 0:
            break
        some = curves.take(active)
        step = _damped_step(
            theta[active], some, damping[active], lower[active], upper[active], delta[active]
        )
        trial = np.clip(theta[active] + step, lower[active], upper[active])
        trial[fixed_e[active], 0] = -np.inf
        trial_loss = _loss(trial, some, delta[active])
        old_loss = loss[active]
        accepted = trial_loss < old_loss
        small = (old_loss - trial_loss) <= tolerance * old_loss + 1e-300
        better = active[accepted]
        theta[better] = trial[accepted]
        loss[better] = trial_loss[accepted]
        damping[active] = np.where(accepted, damping[active] / 3.0, damping[active] * 4.0)
        finished = (accepted & small) | (damping[active] > _MAX_DAMPING)
        converged[active[finished]] = True
        done[active[finished]] = True
    return theta, loss, converged


def _noise_scaled_deltas(theta: FloatArray, curves: _Curves) -> FloatArray:
    """Per curve, Huber's delta from the log residuals at ``theta`` (as analysis.fit does)."""
    log_pred, _, _ = _log_predict_2d(theta, curves)
    return delta_from_residuals(log_pred - curves.log_err)


def _log_predict_2d(theta: FloatArray, curves: _Curves) -> tuple[FloatArray, ...]:
    """Log prediction, E's share of it, and the (shifted) log sizes, for theta (..., P).

    analysis.fit._log_predict for this one shape, with one exp and one log per point instead of
    logaddexp: the bounds keep ``a - alpha * log_size`` far from overflow.
    """
    log_size = curves.log_size
    if curves.in_arm is not None:  # the arm's data count m times: log(m D) = log D + mu
        log_size = log_size + theta[..., 3:4] * curves.in_arm
    floor = np.exp(theta[..., 0:1])  # 0 in the E = 0 form (e = -inf)
    prediction = floor + np.exp(theta[..., 1:2] - theta[..., 2:3] * log_size)
    return np.log(prediction), floor / prediction, log_size


def _loss(theta: FloatArray, curves: _Curves, delta: FloatArray) -> FloatArray:
    """Mean Huber loss of the log residuals per curve (no gradient: for trial steps).

    ``delta`` has one value per curve (the leading axis of theta)."""
    log_pred, _, _ = _log_predict_2d(theta, curves)
    residual = np.abs(log_pred - curves.log_err)
    delta = delta.reshape(delta.shape + (1,) * (residual.ndim - 1))
    quadratic_part = np.minimum(residual, delta)
    return (quadratic_part * (residual - 0.5 * quadratic_part)).mean(axis=-1)


def _damped_step(
    theta: FloatArray,
    curves: _Curves,
    damping: FloatArray,
    lower: FloatArray,
    upper: FloatArray,
    delta: FloatArray,
) -> FloatArray:
    """The reweighted Gauss-Newton step with Marquardt's scaled damping, per curve.

    A parameter at a bound whose gradient points out of the box is held there for this step
    (the active set of a projected Newton method): projecting a full step instead would also
    spoil the other parameters' steps, and the iteration stalls short of the optimum.
    """
    log_pred, share_of_E, log_size = _log_predict_2d(theta, curves)
    residual = log_pred - curves.log_err
    with np.errstate(divide="ignore"):
        weight = np.minimum(1.0, delta[:, None] / np.abs(residual))
    share_of_power = 1.0 - share_of_E
    # Jacobian of the log prediction in (e, a, alpha[, mu]): (n_curves, n_points, P).
    columns = [share_of_E, share_of_power, -share_of_power * log_size]
    if curves.in_arm is not None:
        columns.append(-theta[:, 2:3] * share_of_power * curves.in_arm)
    jacobian = np.stack(columns, axis=-1)
    weighted = jacobian * weight[..., None]
    hessian = np.matmul(weighted.transpose(0, 2, 1), jacobian)
    gradient = np.matmul(weighted.transpose(0, 2, 1), residual[..., None])[..., 0]
    # Held: the E = 0 form's e (no such direction), and parameters pressed against a bound.
    held = ((theta >= upper) & (gradient < 0)) | ((theta <= lower) & (gradient > 0))
    held[:, 0] |= ~np.isfinite(lower[:, 0])
    held_pair = held[:, :, None] | held[:, None, :]
    hessian = np.where(held_pair, 0.0, hessian)
    on_diagonal = np.arange(theta.shape[1])
    diagonal = np.where(held, 1.0, hessian[:, on_diagonal, on_diagonal])
    hessian[:, on_diagonal, on_diagonal] = diagonal
    gradient = np.where(held, 0.0, gradient)
    scale = diagonal + 1e-12 * diagonal.sum(axis=1, keepdims=True) + 1e-300
    damped = hessian + (damping[:, None] * scale)[:, :, None] * np.eye(theta.shape[1])
    return -_solve(damped, gradient)


def _solve(matrices: FloatArray, vectors: FloatArray) -> FloatArray:
    """``matrices[c] @ x[c] = vectors[c]`` for every curve c; a curve whose system is singular
    (a flat curve: E explains every point, so the power term's directions vanish) gets its
    least-squares solution, and a zero step where even that is not finite. A zero step is then
    refused, its damping grows, and the curve stops where it is instead of ending the batch."""
    try:
        with np.errstate(all="ignore"):
            steps = np.linalg.solve(matrices, vectors[..., None])[..., 0]
    except np.linalg.LinAlgError:
        steps = np.stack(
            [np.linalg.lstsq(m, v, rcond=None)[0] for m, v in zip(matrices, vectors, strict=True)]
        )
    return np.where(np.isfinite(steps), steps, 0.0)


def fit_log_linear_many(sizes: ArrayLike, values: ArrayLike) -> LogLinearParams:
    """Least squares ``value = a + b * ln D`` for every row of ``values`` at shared sizes: one
    solve with many right-hand sides."""
    design = np.column_stack([np.ones(np.size(sizes)), np.log(np.asarray(sizes, dtype=float))])
    solution, *_ = np.linalg.lstsq(design, np.atleast_2d(values).T, rcond=None)
    return LogLinearParams(a=solution[0], b=solution[1])
