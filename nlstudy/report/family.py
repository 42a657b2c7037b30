"""One family of comparisons per report: Holm's adjustment and the verdicts.

The family of the correction is every distinct comparison of one ``nlstudy report`` call (``scope="report"``):
a comparison that several tables show on the same runs (the 1-block model against the baseline is in 2a,
2b, 2c and the locality control) counts once, by its ``comparison`` id (:func:`nlstudy.report.comparisons.
compare_rows`). ``scope="table"`` corrects each table on its own instead. Each comparison's p-values are
divided by its ``alpha_share`` (1 unless seeds were added until decided: :mod:`nlstudy.report.stats`) before
the adjustment, then

    p_holm  = Holm(p / alpha_share)       over the family
    p_equiv = Holm(p_tost / alpha_share)  over the same family
    verdict = better / worse (p_holm < alpha), equivalent (p_equiv < alpha), undecided

A comparison without a test (fewer than two seeds on a side) is undecided and not in the family's size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from nlstudy.report import stats

SCOPES = ("report", "table")


def apply(tables: Mapping[str, pd.DataFrame], scope: str = "report") -> dict[str, pd.DataFrame]:
    """`tables` (built by :func:`nlstudy.report.tables.build_table`'s first step, with their raw comparisons)
    with ``p_holm``, ``p_equiv`` and ``verdict`` filled in over the family `scope` names, and each table's
    ``attrs["family"]``: {"scope", "size", "tables"} (the number of distinct tested comparisons; for
    scope "report", how many tables they came from)."""
    if scope not in SCOPES:
        raise ValueError(f"family: unknown scope {scope!r}; valid choices: {', '.join(map(repr, SCOPES))}")
    groups = [dict(tables)] if scope == "report" else [{k: v} for k, v in tables.items()]
    out: dict[str, pd.DataFrame] = {}
    for members in groups:
        adjusted, size = _adjust(members)
        for table_id, table in members.items():
            table = table.copy()
            p_holm, p_equiv = zip(*(adjusted.get(c, (math.nan, math.nan)) for c in table["comparison"])) \
                if len(table) else ((), ())
            table["p_holm"] = np.asarray(p_holm, dtype=float)
            table["p_equiv"] = np.asarray(p_equiv, dtype=float)
            table["verdict"] = [_verdict(row) for row in table.to_dict("records")]
            table.attrs["family"] = {"scope": scope, "size": size, "tables": len(members)}
            out[table_id] = table
    return {t: out[t] for t in tables}


def _adjust(members: Mapping[str, pd.DataFrame]) -> tuple[dict[str, tuple[float, float]], int]:
    """comparison id -> (p_holm, p_equiv) over the distinct comparisons of `members`, and the family's size."""
    distinct: dict[str, tuple[float, float]] = {}
    for table in members.values():
        for c, p, p_tost, share in zip(table["comparison"], table["p"], table["p_tost"], table["alpha_share"]):
            if c is None or (isinstance(c, float) and math.isnan(c)) or c in distinct:
                continue
            distinct[c] = (float(np.minimum(1.0, p / share)), float(np.minimum(1.0, p_tost / share)))  # NaN stays NaN
    ids = list(distinct)
    p_holm = stats.holm([distinct[c][0] for c in ids])
    p_equiv = stats.holm([distinct[c][1] for c in ids])
    size = int(np.sum(~np.isnan([distinct[c][0] for c in ids])))
    return {c: (float(h), float(e)) for c, h, e in zip(ids, p_holm, p_equiv)}, size


def _verdict(row: dict) -> str:
    """The row's verdict ("" for a baseline row and for a row with nothing to compare with)."""
    if row["baseline"] or row["comparison"] is None:
        return ""
    return stats.verdict(row["delta"], row["p_holm"], row["p_equiv"])
