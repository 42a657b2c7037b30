"""Sentences computed from a table frame (`tables.build_table`), for the notebooks' conclusions: every
number in them is read from the table, so the text cannot contradict what the table shows."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from nlstudy.report.stats import ALPHA
from nlstudy.report.text import group_text


def _group_text(table: pd.DataFrame, row: dict[str, Any]) -> str:
    return group_text(table.attrs.get("varying_group_keys", []), row)


def _p_text(row: dict[str, Any]) -> str:
    p = row.get("p_top1")
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "not tested: fewer than two seeds on a side"
    verdict = "significant" if p < ALPHA else "not significant"
    exact = ", every seed gave the same value on both sides, compared exactly" if row.get("p_exact") else ""
    return f"p = {p:.3g}, {verdict} at {ALPHA}{exact}"


def row_findings(table: pd.DataFrame) -> list[str]:
    """One sentence per non-baseline row that has a result: its top-1, the difference from its group's
    baseline and Welch's test. Rows without a baseline or without a finished run are said to be so."""
    lines = []
    for row in table.to_dict("records"):
        if row.get("baseline"):
            continue
        where = _group_text(table, row)
        head = f"{row['label']}" + (f" ({where})" if where else "")
        if row.get("n", 0) == 0:
            lines.append(f"{head}: no finished run ({row.get('status')}).")
            continue
        delta = row.get("delta_top1")
        if delta is None or math.isnan(delta):
            lines.append(f"{head}: top-1 {row['top1']:.1f} % (n={row['n']}); no baseline to compare with.")
            continue
        lines.append(f"{head}: top-1 {row['top1']:.1f} % (n={row['n']}), {delta:+.1f} points against its "
                     f"baseline ({_p_text(row)}).")
    return lines


def significant_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The non-baseline rows whose top-1 differs from their baseline's at p < ALPHA."""
    if "sig" not in table.columns:
        return table.iloc[0:0]
    return table[~table["baseline"].astype(bool) & table["sig"].astype(bool)]


def table_summary(table: pd.DataFrame) -> str:
    """One sentence over a whole table: how many rows beat or trail their baseline significantly."""
    title = table.attrs.get("title", table.attrs.get("table_id", "table"))
    compared = table[~table["baseline"].astype(bool) & table["delta_top1"].notna()]
    sig = significant_rows(table)
    better = sig[sig["delta_top1"] > 0]
    worse = sig[sig["delta_top1"] < 0]
    if compared.empty:
        return f"{title}: no row to compare with a baseline."
    parts = [f"{title}: {len(compared)} row(s) compared with their baseline; {len(better)} better and "
             f"{len(worse)} worse at p < {ALPHA}"]
    if len(better):
        best = better.sort_values("delta_top1", ascending=False, kind="stable").iloc[0]
        where = _group_text(table, best.to_dict())
        parts.append(f"the largest gain is {best['label']}{f' ({where})' if where else ''}, "
                     f"{best['delta_top1']:+.1f} points")
    return "; ".join(parts) + "."
