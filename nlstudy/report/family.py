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
    with ``p_holm``, ``p_equiv`` and ``verdict`` filled in over the family `scope` names, each comparison
    named by the first table and row that shows it (``comparison``: "2a: NL C2D 1-block embedded_gaussian",
    with the group where the table has several), and each table's ``attrs["family"]``: {"scope", "size",
    "tables"} (the number of distinct tested comparisons; for scope "report", how many tables they came from)."""
    if scope not in SCOPES:
        raise ValueError(f"family: unknown scope {scope!r}; valid choices: {', '.join(map(repr, SCOPES))}")
    groups = [dict(tables)] if scope == "report" else [{k: v} for k, v in tables.items()]
    out: dict[str, pd.DataFrame] = {}
    for members in groups:
        adjusted, size = _adjust(members)
        names = _names(members)
        for table_id, table in members.items():
            table = table.copy()
            p_holm, p_equiv = zip(*(adjusted.get(c, (math.nan, math.nan)) for c in table["comparison"])) \
                if len(table) else ((), ())
            table["p_holm"] = np.asarray(p_holm, dtype=float)
            table["p_equiv"] = np.asarray(p_equiv, dtype=float)
            table["verdict"] = [_verdict(row) for row in table.to_dict("records")]
            table["comparison"] = [names.get(c) for c in table["comparison"]]
            table.attrs["family"] = {"scope": scope, "size": size, "tables": len(members)}
            out[table_id] = table
    return {t: out[t] for t in tables}


def _adjust(members: Mapping[str, pd.DataFrame]) -> tuple[dict[str, tuple[float, float]], int]:
    """comparison id -> (p_holm, p_equiv) over the distinct comparisons of `members`, and the family's size."""
    distinct: dict[str, tuple[float, float, float, float]] = {}
    for table in members.values():
        for c, d, p, p_tost, share in zip(table["comparison"], table["delta"], table["p"], table["p_tost"],
                                          table["alpha_share"]):
            if isinstance(c, str) and c not in distinct:
                distinct[c] = (d, p, p_tost, share)
    ids = list(distinct)
    columns = [[distinct[c][i] for c in ids] for i in range(4)]
    p_holm, p_equiv, _ = stats.family_verdicts(*columns)
    size = int(np.sum(~np.isnan(np.asarray(columns[1], dtype=float))))
    return {c: (float(h), float(e)) for c, h, e in zip(ids, p_holm, p_equiv)}, size


def _names(members: Mapping[str, pd.DataFrame]) -> dict[str, str]:
    """comparison identity -> "<table>: <row label>[ (<group>)]" of the first table and row showing it."""
    names: dict[str, str] = {}
    for table_id, table in members.items():
        several = table["group"].nunique() > 1
        for c, label, group in zip(table["comparison"], table["label"], table["group"]):
            if isinstance(c, str) and c not in names:
                names[c] = f"{table_id}: {label}" + (f" ({group})" if several else "")
    return names


def _verdict(row: dict) -> str:
    """The row's verdict ("" for a baseline row and for a row with nothing to compare with)."""
    if row["baseline"] or row["comparison"] is None:
        return ""
    return stats.verdict(row["delta"], row["p_holm"], row["p_equiv"])
