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
to tolerance. tests/test_fit.py checks the optima against L-BFGS-B's on the same curves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from analysis.fit import (
    _ALPHA_BOUNDS,
    _E_FLOOR_DECADES,
    _LEAST_SQUARES_DELTA,
    FloatArray,
    PowerLawFit,
    delta_from_residuals,
    power_law_inverse,
)

# A smaller grid than the single fit's: a start from the full-data optimum (when given) does
# most of the work, and the grid only guards against resamples far from it.
_START_E_FRACTIONS = (0.1, 0.5, 0.9)
_START_ALPHAS = (0.1, 0.25, 0.5, 1.0, 2.0)

_PATH_FACTORS = (27.0, 9.0, 3.0)
_PATH_TOLERANCE, _PATH_ITERATIONS = 1e-5, 60
_TOLERANCE, _MAX_ITERATIONS = 1e-7, 300
_MAX_DAMPING = 1e10
# Curves per block: keeps the (curves x starts x points) arrays in cache-sized pieces.
_BLOCK = 8192


@dataclass(frozen=True)
class PowerLawParams:
    """Fitted ``err(D) = E + A * D**-alpha`` for many curves: arrays of shape (n_curves,)."""

    E: FloatArray
    A: FloatArray
    alpha: FloatArray
    loss: FloatArray
    converged: np.ndarray

    def predict(self, D: ArrayLike) -> FloatArray:
        """Error of every curve at sizes D: shape (n_curves, len(D))."""
        sizes = np.atleast_1d(np.asarray(D, dtype=float))
        with np.errstate(over="ignore", divide="ignore"):
            return self.E[:, None] + self.A[:, None] * sizes[None, :] ** -self.alpha[:, None]

    def inverse(self, err: ArrayLike) -> FloatArray:
        """Size at which each curve reaches ``err`` (shape (n_curves, m) or (n_curves,)):
        ``inf`` where the curve never gets that low, ``nan`` for a non-finite err."""
        target = np.asarray(err, dtype=float)
        column = target.ndim == 1
        target = target[:, None] if column else target
        sizes = power_law_inverse(self.E[:, None], self.A[:, None], self.alpha[:, None], target)
        return sizes[:, 0] if column else sizes


def fit_power_law_many(
    sizes: ArrayLike,
    errors: ArrayLike,
    *,
    fix_E_zero: bool = False,
    start: PowerLawParams | None = None,
    delta: float | None = None,
) -> PowerLawParams:
    """Fit one curve per row of ``errors`` (n_curves, n_points).

    ``sizes`` is (n_points,) when every curve has the same sizes, or (n_curves, n_points).
    ``start`` (fits of data like these: one per curve, or one for all) is tried beside the
    start grid for every curve. ``delta`` is Huber's, as in fit_power_law: given (the point
    fit's, for its resamples) or set per curve from the residuals of a least-squares fit.
    """
    err = np.atleast_2d(np.asarray(errors, dtype=float))
    size_arr = np.asarray(sizes, dtype=float)
    size_arr = np.broadcast_to(size_arr if size_arr.ndim == 2 else size_arr[None, :], err.shape)
    if not (np.all(np.isfinite(err)) and np.all(err > 0)):
        raise ValueError("errors must be finite and positive; clip zeros before fitting")
    if not (np.all(np.isfinite(size_arr)) and np.all(size_arr > 0)):
        raise ValueError("sizes must be finite and positive")
    known = None
    if start is not None:
        known = np.stack(
            [np.broadcast_to(v, err.shape[0]) for v in (start.E, start.A, start.alpha)]
        )
    blocks = [
        _fit_block(
            size_arr[i : i + _BLOCK],
            err[i : i + _BLOCK],
            fix_E_zero,
            None if known is None else known[:, i : i + _BLOCK],
            delta,
        )
        for i in range(0, err.shape[0], _BLOCK)
    ]
    return PowerLawParams(*(np.concatenate(parts) for parts in zip(*blocks, strict=True)))


def _fit_block(
    sizes: FloatArray,
    errors: FloatArray,
    fix_E_zero: bool,
    start: FloatArray | None,
    delta: float | None,
) -> tuple[FloatArray, ...]:
    """Fit a block of curves; ``start`` is (3, n_curves) rows E, A, alpha, or None."""
    log_size_raw = np.log(sizes)
    log_size_ref = log_size_raw.mean(axis=1)
    log_size = log_size_raw - log_size_ref[:, None]
    log_err = np.log(errors)
    lower, upper = _bounds(log_err, fix_E_zero)

    starts = _start_grid(log_err, fix_E_zero)  # (n_curves, n_starts, 3)
    if start is not None:
        E, A, alpha = start
        with np.errstate(divide="ignore"):
            e = np.full_like(alpha, -np.inf) if fix_E_zero else np.log(E)
        known = np.stack([e, np.log(A) - alpha * log_size_ref, alpha], axis=1)  # centred
        starts = np.concatenate([starts, known[:, None, :]], axis=1)
    starts = np.clip(starts, lower[:, None, :], upper[:, None, :])
    start_losses = _loss(
        starts,
        log_size[:, None, :],
        log_err[:, None, :],
        np.full(len(starts), _LEAST_SQUARES_DELTA),  # the first stage is least squares
    )
    theta = starts[np.arange(errors.shape[0]), np.argmin(start_losses, axis=1)]

    # Continuation in delta: from least squares (smooth, quick into the right basin) down to
    # the objective's own delta, which is then solved to tolerance.
    n_curves = errors.shape[0]
    path = np.full(n_curves, _LEAST_SQUARES_DELTA)
    theta, *_ = _levenberg_marquardt(
        theta, log_size, log_err, lower, upper, path, _PATH_TOLERANCE, _PATH_ITERATIONS
    )
    if delta is None:
        final = _noise_scaled_deltas(theta, log_size, log_err)
    else:
        final = np.full(n_curves, float(delta))
    for factor in _PATH_FACTORS:
        path = np.minimum(final * factor, _LEAST_SQUARES_DELTA)
        theta, *_ = _levenberg_marquardt(
            theta, log_size, log_err, lower, upper, path, _PATH_TOLERANCE, _PATH_ITERATIONS
        )
    theta, loss, converged = _levenberg_marquardt(
        theta, log_size, log_err, lower, upper, final, _TOLERANCE, _MAX_ITERATIONS
    )
    e, a, alpha = theta.T
    return (
        np.zeros_like(e) if fix_E_zero else np.exp(e),
        np.exp(a + alpha * log_size_ref),  # undo the centring
        alpha,
        loss,
        converged,
    )


def _bounds(log_err: FloatArray, fix_E_zero: bool) -> tuple[FloatArray, FloatArray]:
    """Per-curve bounds on (e, a, alpha), as in analysis.fit._prepare."""
    e_lower = log_err.min(axis=1) - _E_FLOOR_DECADES * math.log(10)
    top = log_err.max(axis=1)
    lower = np.stack([e_lower, e_lower, np.full_like(top, _ALPHA_BOUNDS[0])], axis=1)
    upper = np.stack([top, top + 5.0, np.full_like(top, _ALPHA_BOUNDS[1])], axis=1)
    if fix_E_zero:
        lower[:, 0] = upper[:, 0] = -np.inf
    return lower, upper


def _start_grid(log_err: FloatArray, fix_E_zero: bool) -> FloatArray:
    """(n_curves, n_starts, 3): E a share of the smallest error, a from the mean error."""
    min_err = np.exp(log_err.min(axis=1))
    mean_err = np.exp(log_err).mean(axis=1)
    fractions = (0.0,) if fix_E_zero else _START_E_FRACTIONS
    starts = []
    for fraction in fractions:
        floor = fraction * min_err
        a = np.log(np.maximum(mean_err - floor, 1e-3 * mean_err))
        with np.errstate(divide="ignore"):
            e = np.log(floor)
        for alpha in _START_ALPHAS:
            starts.append(np.stack([e, a, np.full_like(a, alpha)], axis=1))
    return np.stack(starts, axis=1)


def _levenberg_marquardt(
    theta: FloatArray,
    log_size: FloatArray,
    log_err: FloatArray,
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
    loss = _loss(theta, log_size, log_err, delta)
    damping = np.full(n_curves, 1e-3)
    done = np.zeros(n_curves, dtype=bool)
    converged = np.zeros(n_curves, dtype=bool)
    for _ in range(max_iterations):
        active = np.flatnonzero(~done)
        if active.size == 0:
            break
        step = _damped_step(
            theta[active],
            log_size[active],
            log_err[active],
            damping[active],
            fixed_e[active],
            delta[active],
        )
        trial = np.clip(theta[active] + step, lower[active], upper[active])
        trial[fixed_e[active], 0] = -np.inf
        trial_loss = _loss(trial, log_size[active], log_err[active], delta[active])
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


def _noise_scaled_deltas(
    theta: FloatArray, log_size: FloatArray, log_err: FloatArray
) -> FloatArray:
    """Per curve, Huber's delta from the log residuals at ``theta`` (as analysis.fit does)."""
    log_pred, _ = _log_predict_2d(theta, log_size)
    return delta_from_residuals(log_pred - log_err)


def _log_predict_2d(theta: FloatArray, log_size: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Log prediction and E's share of it, for theta (..., 3) and log_size (..., n).

    analysis.fit._log_predict for this one shape, with one exp and one log per point instead of
    logaddexp: the bounds keep ``a - alpha * log_size`` far from overflow.
    """
    floor = np.exp(theta[..., 0:1])  # 0 in the E = 0 form (e = -inf)
    prediction = floor + np.exp(theta[..., 1:2] - theta[..., 2:3] * log_size)
    return np.log(prediction), floor / prediction


def _loss(
    theta: FloatArray, log_size: FloatArray, log_err: FloatArray, delta: FloatArray
) -> FloatArray:
    """Mean Huber loss of the log residuals per curve (no gradient: for trial steps).

    ``delta`` has one value per curve (the leading axis of theta)."""
    log_pred, _ = _log_predict_2d(theta, log_size)
    residual = np.abs(log_pred - log_err)
    delta = delta.reshape(delta.shape + (1,) * (residual.ndim - 1))
    quadratic_part = np.minimum(residual, delta)
    return (quadratic_part * (residual - 0.5 * quadratic_part)).mean(axis=-1)


def _damped_step(
    theta: FloatArray,
    log_size: FloatArray,
    log_err: FloatArray,
    damping: FloatArray,
    fixed_e: np.ndarray,
    delta: FloatArray,
) -> FloatArray:
    """The reweighted Gauss-Newton step with Marquardt's scaled damping, per curve."""
    log_pred, share_of_E = _log_predict_2d(theta, log_size)
    residual = log_pred - log_err
    with np.errstate(divide="ignore"):
        weight = np.minimum(1.0, delta[:, None] / np.abs(residual))
    share_of_power = 1.0 - share_of_E
    # Jacobian of the log prediction in (e, a, alpha): (n_curves, n_points, 3).
    jacobian = np.stack([share_of_E, share_of_power, -share_of_power * log_size], axis=-1)
    weighted = jacobian * weight[..., None]
    hessian = np.matmul(weighted.transpose(0, 2, 1), jacobian)
    gradient = np.matmul(weighted.transpose(0, 2, 1), residual[..., None])[..., 0]
    # The E = 0 form has no e direction: solve for (a, alpha) with e pinned.
    hessian[fixed_e, 0, :] = 0.0
    hessian[fixed_e, :, 0] = 0.0
    hessian[fixed_e, 0, 0] = 1.0
    gradient[fixed_e, 0] = 0.0
    diagonal = np.einsum("cii->ci", hessian)
    scale = diagonal + 1e-12 * diagonal.sum(axis=1, keepdims=True) + 1e-300
    damped = hessian + (damping[:, None] * scale)[:, :, None] * np.eye(3)
    return -np.linalg.solve(damped, gradient[..., None])[..., 0]


def params_from_fits(fits: list[PowerLawFit]) -> PowerLawParams:
    """Single fits as one PowerLawParams (a start for their resamples, or one curve each)."""

    def column(name: str) -> Any:
        return np.array([getattr(fit, name) for fit in fits], dtype=float)

    return PowerLawParams(
        column("E"),
        column("A"),
        column("alpha"),
        column("loss"),
        np.array([fit.converged for fit in fits]),
    )


@dataclass(frozen=True)
class LogLinearParams:
    """Fitted ``value = a + b * ln D`` for many curves: arrays of shape (n_curves,)."""

    a: FloatArray
    b: FloatArray

    def predict(self, D: ArrayLike) -> FloatArray:
        log_size = np.log(np.atleast_1d(np.asarray(D, dtype=float)))
        return self.a[:, None] + self.b[:, None] * log_size[None, :]

    def inverse(self, value: ArrayLike) -> FloatArray:
        target = np.asarray(value, dtype=float)
        column = target.ndim == 1
        target = target[:, None] if column else target
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            sizes = np.exp((target - self.a[:, None]) / self.b[:, None])
        sizes = np.where(self.b[:, None] != 0, sizes, np.nan)
        return sizes[:, 0] if column else sizes


def fit_log_linear_many(sizes: ArrayLike, values: ArrayLike) -> LogLinearParams:
    """Least squares ``value = a + b * ln D`` for every row of ``values`` at shared sizes: one
    solve with many right-hand sides."""
    design = np.column_stack([np.ones(np.size(sizes)), np.log(np.asarray(sizes, dtype=float))])
    solution, *_ = np.linalg.lstsq(design, np.atleast_2d(values).T, rcond=None)
    return LogLinearParams(a=solution[0], b=solution[1])
