"""The scaling law a world of Zipf-distributed skills predicts for itself.

A task whose unit of knowledge is a skill (a fact, a rule, an operator the base model does not
know): K skills, drawn with Zipf frequencies p_k ~ k^-a. Each problem uses `per_problem` skills,
drawn independently; a learner that has seen a skill at least `exposures` times can use it, and
a problem is solved when all its skills can be used (or, for each one it cannot use, by luck
with probability `chance`). Its expected error then falls as a power law of the data size D,
with the exponent (a - 1) / a (Hutter 2021, "Learning Curve Theory"; Michaud et al. 2023, "The
Quantization Model of Neural Scaling"), whatever `exposures` and `per_problem` are: they move
the constant, not the exponent.

Derivation, for one skill use (r = per_problem = 1, chance 0). After M = r * D draws, skill k
has been seen Poisson(M p_k) times, so the error is

    err(M) = sum_k p_k P(Poisson(M p_k) < n)
           ~ (1/a) Z^(-1/a) sum_{j<n} Gamma(j + 1 - 1/a) / j!  *  M^-(1 - 1/a)

with Z = sum_k k^-a, replacing the sum by an integral (u = M p_k). It holds between the two
ends of the range: while the commonest skill is well known (M p_1 >> n) and the rarest is
still mostly unseen (M p_K << n); past that end every skill is known and the error falls to 0.
With r skills a problem fails when any fails, err ~ r * err(r D), while err is small (for r > 1
the power law holds only there: 1 - (1 - e)^r is r e for small e).

`expected_error` is the exact sum (each skill's count binomial), exact for r = 1 and, for
r > 1, exact but for the weak dependence of the counts of different skills in one training set;
`simulate_ideal_learner` draws training sets and test problems and counts, which checks both.

Pure numpy and scipy: no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special, stats


@dataclass(frozen=True)
class SkillLaw:
    """The knobs of a Zipf-skill world that decide its learning curve."""

    skills: int
    """K: how many skills there are to learn."""
    zipf: float
    """a > 1: skill k is drawn with probability proportional to k^-a."""
    per_problem: int = 1
    """r: skills each problem uses (drawn independently)."""
    exposures: int = 1
    """n: how many times a learner must see a skill in training to use it."""
    chance: float = 0.0
    """The probability of getting a step right without its skill (a guess)."""

    def __post_init__(self) -> None:
        if self.skills < 1 or self.zipf <= 1 or self.per_problem < 1 or self.exposures < 1:
            raise ValueError(
                f"need skills >= 1, zipf > 1, per_problem >= 1, exposures >= 1: {self}"
            )
        if not 0 <= self.chance < 1:
            raise ValueError(f"chance must be in [0, 1): {self.chance}")

    @property
    def exponent(self) -> float:
        """The power law's exponent: err ~ D^-(a - 1) / a."""
        return (self.zipf - 1) / self.zipf

    def probabilities(self) -> NDArray[np.float64]:
        weights = self._weights()
        return weights / weights.sum()

    def _weights(self) -> NDArray[np.float64]:
        return np.arange(1, self.skills + 1, dtype=float) ** -self.zipf

    def known(self, sizes: ArrayLike) -> NDArray[np.float64]:
        """P(a test skill is known) after training on each size: sum_k p_k P(count_k >= n)."""
        draws = np.rint(np.asarray(sizes, dtype=float))[:, None] * self.per_problem
        p = self.probabilities()
        seen_enough = stats.binom.sf(self.exposures - 1, draws, p[None, :])
        return seen_enough @ p

    def expected_error(self, sizes: ArrayLike) -> NDArray[np.float64]:
        """The expected error of the ideal learner at each data size (problems)."""
        usable = self.known(sizes)
        per_skill = usable + (1 - usable) * self.chance
        return 1 - per_skill**self.per_problem

    def asymptotic_error(self, sizes: ArrayLike) -> NDArray[np.float64]:
        """The power law itself, A * D^-exponent, for chance = 0 and small errors."""
        draws = self.per_problem * np.asarray(sizes, dtype=float)
        return self.per_problem * self._one_skill_constant() * draws**-self.exponent

    def _one_skill_constant(self) -> float:
        a, j = self.zipf, np.arange(self.exposures)
        gammas = np.sum(special.gamma(j + 1 - 1 / a) / special.factorial(j))
        return float((1 / a) * self._weights().sum() ** (-1 / a) * gammas)

    def power_law_range(self) -> tuple[float, float]:
        """Data sizes (problems) between which the power law holds to about 10%. Below: the
        commonest skill must be seen ~10n times. Above: the rarest still mostly unseen, and the
        error 20 times what the integral counts beyond the K-th skill, about
        K^(1-a) / ((a - 1) Z), which the world does not have."""
        a, r, n, k = self.zipf, self.per_problem, self.exposures, self.skills
        p = self.probabilities()
        beyond = k ** (1 - a) / ((a - 1) * self._weights().sum())
        draws_at_margin = (self._one_skill_constant() / (20 * beyond)) ** (1 / self.exponent)
        high = min(n / (10 * p[-1]), draws_at_margin) / r
        return 10 * n / (r * p[0]), high


def simulate_ideal_learner(
    law: SkillLaw, sizes: ArrayLike, *, seeds: int, test_problems: int, seed: int = 0
) -> NDArray[np.float64]:
    """Test error of the ideal learner, `seeds` independent training sets per size, each judged
    on `test_problems` fresh problems: an array of shape (len(sizes), seeds)."""
    rng = np.random.default_rng(seed)
    p = law.probabilities()
    sizes = np.asarray(sizes, dtype=int)
    errors = np.empty((len(sizes), seeds))
    for i, size in enumerate(sizes):
        for s in range(seeds):
            counts = rng.multinomial(size * law.per_problem, p)
            tested = rng.choice(law.skills, size=(test_problems, law.per_problem), p=p)
            usable = counts[tested] >= law.exposures
            lucky = rng.random(usable.shape) < law.chance
            errors[i, s] = 1 - np.mean(np.all(usable | lucky, axis=1))
    return errors
