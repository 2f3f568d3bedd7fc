"""The saturating power law ``err(D) = E + A * D**-alpha`` as both fitters see it.

Design
------
:mod:`analysis.fit` (one curve, L-BFGS-B) and :mod:`analysis.fit_many` (many curves, a
vectorised Levenberg-Marquardt) minimise the same objective in the same coordinates, so its
definition lives here once: the internal parameters, their bounds, the grid of starting points,
the loss's Huber delta, and the curve's inverse.

Internal parameters (e, a, alpha): ``E = exp(e)`` and the reducible error ``exp(a)`` at the
geometric mean of the sizes, so ``log err = logaddexp(e, a - alpha * (log D - log D_ref))``.
E >= 0 and A > 0 hold by construction, and ``a`` does not depend on the units of D. The E = 0
form has e = -inf. A shared-exponent pair adds mu = log m, the arm's data factor.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

# Huber's delta, in log-error units, is set from the data: 1.345 robust standard deviations of the
# residuals of a least-squares fit (Huber's classic tuning: near least squares for Gaussian
# seed noise, linear beyond, so one bad seed moves the curve little). A fixed tiny delta (1e-3,
# as in Chinchilla's fits) makes the loss L1, and with two seeds per size an L1 loss is flat for
# every curve passing between each pair: the optimum is not unique and a bootstrap would only
# report where the optimiser happened to stop. HUBER_DELTA is the floor (noise-free data).
HUBER_DELTA = 1e-3
HUBER_TUNING = 1.345
LEAST_SQUARES_DELTA = 10.0  # residuals in log units never reach it: plain least squares

# Bounds on the internal parameters (e, a, alpha). E is allowed to fall ~9 orders of magnitude
# below the smallest observed error, which is "zero" for every purpose; a is the log reducible
# error at the geometric-mean size, so it cannot sensibly exceed the largest error by much.
E_FLOOR_DECADES = 9.0
ALPHA_BOUNDS = (1e-3, 5.0)
A_HEADROOM = 5.0
# A shared-exponent fit's data factor m stays within 1e4 either way.
LOG_M_BOUND = math.log(1e4)


def bounds(sizes: FloatArray, errors: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per curve (a row of ``errors``, (n_curves, n_points)), the lower and upper bounds of
    (e, a, alpha): arrays (n_curves, 3). E's ceiling is the lowest mean error observed (see
    smallest_mean_error); the E = 0 form replaces e's bounds by -inf itself."""
    log_err = np.log(errors)
    e_lower = log_err.min(axis=1) - E_FLOOR_DECADES * math.log(10)
    top = log_err.max(axis=1)
    e_upper = np.log(smallest_mean_error(sizes, errors))
    lower = [e_lower, e_lower, np.full_like(top, ALPHA_BOUNDS[0])]
    upper = [
        np.broadcast_to(e_upper, top.shape),
        top + A_HEADROOM,
        np.full_like(top, ALPHA_BOUNDS[1]),
    ]
    return np.stack(lower, axis=1), np.stack(upper, axis=1)


def start_grid(
    log_err: FloatArray,
    *,
    e_fractions: tuple[float, ...],
    alphas: tuple[float, ...],
    a_offsets: tuple[float, ...] = (0.0,),
    log_m: tuple[float, ...] | None = None,
) -> FloatArray:
    """Starting points (n_curves, n_starts, P) for curves whose log errors are the rows of
    ``log_err``: E a fraction of the smallest error (a fraction of 0 is the E = 0 form's
    e = -inf), a matching the mean reducible error at the reference size (moved by each
    offset), every alpha, and with ``log_m`` each data factor of a shared pair.

    No start puts E near 0 in the free form: there the gradient in e vanishes (E's share of the
    prediction is ~0) and the optimiser stalls, while a start at 0.1 still walks down to the
    floor when the data have none."""
    min_err = np.exp(log_err.min(axis=1))
    mean_err = np.exp(log_err).mean(axis=1)
    shifts: tuple[float | None, ...] = (None,) if log_m is None else log_m
    starts = []
    for fraction in e_fractions:
        floor = fraction * min_err
        a_centre = np.log(np.maximum(mean_err - floor, 1e-3 * mean_err))
        with np.errstate(divide="ignore"):
            e = np.log(floor)
        for alpha in alphas:
            for offset in a_offsets:
                for shift in shifts:
                    extra = [] if shift is None else [np.full_like(e, shift)]
                    columns = [e, a_centre + offset, np.full_like(e, alpha), *extra]
                    starts.append(np.stack(columns, axis=1))
    return np.stack(starts, axis=1)


def centred(E: Any, A: Any, alpha: Any, log_size_ref: Any) -> tuple[Any, Any, Any]:
    """(E, A, alpha) in raw units -> the internal (e, a, alpha) at the reference log size."""
    with np.errstate(divide="ignore"):
        return np.log(E), np.log(A) - alpha * log_size_ref, alpha


def raw_amplitude(a: Any, alpha: Any, log_size_ref: Any) -> Any:
    """Undo the centring: ``A * D^-alpha = exp(a) * (D / D_ref)^-alpha``."""
    return np.exp(a + alpha * log_size_ref)


def delta_from_residuals(residual: FloatArray) -> Any:
    """HUBER_TUNING robust standard deviations (1.4826 * MAD) of log residuals (last axis),
    at least HUBER_DELTA."""
    deviation = np.abs(residual - np.median(residual, axis=-1, keepdims=True))
    return np.maximum(HUBER_TUNING * 1.4826 * np.median(deviation, axis=-1), HUBER_DELTA)


def smallest_mean_error(sizes: ArrayLike, errors: ArrayLike) -> Any:
    """The lowest per-size mean error along the last axis: the ceiling of the floor E.

    A floor above an error the arm reached on average is contradicted by the data; left free,
    a fit can put E there (the other sizes pull it up), and a better arm then reads as worse or
    an arm below the floor as infinitely better. Points of one size are its seeds.
    """
    size_arr = np.asarray(sizes, dtype=float)
    err_arr = np.asarray(errors, dtype=float)
    size_arr = np.broadcast_to(size_arr, err_arr.shape)
    same = size_arr[..., :, None] == size_arr[..., None, :]
    means = (same * err_arr[..., None, :]).sum(axis=-1) / same.sum(axis=-1)
    return unwrap(means.min(axis=-1))


def power_law_inverse(E: Any, A: Any, alpha: Any, err: ArrayLike) -> FloatArray:
    """Size at which ``E + A * D**-alpha`` reaches ``err`` (broadcasting): ``inf`` where it
    never gets that low, ``nan`` for a non-finite err."""
    target = np.asarray(err, dtype=float)
    reducible = target - E
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        sizes = (A / reducible) ** (1.0 / alpha)
    sizes = np.where(reducible > 0, sizes, np.inf)
    return np.where(np.isfinite(target), sizes, np.nan)


def unwrap(values: np.ndarray) -> Any:
    """A Python scalar for 0-d input, the array otherwise."""
    return values.item() if np.ndim(values) == 0 else values
