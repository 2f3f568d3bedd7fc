"""Single scaling-law fits: the saturating power law (L-BFGS-B) and Yuan's log-linear form.

Design
------
The saturating power law ``err(D) = E + A * D**-alpha`` is fitted in log space, as in Epoch AI's
replication of the Chinchilla fits: with ``E = exp(e)`` and ``A = exp(a)`` the prediction is
``log err = logaddexp(e, a - alpha * log D)``, so E >= 0 and A > 0 hold by construction and the
residuals ``log err_pred - log err_obs`` are relative errors, comparable across sizes. The loss is
the mean Huber loss of those residuals (robust to an odd seed), minimised by L-BFGS-B.

Two choices keep the optimisation well conditioned and cheap:

* ``log D`` is centred on the geometric mean of the sizes, so the internal ``a`` is the log of the
  reducible error in the middle of the data rather than a number that depends on the units of D.
  The reported ``A`` is converted back to raw units. This parametrisation, the bounds and the
  start grid are :mod:`analysis.power_law`'s, shared with :mod:`analysis.fit_many`.
* The loss and its analytic gradient are written for parameter arrays of any leading shape. A
  whole grid of starting points is scored in one numpy expression; L-BFGS-B then runs only from
  the best few of them. :mod:`analysis.fit_many` fits many curves (bootstrap resamples) at once
  with the same loss.

Everything here is pure numpy/scipy and takes plain arrays; reading results is someone else's job.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from analysis.format import number
from analysis.power_law import (
    HUBER_DELTA,
    LEAST_SQUARES_DELTA,
    FloatArray,
    bounds,
    delta_from_residuals,
    power_law_inverse,
    raw_amplitude,
    start_grid,
    unwrap,
)

# Starting grid (see power_law.start_grid): E as a fraction of the smallest observed error,
# alpha spanning the exponents seen in data-scaling work, a set from the data and moved by each
# offset. L-BFGS-B then runs from the best few.
_START_E_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
_START_ALPHAS = (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5)
_START_A_OFFSETS = (-1.0, 0.0, 1.0)
_N_REFINED_STARTS = 4
_POLISH_TOLERANCE = 1e-3
_STATIONARY_GRADIENT = 1e-5


@dataclass(frozen=True)
class PowerLawFit:
    """A fitted ``err(D) = E + A * D**-alpha`` curve and how it was obtained."""

    E: float
    A: float
    alpha: float
    loss: float
    """Mean Huber loss of the log residuals at the optimum."""
    n_points: int
    n_sizes: int
    size_range: tuple[float, float]
    converged: bool
    E_fixed: bool = False
    """True for the ``E = 0`` form, where E was not a free parameter."""
    delta: float = HUBER_DELTA
    """Huber's delta of the loss (log-error units)."""

    @property
    def n_params(self) -> int:
        return 2 if self.E_fixed else 3

    def predict(self, D: ArrayLike) -> Any:
        """Error at size D; a float for a scalar, an array otherwise."""
        sizes = np.asarray(D, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return unwrap(self.E + self.A * sizes**-self.alpha)

    def inverse(self, err: ArrayLike) -> Any:
        """Size D at which the curve reaches ``err``.

        ``inf`` where the curve never gets that low (``err <= E``), ``nan`` for a non-finite err.
        """
        return unwrap(power_law_inverse(self.E, self.A, self.alpha, err))

    def formula(self, digits: int = 2) -> str:
        """Plain-text formula, e.g. ``0.12 + 3.4*D^-0.52``."""
        power = f"{number(self.A, digits)}*D^-{number(self.alpha, digits)}"
        return power if self.E_fixed else f"{number(self.E, digits)} + {power}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["size_range"] = list(self.size_range)
        return out


@dataclass(frozen=True)
class LogLinearFit:
    """Yuan et al.'s ``acc(D) = a + b * ln D``, fitted by least squares."""

    a: float
    b: float
    r_squared: float
    n_points: int
    n_sizes: int
    size_range: tuple[float, float]

    def predict(self, D: ArrayLike) -> Any:
        with np.errstate(divide="ignore", invalid="ignore"):
            return unwrap(self.a + self.b * np.log(np.asarray(D, dtype=float)))

    def inverse(self, value: ArrayLike) -> Any:
        """Size D at which the line reaches ``value``; nan when it is flat (b = 0)."""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            sizes = np.exp((np.asarray(value, dtype=float) - self.a) / self.b)
        return unwrap(sizes if self.b != 0 else np.full_like(sizes, np.nan))

    def formula(self, digits: int = 2) -> str:
        sign = "-" if self.b < 0 else "+"
        return f"{number(self.a, digits)} {sign} {number(abs(self.b), digits)}*ln D"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["size_range"] = list(self.size_range)
        return out


# --------------------------------------------------------------------------------------------
# The loss, vectorised over any leading shape of parameters and data.


def _log_predict(theta: FloatArray, log_size: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Log prediction and the share of it due to E, for theta[..., (e, a, alpha)].

    ``log_size`` broadcasts against ``theta[..., :1]``; the share ``w = E / err`` is what the
    gradient needs, and computing it here avoids a second pass.
    """
    e, a, alpha = theta[..., 0:1], theta[..., 1:2], theta[..., 2:3]
    power_term = a - alpha * log_size
    log_pred = np.logaddexp(e, power_term)
    with np.errstate(invalid="ignore"):
        share_of_E = np.exp(e - log_pred)
    # e = -inf (the E = 0 form) gives exp(-inf) = 0 already; the guard covers -inf - -inf.
    return log_pred, np.nan_to_num(share_of_E)


def _huber_loss_and_grad(
    theta: FloatArray, log_size: FloatArray, log_err: FloatArray, delta: float = HUBER_DELTA
) -> tuple[FloatArray, FloatArray]:
    """Mean Huber loss of the log residuals per curve, and its gradient in (e, a, alpha).

    Shapes: theta (..., 3); log_size and log_err (..., n). Returns loss (...,) and grad (..., 3).
    """
    log_pred, share_of_E = _log_predict(theta, log_size)
    residual = log_pred - log_err
    abs_residual = np.abs(residual)
    loss = np.where(
        abs_residual <= delta, 0.5 * residual**2, delta * (abs_residual - 0.5 * delta)
    ).mean(axis=-1)
    d_loss_d_pred = np.clip(residual, -delta, delta) / residual.shape[-1]
    share_of_power = 1.0 - share_of_E
    grad = np.stack(
        [
            (d_loss_d_pred * share_of_E).sum(axis=-1),
            (d_loss_d_pred * share_of_power).sum(axis=-1),
            -(d_loss_d_pred * share_of_power * log_size).sum(axis=-1),
        ],
        axis=-1,
    )
    return loss, grad


# --------------------------------------------------------------------------------------------
# Single fits.


@dataclass(frozen=True)
class _Prepared:
    """Validated data in the coordinates the optimiser works in."""

    log_size: FloatArray  # log D minus log_size_ref
    log_err: FloatArray
    log_size_ref: float
    n_sizes: int
    size_range: tuple[float, float]
    bounds: list[tuple[float | None, float | None]]


def _prepare(sizes: ArrayLike, errors: ArrayLike) -> _Prepared:
    size_arr = np.asarray(sizes, dtype=float).ravel()
    err_arr = np.asarray(errors, dtype=float).ravel()
    if size_arr.shape != err_arr.shape:
        raise ValueError(f"sizes and errors differ in length: {size_arr.size} vs {err_arr.size}")
    if size_arr.size == 0:
        raise ValueError("no points to fit")
    if not (np.all(np.isfinite(size_arr)) and np.all(size_arr > 0)):
        raise ValueError("sizes must be finite and positive")
    if not (np.all(np.isfinite(err_arr)) and np.all(err_arr > 0)):
        # A power law in log space cannot take an error of exactly 0 (a perfect score).
        raise ValueError(
            "errors must be finite and positive; a zero error cannot be fitted in log space"
        )
    log_size_raw = np.log(size_arr)
    log_size_ref = float(log_size_raw.mean())
    log_err = np.log(err_arr)
    lower, upper = bounds(size_arr[None, :], err_arr[None, :])
    fit_bounds: list[tuple[float | None, float | None]] = [
        (float(low), float(high)) for low, high in zip(lower[0], upper[0], strict=True)
    ]
    return _Prepared(
        log_size=log_size_raw - log_size_ref,
        log_err=log_err,
        log_size_ref=log_size_ref,
        n_sizes=int(np.unique(size_arr).size),
        size_range=(float(size_arr.min()), float(size_arr.max())),
        bounds=fit_bounds,
    )


def _starts(prepared: _Prepared, fix_E_zero: bool) -> FloatArray:
    """The start grid (n_starts, 3) clipped into the bounds; e stays -inf in the E = 0 form."""
    grid = start_grid(
        prepared.log_err[None, :],
        e_fractions=(0.0,) if fix_E_zero else _START_E_FRACTIONS,
        alphas=_START_ALPHAS,
        a_offsets=_START_A_OFFSETS,
    )[0]
    lower = np.array([-np.inf if lo is None else lo for lo, _ in prepared.bounds])
    upper = np.array([np.inf if hi is None else hi for _, hi in prepared.bounds])
    clipped = np.clip(grid, lower, upper)
    if fix_E_zero:
        clipped[:, 0] = -np.inf
    return clipped


def _minimise(
    start: FloatArray, prepared: _Prepared, fix_E_zero: bool, delta: float
) -> tuple[FloatArray, float, bool]:
    """One L-BFGS-B run; with ``fix_E_zero`` only (a, alpha) are free and e stays -inf."""
    from scipy.optimize import minimize

    free = slice(1, 3) if fix_E_zero else slice(0, 3)
    theta = start.copy()

    def objective(free_params: FloatArray) -> tuple[float, FloatArray]:
        theta[free] = free_params
        loss, grad = _huber_loss_and_grad(theta, prepared.log_size, prepared.log_err, delta)
        # Dividing by delta makes the loss read like a mean absolute log error, so the
        # gradient is O(1) and L-BFGS-B's absolute tolerances mean something.
        return float(loss) / delta, grad[free] / delta

    result = minimize(
        objective,
        start[free],
        jac=True,
        method="L-BFGS-B",
        bounds=prepared.bounds[free],
        options={"maxiter": 200, "ftol": 1e-12, "gtol": 1e-9},
    )
    converged = bool(result.success) or _at_stationary_point(result, prepared.bounds[free])
    if not converged:
        # L-BFGS-B also ends "abnormally" in its line search at an optimum in a flat valley,
        # where the gradient is not yet small. A derivative-free polish tells the two apart: at
        # an optimum it lowers the loss by less than _POLISH_TOLERANCE of it (the valley lets it
        # creep a little further); elsewhere its better point is kept.
        polish = minimize(
            lambda x: objective(x)[0],
            result.x,
            method="Nelder-Mead",
            bounds=prepared.bounds[free],
            options={"xatol": 1e-9, "fatol": 1e-13, "maxiter": 400},
        )
        improvement = float(result.fun) - float(polish.fun)
        # The objective reads as a mean absolute log error: 1e-9 of it is nothing at all.
        negligible = _POLISH_TOLERANCE * abs(float(result.fun)) + 1e-9
        converged = improvement <= negligible or bool(polish.success)
        if improvement > 0:
            result = polish
    theta[free] = result.x
    return theta, float(result.fun) * delta, converged


def _at_stationary_point(result: Any, bounds: list[tuple[float | None, float | None]]) -> bool:
    """Whether the projected gradient vanishes: every component small, or pressing against
    the bound its parameter sits on (the loss is scaled to O(1), see _minimise)."""
    for x, g, (low, high) in zip(result.x, result.jac, bounds, strict=True):
        held = (low is not None and x <= low and g > 0) or (
            high is not None and x >= high and g < 0
        )
        if not held and abs(g) > _STATIONARY_GRADIENT:
            return False
    return True


def _to_fit(
    theta: FloatArray,
    loss: float,
    converged: bool,
    prepared: _Prepared,
    fix_E_zero: bool,
    delta: float,
) -> PowerLawFit:
    e, a, alpha = (float(v) for v in theta)
    return PowerLawFit(
        E=0.0 if fix_E_zero else math.exp(e),
        A=float(raw_amplitude(a, alpha, prepared.log_size_ref)),
        alpha=alpha,
        loss=loss,
        delta=delta,
        n_points=int(prepared.log_err.size),
        n_sizes=prepared.n_sizes,
        size_range=prepared.size_range,
        converged=converged,
        E_fixed=fix_E_zero,
    )


def fit_power_law(
    sizes: ArrayLike, errors: ArrayLike, *, fix_E_zero: bool = False, delta: float | None = None
) -> PowerLawFit:
    """Fit ``err(D) = E + A * D**-alpha`` to all points (several seeds per size are fine).

    The start grid is scored in one vectorised pass; L-BFGS-B runs from the best few starts and
    the lowest loss wins. ``fix_E_zero=True`` fits the pure power law ``A * D**-alpha``.
    ``delta`` is Huber's; by default it is set from the data (see HUBER_TUNING).
    """
    prepared = _prepare(sizes, errors)
    if delta is None:
        # The least-squares loss is smooth: one run from the best start finds its optimum.
        least_squares = _fit_prepared(prepared, fix_E_zero, LEAST_SQUARES_DELTA, n_starts=1)
        delta = noise_scaled_delta(least_squares, prepared)
    return _fit_prepared(prepared, fix_E_zero, delta)


def noise_scaled_delta(fit: PowerLawFit, prepared: _Prepared) -> float:
    """Huber's delta for the data of ``fit``, from its log residuals."""
    log_size = prepared.log_size + prepared.log_size_ref
    return float(delta_from_residuals(np.log(fit.predict(np.exp(log_size))) - prepared.log_err))


def _fit_prepared(
    prepared: _Prepared, fix_E_zero: bool, delta: float, n_starts: int = _N_REFINED_STARTS
) -> PowerLawFit:
    starts = _starts(prepared, fix_E_zero)
    start_losses, _ = _huber_loss_and_grad(starts, prepared.log_size, prepared.log_err, delta)
    best_starts = starts[np.argsort(start_losses)[:n_starts]]
    candidates = [_minimise(start, prepared, fix_E_zero, delta) for start in best_starts]
    theta, loss, converged = min(candidates, key=lambda candidate: candidate[1])
    return _to_fit(theta, loss, converged, prepared, fix_E_zero, delta)


# --------------------------------------------------------------------------------------------
# Yuan's log-linear form.


def fit_log_linear(sizes: ArrayLike, accuracies: ArrayLike) -> LogLinearFit:
    """Least-squares fit of ``acc = a + b * ln D`` to all points."""
    size_arr = np.asarray(sizes, dtype=float).ravel()
    acc_arr = np.asarray(accuracies, dtype=float).ravel()
    if size_arr.shape != acc_arr.shape:
        raise ValueError(
            f"sizes and accuracies differ in length: {size_arr.size} vs {acc_arr.size}"
        )
    if not np.all(size_arr > 0):
        raise ValueError("sizes must be positive")
    n_sizes = int(np.unique(size_arr).size)
    if n_sizes < 2:
        raise ValueError("a log-linear fit needs at least two distinct sizes")
    design = np.column_stack([np.ones_like(size_arr), np.log(size_arr)])
    (a, b), *_ = np.linalg.lstsq(design, acc_arr, rcond=None)
    residual = acc_arr - design @ np.array([a, b])
    total = float(((acc_arr - acc_arr.mean()) ** 2).sum())
    r_squared = 1.0 - float((residual**2).sum()) / total if total > 0 else 1.0
    return LogLinearFit(
        a=float(a),
        b=float(b),
        r_squared=r_squared,
        n_points=int(size_arr.size),
        n_sizes=n_sizes,
        size_range=(float(size_arr.min()), float(size_arr.max())),
    )
