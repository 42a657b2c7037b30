"""The statistics of a table: Welch's t-test of each row against its group's baseline, the 95% t
interval of a row's mean, and whether a table's top-5 says anything at all.

Every function works on one value per seed (a row's finished runs); none knows about config keys.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import t as student_t
from scipy.stats import ttest_ind

ALPHA = 0.05  # significance level of the top-1 test against the baseline
SIG_MARK = "*"  # marks p < ALPHA: after Δ top-1 in the tables, above the bar in the figure


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The Student t interval of the mean of `values` (NaN below three values), clipped to [0, 100]."""
    n = len(values)
    if n < 3:
        return math.nan, math.nan
    mean, sem = values.mean(), values.std(ddof=1) / math.sqrt(n)
    half = float(student_t.ppf(0.5 + level / 2, df=n - 1) * sem)
    return max(float(mean - half), 0.0), min(float(mean + half), 100.0)  # accuracies live in [0, 100]


def welch_p(a: np.ndarray, b: np.ndarray) -> tuple[float, bool]:
    """Two-sided p-value of Welch's t-test of `a` against `b` (one value per seed), and whether it
    was decided exactly.

    NaN with fewer than two values on a side (no variance to test with). When both sides have zero
    variance the t statistic is 0/0 or x/0, so they are compared exactly: p = 1 for the same
    constant, 0 for different constants (``exact`` is then True).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return math.nan, False
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return (1.0 if a[0] == b[0] else 0.0), True
    with warnings.catch_warnings():  # one constant side is fine for Welch; scipy still warns about it
        warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
        return float(ttest_ind(a, b, equal_var=False).pvalue), False


def significance(c: dict, base: dict | None) -> dict[str, Any]:
    """A row's ``p_top1``, ``sig`` and ``p_exact`` against its group's baseline row (`c` and `base`
    carry their per-seed top-1 in ``top1_values``)."""
    if base is None or c is base:
        return {"p_top1": math.nan, "sig": False, "p_exact": False}
    p, exact = welch_p(c["top1_values"], base["top1_values"])
    return {"p_top1": p, "sig": bool(p < ALPHA), "p_exact": exact}


def trivial_top5(table: pd.DataFrame) -> bool:
    """Every run's top-5 is 100 %: a task with at most 5 classes, where the column says nothing."""
    top5 = table[[c for c in ("top5", "test_top5") if c in table.columns]].to_numpy(dtype=float).ravel()
    top5 = top5[~np.isnan(top5)]
    stds = table[[c for c in ("top5_std", "test_top5_std") if c in table.columns]].to_numpy(dtype=float).ravel()
    return bool(len(top5)) and bool((top5 == 100.0).all()) and bool(np.nan_to_num(stds).max(initial=0.0) == 0.0)
