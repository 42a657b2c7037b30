"""Learning curves: top-1 against the number of training clips, fitted with an interval over the runs.

    fit_learning_curve(sizes, values, chance=50)   one arm's runs (one training-set size and one top-1 each): a
                                                   logistic in log2(size) from `chance` up to a plateau `top`,
                                                   with 95 % bootstrap intervals of top, n50 and of the curve
    curve_ratio(a, b)                              how many times fewer clips arm `a` needs than `b` to reach
                                                   half-way (n50 of b / n50 of a), with its bootstrap interval

The model, for a task whose chance level is `chance` (50 % for the embedded task's two classes):

    top1(n) = chance + (top - chance) / (1 + exp(-(log2 n - log2 n50) / scale))

top: the plateau (at most 100); n50: the size at which the curve is half-way from chance to the plateau; scale: how
many doublings of the set the rise takes. The interval resamples the runs with replacement within each size
(a stratified bootstrap over seeds: `resamples` refits, seeded, so the same runs give the same numbers) and takes
the percentile interval. It describes the runs; it is not a test in any Holm family (the per-size comparisons of
the report's table are). A curve that never leaves chance, or that is at its plateau at every size, has no n50 to
find: the fit says so (`identified` False, a `reason`) instead of returning a number.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

CHANCE = 50.0  # the embedded task's two classes
RESAMPLES = 1000
MIN_SIZES = 4  # three parameters: at least one size more than that
FLAT = 2.0  # points: a curve whose size means span less than this has nothing to fit


def logistic(n: np.ndarray, top: float, log2_n50: float, scale: float, chance: float = CHANCE) -> np.ndarray:
    """The learning-curve model at sizes `n` (see the module docstring)."""
    z = (np.log2(np.asarray(n, dtype=float)) - log2_n50) / scale
    return chance + (top - chance) / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class LearningCurve:
    """A fitted curve. top / n50 / scale: the fit to every run; *_ci: their 95 % bootstrap intervals; grid and
    band: sizes at which the fitted curve and its pointwise 95 % interval (low, high rows) are given; identified:
    False when the data hold no rise to fit (then the numbers are NaN and `reason` says why)."""

    top: float
    n50: float
    scale: float
    top_ci: tuple[float, float]
    n50_ci: tuple[float, float]
    identified: bool
    reason: str = ""
    grid: np.ndarray = field(default_factory=lambda: np.zeros(0))
    curve: np.ndarray = field(default_factory=lambda: np.zeros(0))
    band: np.ndarray = field(default_factory=lambda: np.zeros((2, 0)))
    n50_draws: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def text(self) -> str:
        """"plateau 97.1 [95.0, 99.0] %, half-way at 410 [250, 690] clips" (or why there is no fit)."""
        if not self.identified:
            return f"no curve fitted: {self.reason}"
        return (f"plateau {self.top:.1f} [{self.top_ci[0]:.1f}, {self.top_ci[1]:.1f}] %, half-way from chance at "
                f"{self.n50:.0f} [{self.n50_ci[0]:.0f}, {self.n50_ci[1]:.0f}] clips (95 % bootstrap intervals over "
                "the runs)")


def _fit(sizes: np.ndarray, values: np.ndarray, chance: float) -> tuple[float, float, float] | None:
    """Least squares of the model; None when it does not converge."""
    x = np.log2(sizes)
    top0 = min(100.0, max(values.max(), chance + 1e-3))
    mid = float(np.median(x))
    lower, upper = [chance, x.min() - 4.0, 0.05], [100.0, x.max() + 4.0, 8.0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # OptimizeWarning on a covariance it cannot estimate: not used here
            params, _ = optimize.curve_fit(lambda s, t, m, c: logistic(s, t, m, c, chance), sizes, values,
                                           p0=[top0, mid, 1.0], bounds=(lower, upper), maxfev=20000)
    except (RuntimeError, ValueError):
        return None
    return float(params[0]), float(params[1]), float(params[2])


def fit_learning_curve(sizes: Sequence[float], values: Sequence[float], *, chance: float = CHANCE,
                       resamples: int = RESAMPLES, seed: int = 0, level: float = 0.95,
                       grid: Sequence[float] | None = None) -> LearningCurve:
    """Fit one arm's runs (`sizes[i]` training clips gave top-1 `values[i]`, in %): see the module docstring.
    A ValueError for mismatched lengths or fewer than MIN_SIZES distinct sizes."""
    sizes_a, values_a = np.asarray(sizes, dtype=float), np.asarray(values, dtype=float)
    if sizes_a.shape != values_a.shape or sizes_a.ndim != 1:
        raise ValueError(f"sizes and values must be 1-d and of one length, got {sizes_a.shape} and {values_a.shape}")
    keep = np.isfinite(values_a) & np.isfinite(sizes_a)
    sizes_a, values_a = sizes_a[keep], values_a[keep]
    distinct = np.unique(sizes_a)
    if len(distinct) < MIN_SIZES or (sizes_a <= 0).any():
        raise ValueError(f"a learning curve needs positive sizes, at least {MIN_SIZES} distinct ones; got "
                         f"{sorted(distinct.tolist())}")
    grid_a = np.asarray(grid if grid is not None else np.geomspace(distinct.min(), distinct.max(), 50), dtype=float)
    nan2 = (math.nan, math.nan)
    means = np.array([values_a[sizes_a == s].mean() for s in distinct])
    if np.ptp(means) < FLAT:
        where = "at chance" if means.max() < chance + FLAT else "at its plateau"
        return LearningCurve(math.nan, math.nan, math.nan, nan2, nan2, False,
                             f"the mean top-1 stays within {FLAT:g} points over every size ({means.min():.1f} to "
                             f"{means.max():.1f} %: {where}), so there is no rise to place", grid_a)
    best = _fit(sizes_a, values_a, chance)
    if best is None:
        return LearningCurve(math.nan, math.nan, math.nan, nan2, nan2, False, "the least-squares fit did not converge",
                             grid_a)
    rng = np.random.default_rng(seed)
    by_size = [np.flatnonzero(sizes_a == s) for s in distinct]
    draws, curves = [], []
    for _ in range(resamples):
        pick = np.concatenate([rng.choice(idx, size=len(idx), replace=True) for idx in by_size])
        params = _fit(sizes_a[pick], values_a[pick], chance)
        if params is not None:
            draws.append(params)
            curves.append(logistic(grid_a, *params, chance))
    tail = (1 - level) / 2 * 100
    draws_a = np.array(draws)
    band = np.percentile(np.array(curves), [tail, 100 - tail], axis=0) if curves else np.full((2, len(grid_a)), math.nan)
    ci = lambda col: tuple(float(v) for v in np.percentile(draws_a[:, col], [tail, 100 - tail]))  # noqa: E731
    top_ci = ci(0)
    log_ci = ci(1)
    return LearningCurve(best[0], float(2 ** best[1]), best[2], top_ci, (2 ** log_ci[0], 2 ** log_ci[1]), True, "",
                         grid_a, logistic(grid_a, *best, chance), band, 2 ** draws_a[:, 1])


def curve_ratio(a: LearningCurve, b: LearningCurve, level: float = 0.95) -> tuple[float, float, float]:
    """n50 of `b` over n50 of `a` (above 1: `a` needs fewer clips to get half-way), with the percentile interval of
    the ratio of their independent bootstrap draws (paired draw by draw). NaN where either curve has no fit."""
    if not (a.identified and b.identified) or not len(a.n50_draws) or not len(b.n50_draws):
        return math.nan, math.nan, math.nan
    m = min(len(a.n50_draws), len(b.n50_draws))
    ratios = b.n50_draws[:m] / a.n50_draws[:m]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return b.n50 / a.n50, float(low), float(high)
