"""A notebook's own comparisons, decided as the report decides its tables: per-seed values of a measure on two
sides, Welch's interval of the difference, Holm over the notebook's family, TOST against a margin, a verdict.

    measured_family(rows, margin)   one row per comparison (name, a values, b values): n_a, n_b, mean_a, mean_b,
                                    delta, delta_ci_low, delta_ci_high, p, p_holm, p_equiv, margin, mde, verdict,
                                    under the report's column names, so `nlstudy.report.findings.claim` and
                                    `verdict_text` phrase them; attrs["family"] = {"scope": "table", "size": k}
    sentence(family, name)          "<name>: +0.21 [+0.10, +0.32], better after Holm over 4 comparisons of this table"

A measure that is not top-1 (a share of attention, a query dependence, an ERF side in pixels) has its own margin:
pass one in its units. The statistics are nlstudy.report.stats's (compare, family_verdicts), no other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from nlstudy.report import findings, stats

COLUMNS = ["comparison", "n_a", "n_b", "mean_a", "mean_b", "delta", "delta_ci_low", "delta_ci_high", "p", "p_holm",
           "p_equiv", "margin", "mde", "verdict", "baseline"]


def measured_family(rows: Sequence[tuple[str, Sequence[float], Sequence[float]]], *, margin: float) -> pd.DataFrame:
    """Each (name, a, b): the values of side `a` (one per seed) against side `b`; NaN values are dropped. Holm and
    TOST over the rows that have two values a side (the others are undecided, outside the family's size)."""
    records, tests = [], []
    for name, a, b in rows:
        a_, b_ = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        a_, b_ = a_[np.isfinite(a_)], b_[np.isfinite(b_)]
        c = stats.compare(a_, b_, margin=margin)
        records.append({"comparison": name, "n_a": len(a_), "n_b": len(b_),
                        "mean_a": float(a_.mean()) if len(a_) else math.nan,
                        "mean_b": float(b_.mean()) if len(b_) else math.nan, "delta": c.delta,
                        "delta_ci_low": c.ci_low, "delta_ci_high": c.ci_high, "p": c.p, "margin": margin,
                        "mde": c.mde, "baseline": False})
        tests.append((c.delta, c.p, c.p_tost))
    frame = pd.DataFrame(records, columns=[c for c in COLUMNS if c not in ("p_holm", "p_equiv", "verdict")])
    if tests:
        deltas, p, p_tost = (np.asarray(v, dtype=float) for v in zip(*tests))
        p_holm, p_equiv, verdicts = stats.family_verdicts(deltas, p, p_tost, np.ones(len(p)))
    else:
        p_holm = p_equiv = np.zeros(0)
        verdicts = []
    frame["p_holm"], frame["p_equiv"], frame["verdict"] = p_holm, p_equiv, verdicts
    frame = frame[COLUMNS]
    frame.attrs["family"] = {"scope": "table", "size": int(np.isfinite(frame["p"]).sum())}
    return frame


def effect(record: dict, digits: int = 1) -> str:
    """"+0.213 [+0.101, +0.325]" (digits=3): a difference with its 95 % interval (alone when a side has one value)."""
    if not np.isfinite(record.get("delta_ci_low", math.nan)):
        return f"{record['delta']:+.{digits}f}"
    return f"{record['delta']:+.{digits}f} [{record['delta_ci_low']:+.{digits}f}, {record['delta_ci_high']:+.{digits}f}]"


def sentence(family: pd.DataFrame, name: str, digits: int = 1) -> str:
    """The claim of comparison `name`: its difference with the interval (to `digits` decimals: a share or a cosine
    distance wants more than a top-1) and the verdict after Holm."""
    row = family[family["comparison"] == name]
    if row.empty:
        raise ValueError(f"no comparison {name!r}; the family holds {family['comparison'].tolist()}")
    record = row.iloc[0].to_dict()
    return f"{name}: {effect(record, digits)}, {findings.verdict_text(family, record)}"
