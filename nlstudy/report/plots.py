"""Figures for one ablation table: accuracy vs FLOPs, bars with error bars, validation curves.

Built with matplotlib's object API (``matplotlib.figure.Figure``, rendered by the Agg canvas): no
pyplot, so no global backend is touched and nothing needs a display. Each ``plot_*`` returns the
Figure; :func:`save` writes it as PNG and PDF (PDF without a creation date, so re-running the
report on the same runs gives the same files).

Order and colour follow the table's row order (:func:`nlstudy.report.tables.table_rows`: each
group's baseline first, then the rows sorted by value), never the order in which runs finished or
their ids, so a row keeps its place and colour from one report to the next.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from nlstudy import keys
from nlstudy.report import tables
from nlstudy.report.stats import ALPHA, SIG_MARK
from nlstudy.report.text import group_text

FORMATS = ("png", "pdf")


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _fit(title: str, width: float, fontsize: float = 9) -> str:
    """`title` wrapped to `width` inches, so that a long one is not cut off at the figure's edges."""
    chars = max(20, int(width * 72 / (0.52 * fontsize)))  # a character is about half an em wide
    return "\n".join(textwrap.fill(line, chars) for line in title.split("\n"))


def save(fig: Figure, stem: str | os.PathLike) -> list[Path]:
    """Write `fig` as ``<stem>.png`` and ``<stem>.pdf``; returns the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in FORMATS:
        path = stem.with_name(f"{stem.name}.{fmt}")
        metadata = {"CreationDate": None} if fmt == "pdf" else {"Software": None}
        fig.savefig(path, dpi=120, metadata=metadata)
        paths.append(path)
    return paths


def _group_name(table: pd.DataFrame, row: dict) -> str:
    return group_text(table.attrs.get("varying_group_keys", []), row) or "all runs"


def _groups(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    names = [_group_name(table, r) for r in table.to_dict("records")]
    framed = table.assign(_group_name=names)
    return [(name, framed[framed["_group_name"] == name]) for name in dict.fromkeys(names)]


def plot_accuracy_vs_flops(table: pd.DataFrame) -> Figure | None:
    """Top-1 (mean ± std over seeds) vs FLOPs per clip, one colour per group, the baseline a star.
    None when no row has both a result and a FLOP count."""
    usable = table[table["top1"].notna() & table["flops"].notna()]
    if usable.empty:
        return None
    scale, unit = (1e9, "GFLOPs") if usable["flops"].max() >= 1e9 else (1e6, "MFLOPs")
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot()
    for name, group in _groups(usable):
        x = group["flops"].to_numpy(float) / scale
        y = group["top1"].to_numpy(float)
        err = np.nan_to_num(group["top1_std"].to_numpy(float))
        line = ax.errorbar(x, y, yerr=err, fmt="o", capsize=3, label=name)
        base = group["baseline"].to_numpy(bool)
        if base.any():
            ax.plot(x[base], y[base], marker="*", markersize=16, linestyle="none",
                    color=line[0].get_color(), markeredgecolor="black", label=f"{name}: baseline")
        for xi, yi, label in zip(x, y, group["label"]):
            ax.annotate(label, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.margins(x=0.25, y=0.1)  # room for the labels
    ax.set_xlabel(f"{unit} per clip")
    ax.ticklabel_format(axis="x", useOffset=False, style="plain")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(_fit(table.attrs.get("title", ""), 0.8 * fig.get_figwidth()), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def plot_bars(table: pd.DataFrame) -> Figure | None:
    """Top-1 per variant (mean, std error bars), one panel per group, the baseline bar hatched."""
    if table["top1"].notna().sum() == 0:
        return None
    groups = _groups(table)
    fig = _figure(max(4.0, 1.1 * len(table) + 1.5), 3.8)
    axes = fig.subplots(1, len(groups), sharey=True, squeeze=False)[0]
    for ax, (name, group) in zip(axes, groups):
        pos = np.arange(len(group))
        heights = np.nan_to_num(group["top1"].to_numpy(float))
        err = np.nan_to_num(group["top1_std"].to_numpy(float))
        bars = ax.bar(pos, heights, yerr=err, capsize=4, color="tab:blue")
        for bar, top, is_base, n, status, sig in zip(bars, heights + err, group["baseline"], group["n"],
                                                      group["status"], group["sig"]):
            middle = bar.get_x() + bar.get_width() / 2
            if is_base:
                bar.set_facecolor("tab:gray")
                bar.set_edgecolor("black")
                bar.set_hatch("//")
            if n == 0:
                ax.annotate(status, (middle, 0), ha="center", va="bottom",
                            fontsize=7, rotation=90, xytext=(0, 3), textcoords="offset points")
            if sig:  # the table's marker: p < ALPHA against the group's baseline
                ax.annotate(SIG_MARK, (middle, top), ha="center", va="bottom", fontsize=10,
                            xytext=(0, 1), textcoords="offset points")
        ax.set_xticks(pos, list(group["label"]), rotation=30, ha="right", fontsize=7)
        ax.set_title(name, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("top-1 (%)")
    axes[0].margins(y=0.08)  # room for the markers
    title = table.attrs.get("title", "")
    if table["sig"].any():
        title += f"\n{SIG_MARK} p < {ALPHA:g} vs the baseline (Welch's t-test over seeds)"
    fig.suptitle(_fit(title, fig.get_figwidth()), fontsize=9)
    return fig


def plot_against(table: pd.DataFrame, key: str, xlabel: str, *, log2: bool = False) -> Figure | None:
    """Top-1 (mean ± std over seeds) against a numeric group key (a distance, a training-set size), one
    line per row label in the table's order. None when no row has a result."""
    usable = table[table["top1"].notna()]
    if usable.empty:
        return None
    fig = _figure(5.5, 3.2)
    ax = fig.subplots()
    for position, (label, rows) in enumerate(usable.groupby("label", sort=False)):
        rows = rows.sort_values(key)
        ax.errorbar(rows[key], rows["top1"], yerr=rows["top1_std"].fillna(0), marker="o", capsize=3,
                    label=label, color=f"C{position % 10}")
    if log2:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("best val top-1 (%)")
    ax.legend(fontsize=8)
    return fig


def plot_curves(
    assigned: pd.DataFrame,
    history: pd.DataFrame,
    *,
    metric: str = keys.VAL_TOP1,
    title: str = "",
) -> Figure | None:
    """Validation `metric` per epoch for each variant (mean over its finished runs, ±std band),
    one panel per group. `assigned` is :func:`nlstudy.report.tables.assign_rows`' output; the
    numbers are :func:`nlstudy.report.tables.curves`'. A label keeps one colour in every panel,
    given by its first place in the table (the baseline's is the first colour)."""
    data = tables.curves(history, assigned, metric=metric)
    if data.empty:
        return None
    x_col = data.attrs["x"]
    group_keys = assigned.attrs.get("group_keys", [])
    varying = _varying(assigned, group_keys)
    layout = tables.table_rows(assigned)
    colour = {label: f"C{i % 10}" for i, label in enumerate(dict.fromkeys(layout["label"]))}
    groups = list(dict.fromkeys(data["group"]))
    fig = _figure(max(5.0, 4.2 * len(groups)), 3.6)
    axes = fig.subplots(1, len(groups), sharey=True, squeeze=False)[0]
    for ax, group in zip(axes, groups):
        mine = data[[g == group for g in data["group"]]]
        for _, line_data in mine.groupby("position", sort=True):
            label = line_data["label"].iloc[0]
            x = line_data[x_col].to_numpy(float)
            mean = line_data["mean"].to_numpy(float)
            std = np.nan_to_num(line_data["std"].to_numpy(float))
            style = "--" if line_data["baseline"].iloc[0] else "-"
            ax.plot(x, mean, style, color=colour[label], label=label)
            ax.fill_between(x, mean - std, mean + std, color=colour[label], alpha=0.15)
        name = group_text([k for k in group_keys if k in varying], dict(zip(group_keys, group)))
        ax.set_title(name or "all runs", fontsize=8)
        ax.set_xlabel(x_col)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel(metric)
    fig.suptitle(_fit(title, fig.get_figwidth()), fontsize=9)
    return fig


def _varying(assigned: pd.DataFrame, group_keys: Sequence[str]) -> set[str]:
    out = set()
    for i, key in enumerate(group_keys):
        if len({g[i] for g in assigned["group"]}) > 1:
            out.add(key)
    return out
