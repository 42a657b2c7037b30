"""The statistics of a table: each row against its group's baseline, as plain functions on one value per
seed (no pandas, no config keys).

A comparison (:func:`compare`) of a row's per-seed values `a` with its baseline's `b` gives

- ``delta``: mean(a) - mean(b), with ``ci_low`` / ``ci_high``, the 95 % Welch interval of the difference;
- ``p``: Welch's t-test of mean(a) = mean(b), two-sided;
- ``p_tost``: the two one-sided Welch tests (TOST) of |delta| >= margin, the larger of their p-values:
  a small value shows the row equivalent to its baseline within ±margin;
- ``mde``: the smallest |delta| that a two-sided two-sample t-test at ``ALPHA`` detects with 80 % power,
  with the row's n and the pooled spread of the two sides.

A table's comparisons are one family (:func:`holm` adjusts their p-values), and each ends in a
:func:`verdict`: ``better`` / ``worse`` when the Holm-adjusted p is below ``ALPHA``, ``equivalent`` when the
Holm-adjusted TOST p is, else ``undecided``. "No difference" is only ever said of ``equivalent``.

Seeds added until decided (``nlstudy sweep --until-decided``) look at the data several times. The looks are
planned in advance (:func:`look_schedule`: n = 3, 6, 10 by default), and each state of a comparison (its
baseline's look, its row's look) has a share of ``ALPHA`` (:func:`look_shares`; the shares of every state
sum to 1). A comparison's p-values are divided by its state's share before Holm: by the union bound over
the states, the chance that a true null ends ``better`` or ``worse`` at any look stays below ``ALPHA``
whichever looks the study stops at (weighted Bonferroni over the looks; tested by simulation in
tests/test_report_stats.py). A study run once with a fixed number of seeds has one look and a share of 1.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import optimize
from scipy.stats import nct
from scipy.stats import t as student_t

ALPHA = 0.05  # the error rate of every verdict (family-wise, after Holm)
POWER = 0.8  # the power the minimal detectable effect (mde) is computed at
MARGIN = 2.0  # default equivalence margin, in points of the metric (2 points of top-1)
MAX_SEEDS = 10  # --until-decided: the most seeds a row gets
VERDICTS = ("better", "worse", "equivalent", "undecided")
MIXED_SHARE = 0.1  # of ALPHA, for the states whose baseline and row are at different looks (all of them together)


def t_interval(values: np.ndarray, level: float = 0.95, *, bounds: tuple[float, float] | None = None) -> tuple[float, float]:
    """The Student t interval of the mean of `values` (NaN below two values), clipped to `bounds`."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n < 2:
        return math.nan, math.nan
    mean, sem = float(values.mean()), float(values.std(ddof=1)) / math.sqrt(n)
    half = float(student_t.ppf(0.5 + level / 2, df=n - 1) * sem)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return low, high


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A row against its baseline (see the module's docstring). NaN where a side has fewer than two values."""

    delta: float
    ci_low: float
    ci_high: float
    p: float
    p_tost: float
    mde: float
    exact: bool  # neither side varies over seeds: compared exactly (p and p_tost are 0 or 1)


def welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Welch's t statistic of mean(a) - mean(b), its standard error and its Welch-Satterthwaite degrees of
    freedom (each side with at least two values, not both constant). The same numbers as
    ``scipy.stats.ttest_ind(a, b, equal_var=False)`` (checked by the tests), without its per-call overhead,
    which the simulations of the stopping rule would pay thousands of times."""
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return float((a.mean() - b.mean()) / se), se, float(df)


def welch_p(a: Sequence[float], b: Sequence[float]) -> tuple[float, bool]:
    """Two-sided p-value of Welch's t-test of `a` against `b` (one value per seed), and whether it
    was decided exactly (both sides constant: p = 1 for the same constant, 0 for different ones).
    NaN with fewer than two values on a side."""
    c = compare(a, b, margin=MARGIN)
    return c.p, c.exact


def compare(a: Sequence[float], b: Sequence[float], *, margin: float, level: float = 0.95,
            with_mde: bool = True) -> Comparison:
    """Row values `a` against baseline values `b` (one value per seed): see :class:`Comparison`. `with_mde`:
    False leaves ``mde`` NaN (no verdict depends on it; it is the slow part)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    nan = math.nan
    if len(a) == 0 or len(b) == 0:
        return Comparison(nan, nan, nan, nan, nan, nan, False)
    delta = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return Comparison(delta, nan, nan, nan, nan, nan, False)
    if np.ptp(a) == 0 and np.ptp(b) == 0:  # 0/0 or x/0: no spread to test with, the means are exact
        return Comparison(delta, delta, delta, 0.0 if delta != 0 else 1.0, 1.0 if abs(delta) >= margin else 0.0,
                          0.0, True)
    t, se, df = welch(a, b)
    half = float(student_t.ppf(0.5 + level / 2, df)) * se
    p = float(2 * student_t.sf(abs(t), df))
    # TOST: H0 delta <= -margin (rejected for a large (delta + margin) / se) and H0 delta >= margin
    lower = float(student_t.sf((delta + margin) / se, df))
    upper = float(student_t.cdf((delta - margin) / se, df))
    return Comparison(delta, delta - half, delta + half, min(p, 1.0), max(lower, upper),
                      mde(len(a), len(b), pooled_std(a, b)) if with_mde else nan, False)


def pooled_std(a: np.ndarray, b: np.ndarray) -> float:
    """The pooled standard deviation of two samples (each with at least two values)."""
    na, nb = len(a), len(b)
    return math.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2))


def power(delta: float, n1: int, n2: int, sd: float, alpha: float = ALPHA) -> float:
    """Power of the two-sided two-sample (pooled) t-test at `alpha` to detect a true difference `delta`."""
    df = n1 + n2 - 2
    crit = student_t.ppf(1 - alpha / 2, df)
    shift = delta / (sd * math.sqrt(1 / n1 + 1 / n2))
    return float(nct.sf(crit, df, shift) + nct.cdf(-crit, df, shift))


def mde(n1: int, n2: int, sd: float, alpha: float = ALPHA, target: float = POWER) -> float:
    """The smallest |delta| the two-sided two-sample t-test at `alpha` detects with power `target`, for
    n1 and n2 values of spread `sd` (0 for no spread, NaN below two values on a side)."""
    if n1 < 2 or n2 < 2 or not math.isfinite(sd):
        return math.nan
    if sd == 0:
        return 0.0
    hi = sd
    while power(hi, n1, n2, sd, alpha) < target:
        hi *= 2
    return float(optimize.brentq(lambda d: power(d, n1, n2, sd, alpha) - target, 0.0, hi, xtol=1e-10 * sd))


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN entries are not tested: they keep NaN and do
    not count in the family's size)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(len(p), math.nan)
    tested = np.flatnonzero(~np.isnan(p))
    m = len(tested)
    if not m:
        return out
    order = tested[np.argsort(p[tested], kind="stable")]
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adjusted, 1.0)
    return out


def family_verdicts(deltas: Sequence[float], p: Sequence[float], p_tost: Sequence[float], shares: Sequence[float],
                    alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One family of distinct comparisons: each p-value divided by its state's share of alpha, then Holm's
    adjustment over the family, for the test of a difference (``p_holm``) and of equivalence (``p_equiv``);
    and each comparison's :func:`verdict`. What the report and ``--until-decided`` decide with."""
    shares = np.asarray(shares, dtype=float)
    p_holm = holm(np.minimum(1.0, np.asarray(p, dtype=float) / shares))
    p_equiv = holm(np.minimum(1.0, np.asarray(p_tost, dtype=float) / shares))
    return p_holm, p_equiv, [verdict(d, h, e, alpha) for d, h, e in zip(deltas, p_holm, p_equiv)]


def verdict(delta: float, p_holm: float, p_equiv: float, alpha: float = ALPHA) -> str:
    """better / worse (p_holm < alpha, by the sign of delta), equivalent (p_equiv < alpha), else undecided."""
    if p_holm < alpha and delta != 0:
        return "better" if delta > 0 else "worse"
    if p_equiv < alpha:
        return "equivalent"
    return "undecided"


# --------------------------------------------------------------------------------------------------
# seeds added until decided: the planned looks and each state's share of ALPHA
# --------------------------------------------------------------------------------------------------


def look_schedule(first: int, max_seeds: int = MAX_SEEDS) -> tuple[int, ...]:
    """The planned looks of a study that starts with `first` seeds a row and adds seeds until decided, up to
    `max_seeds`: the seeds double at each look (3 -> 6 -> 10 for 3 and 10)."""
    if first < 1 or max_seeds < 1:
        raise ValueError(f"looks need at least one seed, got first={first}, max_seeds={max_seeds}")
    looks = [min(first, max_seeds)]
    while looks[-1] < max_seeds:
        looks.append(min(max_seeds, 2 * looks[-1]))
    return tuple(looks)


def look_shares(looks: Sequence[int]) -> np.ndarray:
    """shares[i, j]: the share of ALPHA of a comparison whose baseline is at look i and whose row at look j.

    The shares of all K x K states sum to 1 (so a study that may stop at any of them keeps ALPHA): the
    states where both sides are at the same look, which a study that grows a row with its baseline passes
    through, share 1 - MIXED_SHARE in proportion 1 : 3 : 9 ... (most of ALPHA at the last look, where the
    power is); the K(K-1) others, where a baseline gained seeds for another row, share MIXED_SHARE.
    """
    k = len(looks)
    if k == 1:
        return np.ones((1, 1))
    shares = np.full((k, k), MIXED_SHARE / (k * (k - 1)))
    diagonal = 3.0 ** np.arange(k)
    np.fill_diagonal(shares, (1 - MIXED_SHARE) * diagonal / diagonal.sum())
    return shares


def look_index(n: int, looks: Sequence[int]) -> int:
    """Which planned look a side with `n` values is at: the last look with at most n seeds (the first look
    for fewer seeds than it plans, e.g. after a failed run; the last for more)."""
    i = int(np.searchsorted(np.asarray(looks), n, side="right")) - 1
    return min(max(i, 0), len(looks) - 1)


def alpha_share(n_base: int, n_row: int, looks: Sequence[int] | None) -> float:
    """The share of ALPHA of a comparison of `n_row` row values with `n_base` baseline values under the planned
    `looks` (1 for a fixed design: None or one look)."""
    if not looks or len(looks) == 1:
        return 1.0
    return float(look_shares(looks)[look_index(n_base, looks), look_index(n_row, looks)])


def next_look(n: int, looks: Sequence[int]) -> int | None:
    """The number of seeds of the first planned look beyond `n`, or None when `n` reached the last."""
    later = [k for k in looks if k > n]
    return later[0] if later else None


def plan_round(rows: Sequence[tuple[object, object, int, str]], looks: Sequence[int]) -> dict[object, int]:
    """Seeds until decided, one round: `rows` are (row, its baseline, the row's n, its verdict); every undecided
    row below the last look goes to the next look, and its baseline to at least as many seeds. Returns
    {row or baseline: the number of seeds it should have} for those that need more (empty: the study ends)."""
    targets: dict[object, int] = {}
    for row, base, n, row_verdict in rows:
        if row_verdict != "undecided":
            continue
        target = next_look(n, looks)
        if target is None:
            continue
        targets[row] = max(targets.get(row, 0), target)
        targets[base] = max(targets.get(base, 0), target)
    return targets


def trivial_top5(table: pd.DataFrame) -> bool:
    """Every run's top-5 is 100 %: a task with at most 5 classes, where the column says nothing."""
    ours = [c for c in table.columns if "top5" in c and not c.startswith("paper")]  # the paper's column is Kinetics'
    cols = [c for c in ours if not c.endswith("_std")]
    top5 = table[cols].to_numpy(dtype=float).ravel() if cols else np.array([])
    top5 = top5[~np.isnan(top5)]
    stds = table[[c for c in ours if c.endswith("_std")]].to_numpy(dtype=float).ravel()
    return bool(len(top5)) and bool((top5 == 100.0).all()) and bool(np.nan_to_num(stds).max(initial=0.0) == 0.0)
