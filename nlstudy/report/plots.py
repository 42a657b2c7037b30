"""Figures for one ablation table: accuracy vs FLOPs, bars with error bars, validation curves.

Built with matplotlib's object API (``matplotlib.figure.Figure``, rendered by the Agg canvas): no
pyplot, so no global backend is touched and nothing needs a display. Each ``plot_*`` returns the
Figure; :func:`save` writes it as PNG and PDF (PDF without a creation date, so re-running the
report on the same runs gives the same files).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from nlstudy import keys
from nlstudy.report.tables import show, short

FORMATS = ("png", "pdf")


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


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
    varying = table.attrs.get("varying_group_keys", [])
    return ", ".join(f"{short(k)}={show(row[k])}" for k in varying) or "all runs"


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
    ax.set_title(table.attrs.get("title", ""), fontsize=9)
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
        for bar, is_base, n, status in zip(bars, group["baseline"], group["n"], group["status"]):
            if is_base:
                bar.set_facecolor("tab:gray")
                bar.set_edgecolor("black")
                bar.set_hatch("//")
            if n == 0:
                ax.annotate(status, (bar.get_x() + bar.get_width() / 2, 0), ha="center", va="bottom",
                            fontsize=7, rotation=90, xytext=(0, 3), textcoords="offset points")
        ax.set_xticks(pos, list(group["label"]), rotation=30, ha="right", fontsize=7)
        ax.set_title(name, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("top-1 (%)")
    fig.suptitle(table.attrs.get("title", ""), fontsize=9)
    return fig


def plot_curves(
    assigned: pd.DataFrame,
    history: pd.DataFrame,
    *,
    metric: str = keys.VAL_TOP1,
    title: str = "",
) -> Figure | None:
    """Validation `metric` per epoch for each variant (mean over its finished runs, ±std band),
    one panel per group. `assigned` is :func:`nlstudy.report.tables.assign_rows`' output."""
    runs = assigned[assigned["run_id"].notna() & (assigned["state"] == "finished")]
    curves = history[(history["metric"] == metric) & history["run_id"].isin(set(runs["run_id"]))]
    if curves.empty:
        return None
    x_col = "epoch" if curves["epoch"].notna().all() else "step"
    varying = _varying(assigned, assigned.attrs.get("group_keys", []))
    group_names = [", ".join(f"{short(k)}={show(v)}" for k, v in zip(assigned.attrs.get("group_keys", []), g)
                           if k in varying) or "all runs" for g in runs["group"]]
    runs = runs.assign(_gname=group_names)
    names = list(dict.fromkeys(group_names))
    fig = _figure(max(5.0, 4.2 * len(names)), 3.6)
    axes = fig.subplots(1, len(names), sharey=True, squeeze=False)[0]
    for ax, name in zip(axes, names):
        mine = runs[runs["_gname"] == name]
        for label, members in mine.groupby("label", sort=False):
            data = curves[curves["run_id"].isin(set(members["run_id"]))]
            stats_ = data.groupby(x_col)["value"].agg(["mean", "std"]).reset_index()
            x = stats_[x_col].to_numpy(float)
            mean = stats_["mean"].to_numpy(float)
            std = np.nan_to_num(stats_["std"].to_numpy(float))
            style = "--" if members["baseline"].any() else "-"
            (line,) = ax.plot(x, mean, style, label=label)
            ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.15)
        ax.set_title(name, fontsize=8)
        ax.set_xlabel(x_col)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel(metric)
    fig.suptitle(title, fontsize=9)
    return fig


def _varying(assigned: pd.DataFrame, group_keys: Sequence[str]) -> set[str]:
    out = set()
    for i, key in enumerate(group_keys):
        if len({g[i] for g in assigned["group"]}) > 1:
            out.add(key)
    return out
