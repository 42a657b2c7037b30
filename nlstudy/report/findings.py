"""Sentences computed from a table frame (`tables.build_table`), for the notebooks' conclusions and the
README's answers: every number in them is read from the table, and every claim from its ``verdict`` and
the interval of its Δ (never from an uncorrected p), so the text cannot say more than the table shows.
"No difference" is said only of a row whose verdict is ``equivalent``."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from nlstudy.report import stats
from nlstudy.report.text import group_text, metric_name


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _group_text(table: pd.DataFrame, row: dict[str, Any]) -> str:
    return group_text(table.attrs.get("varying_group_keys", []), row)


def family_text(table: pd.DataFrame) -> str:
    """"after Holm over 16 comparisons" (of this report), or "... of this table"."""
    fam = table.attrs.get("family", {"scope": "table", "size": 0})
    where = "" if fam["scope"] == "report" else " of this table"
    return f"after Holm over {fam['size']} comparison{'s' * (fam['size'] != 1)}{where}"


def effect(row: dict[str, Any]) -> str:
    """"+33.6 [+12.0, +55.2]": Δ with its 95 % interval (Δ alone when a side has one seed)."""
    if not _num(row.get("delta_ci_low")):
        return f"{row['delta']:+.1f}"
    return f"{row['delta']:+.1f} [{row['delta_ci_low']:+.1f}, {row['delta_ci_high']:+.1f}]"


def verdict_text(table: pd.DataFrame, row: dict[str, Any]) -> str:
    """What a row's verdict says, with the number behind it: "better after Holm over 16 comparisons (p Holm
    = 0.004)", "equivalent within ±2 points (p equiv = 0.01, after Holm over 16 comparisons)", "undecided:
    ...". A row that could not be tested says why."""
    fam = family_text(table)
    margin = row.get("margin", stats.MARGIN)
    if row["verdict"] in ("better", "worse"):
        return f"{row['verdict']} {fam} (p Holm = {row['p_holm']:.2g})"
    if row["verdict"] == "equivalent":
        return f"equivalent within ±{margin:g} points (p equiv = {row['p_equiv']:.2g}, {fam})"
    if not _num(row.get("p")):
        return "undecided: fewer than two seeds on a side, not tested"
    mde = f"; the seeds detect |Δ| ≥ {row['mde']:.1f} with 80 % power" if _num(row.get("mde")) else ""
    return (f"undecided {fam}: neither a difference (p Holm = {row['p_holm']:.2g}) nor equivalence within "
            f"±{margin:g} (p equiv = {row['p_equiv']:.2g}) is shown{mde}")


def claim(table: pd.DataFrame, row: dict[str, Any]) -> str:
    """The short form for a table cell or a README answer: "+33.6 [+12.0, +55.2], better after Holm over 16
    comparisons", "-2.4 [-13.1, +8.3], undecided", "+0.3 [-1.0, +1.6], equivalent within ±2"."""
    if row.get("baseline") or not _num(row.get("delta")):
        return ""
    verdict = row["verdict"]
    if verdict in ("better", "worse"):
        return f"{effect(row)}, {verdict} {family_text(table)}"
    if verdict == "equivalent":
        return f"{effect(row)}, equivalent within ±{row.get('margin', stats.MARGIN):g}"
    return f"{effect(row)}, undecided"


def row_findings(table: pd.DataFrame) -> list[str]:
    """One sentence per non-baseline row: its metric, Δ with its interval against its group's baseline, and
    its verdict. Rows without a baseline or without a counted run are said to be so."""
    metric = table.attrs.get("settings", {}).get("metric", "")
    name = metric_name(metric)
    lines = []
    for row in table.to_dict("records"):
        if row.get("baseline"):
            continue
        where = _group_text(table, row)
        head = f"{row['label']}" + (f" ({where})" if where else "")
        if row.get("n", 0) == 0:
            lines.append(f"{head}: no counted run ({row.get('status')}).")
            continue
        if row.get("comparison") is None or not _num(row.get("delta")):
            lines.append(f"{head}: {name} {row['mean']:.1f} (n={row['n']}); no baseline to compare with.")
            continue
        lines.append(f"{head}: {name} {row['mean']:.1f} (n={row['n']}), Δ {effect(row)} points against its "
                     f"baseline: {verdict_text(table, row)}.")
    return lines


def decided(table: pd.DataFrame, verdict: str) -> pd.DataFrame:
    """The non-baseline rows whose verdict is `verdict`."""
    if "verdict" not in table.columns:
        return table.iloc[0:0]
    return table[~table["baseline"].astype(bool) & (table["verdict"] == verdict)]


def table_summary(table: pd.DataFrame) -> str:
    """One sentence over a whole table: how many rows are better, worse, equivalent and undecided, and the
    largest gain among the rows shown better."""
    title = table.attrs.get("title", table.attrs.get("table_id", "table"))
    compared = table[~table["baseline"].astype(bool) & table["comparison"].notna()] if len(table) else table
    if compared.empty:
        return f"{title}: no row to compare with a baseline."
    counts = {v: len(decided(table, v)) for v in stats.VERDICTS}
    parts = [f"{title}: {len(compared)} row(s) compared with their baseline {family_text(table)} "
             f"(α = {stats.ALPHA:g}): " + ", ".join(f"{counts[v]} {v}" for v in stats.VERDICTS)]
    better = decided(table, "better")
    if len(better):
        best = better.sort_values("delta", ascending=False, kind="stable").iloc[0].to_dict()
        where = _group_text(table, best)
        parts.append(f"the largest gain shown is {best['label']}{f' ({where})' if where else ''}, "
                     f"{effect(best)} points")
    if counts["undecided"]:
        parts.append("an undecided row needs more seeds (nlstudy sweep --until-decided) before anything "
                     "is said of it")
    return "; ".join(parts) + "."
