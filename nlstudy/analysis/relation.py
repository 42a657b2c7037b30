"""Does one measure of a run predict another across runs? E.g. does the size of a network's effective receptive
field predict its accuracy?

    rank_correlation(x, y)   Spearman's rho with a confidence interval and a permutation p-value

Plain functions on arrays of per-run values (one entry per run, in the same order); no pandas, no config keys.
"""

from __future__ import annotations

import itertools
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
                  Spearman's rho, sqrt((1 + rho^2 / 2) / (n - 3)), back-transformed (within [-1, 1]); it
                  collapses onto rho = +-1 when the ranks agree perfectly, however few the runs: read p there
    p:            two-sided p-value of rho = 0 by permutation of y against x: every ordering for n <= 8,
                  otherwise `resamples` random ones (seeded), counting the observed one (p >= 1 / (resamples + 1))
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
    return RankCorrelation(rho, low, high, _permutation_p(xs, ys, rho, resamples, seed), n, confidence)


EXACT_UP_TO = 8  # runs: every ordering (8! = 40,320) is enumerated up to this many


def _permutation_p(xs: np.ndarray, ys: np.ndarray, rho: float, resamples: int, seed: int) -> float:
    """Two-sided permutation p-value of Spearman's rho: the share of orderings of y whose |rho| reaches the
    observed one. Spearman's rho is Pearson's r of the (average) ranks, so each ordering costs one dot product."""
    rx, ry = stats.rankdata(xs), stats.rankdata(ys)
    rx, ry = (rx - rx.mean()) / np.linalg.norm(rx - rx.mean()), (ry - ry.mean()) / np.linalg.norm(ry - ry.mean())
    n = len(rx)
    tolerance = 1e-12 * max(1.0, abs(rho))
    if n <= EXACT_UP_TO:
        orders = np.array(list(itertools.permutations(range(n))))  # (n!, n)
        values = ry[orders] @ rx
        return float(np.mean(np.abs(values) >= abs(rho) - tolerance))
    rng = np.random.default_rng(seed)
    values = rng.permuted(np.tile(ry, (resamples, 1)), axis=1) @ rx  # (resamples,)
    return float((1 + np.sum(np.abs(values) >= abs(rho) - tolerance)) / (resamples + 1))
