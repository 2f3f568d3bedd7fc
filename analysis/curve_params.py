"""Fitted parameters of many curves at once: the bootstrap's refits, as arrays.

Each class holds one array of shape (n_curves,) per parameter and answers, for every curve at
once, what the single fits of :mod:`analysis.fit` answer for one: the error at a size
(``predict``) and the size at an error (``inverse``). :mod:`analysis.fit_many` produces them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from analysis.power_law import FloatArray, power_law_inverse

if TYPE_CHECKING:
    from analysis.fit import PowerLawFit


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
class SharedParams:
    """Fitted shared-exponent pairs: the baseline's error is ``E + A * D**-alpha`` and the
    arm's ``E + A * (m * D)**-alpha``; arrays of shape (n_curves,)."""

    E: FloatArray
    A: FloatArray
    alpha: FloatArray
    m: FloatArray
    """The arm's effective data multiplier over the baseline, the same at every size."""
    loss: FloatArray
    converged: np.ndarray

    def predict(self, sizes: ArrayLike, in_arm: ArrayLike) -> FloatArray:
        """Each pair's error at its points (n_curves, n_points): the arm's data count m times."""
        shift = np.where(np.asarray(in_arm) > 0, self.m[:, None], 1.0)
        with np.errstate(over="ignore"):
            return self.E[:, None] + self.A[:, None] * (shift * sizes) ** -self.alpha[:, None]


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
