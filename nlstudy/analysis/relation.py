"""Does one measure of a run predict another across runs? E.g. does the size of a network's effective receptive
field predict its accuracy?

    rank_correlation(x, y)   Spearman's rho with a confidence interval and a permutation p-value

Plain functions on arrays of per-run values (one entry per run, in the same order); no pandas, no config keys.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

MIN_RUNS = 5  # below this the interval (Fisher's z needs n > 3) and the permutation test say nothing useful


@dataclass(frozen=True)
class RankCorrelation:
    """Spearman's rank correlation of two per-run measures.

    rho:          Spearman's rho (ties get average ranks)
    low, high:    its `confidence` interval: Fisher's z with Bonett and Wright's (2000) standard error for
                  Spearman's rho, sqrt((1 + rho^2 / 2) / (n - 3)), back-transformed (within [-1, 1])
    p:            two-sided p-value of rho = 0 by permutation of y against x (exact for n <= 8, otherwise
                  `resamples` random permutations, seeded)
    n:            runs compared (pairs with a nan on either side are left out)
    confidence:   the interval's level
    """

    rho: float
    low: float
    high: float
    p: float
    n: int
    confidence: float


def rank_correlation(x: Sequence[float], y: Sequence[float], *, confidence: float = 0.95,
                     resamples: int = 9999, seed: int = 0) -> RankCorrelation:
    """Spearman's rho between per-run values `x` (e.g. the ERF's side at 0.5 of its mass) and `y` (e.g. test
    top-1), with an interval and a permutation p-value (`RankCorrelation`). Pairs with a nan are dropped; at
    least MIN_RUNS pairs must remain, and neither side may be constant.

    Across arms the correlation mixes "a wider ERF goes with higher accuracy" with "the arm decides both":
    compute it within an arm (its seeds and settings) to ask the first question.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise ValueError(f"x and y must be 1-d and of the same length, got shapes {xs.shape} and {ys.shape}")
    keep = ~(np.isnan(xs) | np.isnan(ys))
    xs, ys = xs[keep], ys[keep]
    n = len(xs)
    if n < MIN_RUNS:
        raise ValueError(f"rank_correlation needs at least {MIN_RUNS} runs with both values, got {n}")
    if np.ptp(xs) == 0 or np.ptp(ys) == 0:
        raise ValueError("rank_correlation: one of the measures is the same in every run; no ranks to correlate")
    rho = float(stats.spearmanr(xs, ys).statistic)
    z, se = math.atanh(max(min(rho, 1 - 1e-15), -1 + 1e-15)), math.sqrt((1 + rho**2 / 2) / (n - 3))
    half = stats.norm.ppf(0.5 + confidence / 2) * se
    low, high = math.tanh(z - half), math.tanh(z + half)

    def statistic(values: np.ndarray) -> float:
        return stats.spearmanr(xs, values).statistic

    test = stats.permutation_test((ys,), statistic, permutation_type="pairings", alternative="two-sided",
                                  n_resamples=resamples, rng=np.random.default_rng(seed))
    return RankCorrelation(rho, low, high, float(test.pvalue), n, confidence)
