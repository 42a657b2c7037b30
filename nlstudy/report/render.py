"""Render a table frame (from :func:`nlstudy.report.tables.build_table`) as Markdown, LaTeX or CSV.

:func:`display_frame` turns the numbers into paper-style cells (``72.7 ± 0.3``, ``+33.6 [+12.0, +55.2]``,
``0.012``, ``better``, ``x1.20``, ``3 (1 failed)``); the Markdown and LaTeX renderers lay those cells out
with the table's footnotes (what the numbers are, the family and its size, α and the margin); CSV keeps the
numbers under the column names of :func:`nlstudy.report.tables.build_table` (``delta``, ``delta_ci_low``,
``delta_ci_high``, ``p``, ``p_holm``, ``p_equiv``, ``margin``, ``mde``, ``verdict``, ...), and
:func:`runs_csv` the per-run values behind them. A row without a counted run shows its status (failed,
running, unscored, missing) in the metric cells.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from nlstudy import keys
from nlstudy.report.comparisons import column
from nlstudy.report.stats import trivial_top5
from nlstudy.report.text import ANY, footnotes, metric_name, show, short

MD, TEX = "md", "tex"
_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_TEX_SYMBOLS = {"±": r"$\pm$", "Δ": r"$\Delta$", "α": r"$\alpha$", "≥": r"$\geq$", "—": "---", "×": r"$\times$",
                "<": r"$<$", ">": r"$>$"}  # text-mode < and > print as ¡ and ¿ in LaTeX's default font


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _acc(mean: Any, std: Any) -> str:
    if not _num(mean):
        return ""
    return f"{mean:.1f} ± {std:.1f}" if _num(std) else f"{mean:.1f}"


def _count(row: dict) -> str:
    extra = [f"{row[k]} {word}" for k, word in
             (("n_failed", "failed"), ("n_running", "running"), ("n_unscored", "unscored"),
              ("n_missing", "missing")) if row.get(k)]
    if row["n_dup"]:
        extra.append(f"+{row['n_dup']} dup")
    return f"{row['n']} ({', '.join(extra)})" if extra else str(row["n"])


def _paper(row: dict, depth: Any) -> str:
    if not _num(row.get("paper_top1")):
        return ""
    cell = f"{row['paper_top1']:.1f} / {row['paper_top5']:.1f}"
    if _num(row.get("paper_depth")) and (not _num(depth) or int(depth) != int(row["paper_depth"])):
        cell += f" (R{int(row['paper_depth'])})"
    return cell


def _compared(row: dict) -> bool:
    """Does the row have a comparison with a result to show (a baseline in its group and a value)?"""
    return not row["baseline"] and row.get("comparison") is not None and _num(row["delta"])


def delta_cell(row: dict) -> str:
    """"+33.6 [+12.0, +55.2]": Δ with its 95 % interval (just Δ when a side has one seed)."""
    if row["baseline"]:
        return "—"
    if not _compared(row):
        return ""
    if not _num(row["delta_ci_low"]):
        return f"{row['delta']:+.1f}"
    return f"{row['delta']:+.1f} [{row['delta_ci_low']:+.1f}, {row['delta_ci_high']:+.1f}]"


def p_cell(row: dict, column: str = "p") -> str:
    """A p-value cell: "—" for the baseline, blank without a Δ, "n<2" when a side has fewer than two seeds."""
    if row["baseline"]:
        return "—"
    if not _compared(row):
        return ""
    p = row[column]
    if not _num(p):
        return "n<2"
    if row["p_exact"]:
        return f"{p:.0f} (exact)"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _mde(row: dict) -> str:
    if row["baseline"]:
        return "—"
    return f"{row['mde']:.1f}" if _compared(row) and _num(row["mde"]) else ""


def display_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The table as strings, one column per displayed quantity, paper style."""
    group_cols = table.attrs.get("varying_group_keys", [])
    settings = table.attrs.get("settings", {})
    metric = settings.get("metric", "")
    secondary = [m for m in settings.get("secondary", ()) if column(m) in table.columns]
    with_baseline = bool(table["baseline"].any())
    out = []
    for row in table.to_dict("records"):
        cells: dict[str, str] = {short(k): show(row[k]) for k in group_cols}
        cells["model"] = row["label"]
        status = None if row["n"] else row["status"]
        cells[metric_name(metric)] = status or _acc(row["mean"], row["std"])
        if with_baseline:
            cells["Δ [95% CI]"] = delta_cell(row)
            cells["p"] = p_cell(row)
            cells["p Holm"] = p_cell(row, "p_holm")
            cells["p equiv"] = p_cell(row, "p_equiv")
            cells["MDE"] = _mde(row)
            cells["verdict"] = "—" if row["baseline"] else row["verdict"]
        for m in secondary:
            cells[metric_name(m)] = status or _acc(row[column(m)], row[f"{column(m)}_std"])
        cells["params"] = f"×{row['params_rel']:.2f}" if _num(row["params_rel"]) else ""
        cells["FLOPs"] = f"×{row['flops_rel']:.2f}" if _num(row["flops_rel"]) else ""
        cells["n"] = _count(row)
        if table["paper_top1"].notna().any():
            cells["paper"] = _paper(row, row.get("model.backbone.depth"))
        out.append(cells)
    frame = pd.DataFrame.from_records(out)
    if len(frame) and trivial_top5(table):
        frame = frame.drop(columns=[metric_name(m) for m in (keys.TEST_TOP5, keys.VAL_TOP5_BEST)
                                    if metric_name(m) in frame.columns and m != metric])
    frame.attrs.update(table.attrs)
    frame.attrs["group_starts"] = _group_starts(table)
    return frame


def _group_starts(table: pd.DataFrame) -> list[int]:
    keys_ = table.attrs.get("group_keys", [])
    starts, last = [], object()
    for i, row in enumerate(table[keys_].itertuples(index=False) if keys_ else []):
        if tuple(row) != last:
            starts.append(i)
            last = tuple(row)
    return starts


def to_markdown(table: pd.DataFrame) -> str:
    """A Markdown section: heading, pipe table, footnotes."""
    shown = display_frame(table)
    title = table.attrs.get("title", table.attrs.get("table_id", "table"))
    lines = [f"### {title}", ""]
    if len(shown):
        cols = list(shown.columns)
        left = {"model", *(short(k) for k in table.attrs.get("varying_group_keys", []))}
        numeric = {c for c in cols if c not in left}
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "|".join("---:" if c in numeric else ":---" for c in cols) + "|")
        for row in shown.itertuples(index=False):
            lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |")
    else:
        lines.append("_no runs_")
    lines.append("")
    lines.extend(f"- {note}" for note in footnotes(table))
    return "\n".join(lines) + "\n"


def tex_escape(text: str) -> str:
    text = "".join(_TEX_SPECIAL.get(ch, ch) for ch in str(text))
    for symbol, tex in _TEX_SYMBOLS.items():
        text = text.replace(symbol, tex)
    return re.sub(r"`([^`]*)`", r"\\texttt{\1}", text)


def to_latex(table: pd.DataFrame) -> str:
    """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``), footnotes below the rule."""
    shown = display_frame(table)
    cols = list(shown.columns)
    left = {"model", *(short(k) for k in table.attrs.get("varying_group_keys", []))}
    spec = "".join("l" if c in left else "r" for c in cols) or "l"
    title = table.attrs.get("title", table.attrs.get("table_id", "table"))
    lines = [f"% {tex_escape(title)}", "% generated by nlstudy report", f"\\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(tex_escape(c) for c in cols) + r" \\", r"\midrule"]
    starts = set(shown.attrs.get("group_starts", []))
    for i, row in enumerate(shown.itertuples(index=False)):
        if i in starts and i:
            lines.append(r"\midrule")
        lines.append(" & ".join(tex_escape(v) for v in row) + r" \\")
    lines.append(r"\bottomrule")
    for note in footnotes(table):
        lines.append(f"\\multicolumn{{{len(cols) or 1}}}{{p{{0.95\\linewidth}}}}{{\\footnotesize {tex_escape(note)}}} \\\\")
    lines.append(r"\end{tabular}")
    return "\n".join(lines) + "\n"


def to_csv(table: pd.DataFrame, path: str | os.PathLike | None = None) -> str:
    """The numbers (not the formatted cells), one row per (group, variant); wildcards left blank."""
    frame = table.map(lambda v: None if isinstance(v, str) and v == ANY else v)
    text = frame.to_csv(index=False)
    if path is not None:
        Path(path).write_text(text)
    return text


def runs_csv(lines: pd.DataFrame) -> str:
    """The per-run lines behind a table (:func:`nlstudy.report.tables.seeds`) as CSV: ``<id>_runs.csv``."""
    return lines.map(lambda v: None if isinstance(v, str) and v == ANY else v).to_csv(index=False)
