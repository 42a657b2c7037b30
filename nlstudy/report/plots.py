"""Figures for one ablation table: the metric vs FLOPs, per row (bars), against a numeric axis, and the
validation curves. Every figure shows each seed (a dot, or a thin curve), the mean with its 95 % t interval
over seeds (labelled so), n in the labels, the chance level where the task has one, and a % axis from 0 to
100: nothing above 100, no range hidden.

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

from scipy.stats import t as student_t

from nlstudy import files, keys
from nlstudy.report import comparisons, epochs, tables
from nlstudy.report.text import group_text, metric_name

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
        with files.replacing(path) as tmp:  # whole or not at all (a full disk leaves the old figure)
            fig.savefig(tmp, format=fmt, dpi=120, metadata=metadata)
        paths.append(path)
    return paths


def _groups(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(group name, its rows) in the table's order; the name is the table's ``group`` column ("all": one group)."""
    return [(name, table[table["group"] == name]) for name in dict.fromkeys(table["group"])]


def chance_level(table: pd.DataFrame) -> float | None:
    """The top-k accuracy (%) of guessing, for a table whose primary metric is a top-k accuracy and whose runs
    logged one number of classes (``derived.num_classes``); else None."""
    metric = table.attrs.get("settings", {}).get("metric", "")
    classes = table.attrs.get("num_classes")
    if not comparisons.is_percent(metric) or not classes:
        return None
    k = 5 if "top5" in metric else 1
    return min(100.0, 100.0 * k / classes)


def _metric_axis(ax, table: pd.DataFrame, axis: str = "y") -> None:
    """The metric's label and range: a % from 0 to 100 (nothing hidden, nothing above it), the chance level
    drawn where the task has one."""
    metric = table.attrs.get("settings", {}).get("metric", "")
    label = f"{metric_name(metric)} (%)" if comparisons.is_percent(metric) else metric_name(metric)
    (ax.set_ylabel if axis == "y" else ax.set_xlabel)(label)
    if comparisons.is_percent(metric):
        (ax.set_ylim if axis == "y" else ax.set_xlim)(0, 100)
    chance = chance_level(table)
    if chance is not None:
        line = ax.axhline if axis == "y" else ax.axvline
        line(chance, color="0.4", linestyle=":", linewidth=1, label=f"chance ({chance:g} %)")


def _seed_values(table: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
    """(group name, label) -> the counted per-seed values of the table's primary metric."""
    lines = tables.seeds(table)
    metric = table.attrs.get("settings", {}).get("metric")
    if lines.empty or metric not in lines:
        return {}
    lines = lines[lines["counted"].astype(bool)]
    return {(g, lab): pd.to_numeric(rows[metric], errors="coerce").to_numpy(float)
            for (g, lab), rows in lines.groupby(["group", "label"], sort=False)}


def _interval(group: pd.DataFrame) -> np.ndarray:
    """Error bars (2, n) from each row's mean to its 95 % t interval (zero where it has none)."""
    mean = group["mean"].to_numpy(float)
    low = np.where(np.isnan(group["ci_low"].to_numpy(float)), mean, group["ci_low"].to_numpy(float))
    high = np.where(np.isnan(group["ci_high"].to_numpy(float)), mean, group["ci_high"].to_numpy(float))
    return np.nan_to_num(np.vstack([mean - low, high - mean]))


def _jitter(n: int, width: float = 0.18) -> np.ndarray:
    """Fixed horizontal offsets for n seed dots (no randomness: the figure is the same every time)."""
    return np.zeros(n) if n < 2 else np.linspace(-width, width, n)


INTERVAL_LABEL = "mean, 95 % t interval over seeds"
SEED_LABEL = "one seed"


def plot_accuracy_vs_flops(table: pd.DataFrame) -> Figure | None:
    """The primary metric against FLOPs per clip: each seed a dot, each row's mean with its 95 % t interval,
    one colour per group, the baseline a star. None when no row has both a result and a FLOP count."""
    usable = table[table["mean"].notna() & table["flops"].notna()]
    if usable.empty:
        return None
    scale, unit = (1e9, "GFLOPs") if usable["flops"].max() >= 1e9 else (1e6, "MFLOPs")
    seeds = _seed_values(table)
    fig = _figure(6.4, 4.4)
    ax = fig.add_subplot()
    labelled = False
    for i, (name, group) in enumerate(_groups(usable)):
        colour = f"C{i % 10}"
        x = group["flops"].to_numpy(float) / scale
        y = group["mean"].to_numpy(float)
        for xi, label in zip(x, group["label"]):
            vals = seeds.get((name, label), np.array([]))
            ax.plot(np.full(len(vals), xi), vals, "o", color=colour, alpha=0.35, markersize=4,
                    label=None if labelled or not len(vals) else SEED_LABEL)
            labelled = labelled or bool(len(vals))
        ax.errorbar(x, y, yerr=_interval(group), fmt="D", capsize=3, color=colour,
                    label=f"{name}: {INTERVAL_LABEL}")
        base = group["baseline"].to_numpy(bool)
        if base.any():
            ax.plot(x[base], y[base], marker="*", markersize=15, linestyle="none", color=colour,
                    markeredgecolor="black", label=f"{name}: baseline")
        for xi, yi, label, n in zip(x, y, group["label"], group["n"]):
            ax.annotate(f"{label} (n={n})", (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.margins(x=0.25)  # room for the labels
    ax.set_xlabel(f"{unit} per clip")
    ax.ticklabel_format(axis="x", useOffset=False, style="plain")
    _metric_axis(ax, table)
    ax.set_title(_fit(table.attrs.get("title", ""), 0.8 * fig.get_figwidth()), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def plot_bars(table: pd.DataFrame) -> Figure | None:
    """The primary metric per row, one panel per group: each seed a dot, the mean as a bar from 0 with its
    95 % t interval, n and the verdict under each label, the chance level dashed, the axis 0-100 for a %."""
    if table["mean"].notna().sum() == 0:
        return None
    groups = _groups(table)
    seeds = _seed_values(table)
    fig = _figure(max(4.5, 1.2 * len(table) + 1.8), 4.2)
    axes = fig.subplots(1, len(groups), sharey=True, squeeze=False)[0]
    for k, (ax, (name, group)) in enumerate(zip(axes, groups)):
        pos = np.arange(len(group))
        heights = np.nan_to_num(group["mean"].to_numpy(float))
        bars = ax.bar(pos, heights, color="tab:blue", alpha=0.35, width=0.7)
        ax.errorbar(pos, heights, yerr=_interval(group), fmt="none", ecolor="black", capsize=4,
                    label=INTERVAL_LABEL if k == 0 else None)
        for i, (bar, row) in enumerate(zip(bars, group.to_dict("records"))):
            if row["baseline"]:
                bar.set_facecolor("tab:gray")
                bar.set_hatch("//")
            vals = seeds.get((name, row["label"]), np.array([]))
            ax.plot(pos[i] + _jitter(len(vals)), vals, "o", color="black", markersize=3.5, alpha=0.8,
                    label=SEED_LABEL if k == 0 and i == 0 and len(vals) else None)
            if row["n"] == 0:
                ax.annotate(row["status"], (pos[i], 0), ha="center", va="bottom", fontsize=7, rotation=90,
                            xytext=(0, 3), textcoords="offset points")
        ticks = [f"{row['label']}\nn={row['n']}" + ("" if row["baseline"] or not row["verdict"] else f", {row['verdict']}")
                 for row in group.to_dict("records")]
        ax.set_xticks(pos, ticks, rotation=30, ha="right", fontsize=7)
        ax.set_title("all runs" if name == "all" else name, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        _metric_axis(ax, table)
        if k:
            ax.set_ylabel("")
    axes[0].legend(fontsize=7, loc="lower right")
    fam = table.attrs.get("family", {})
    title = table.attrs.get("title", "")
    if fam:
        title += (f"\nverdict vs the baseline after Holm over {fam.get('size', 0)} comparison(s); "
                  f"margin ±{table.attrs.get('settings', {}).get('margin', 0):g}")
    fig.suptitle(_fit(title, fig.get_figwidth()), fontsize=9)
    return fig


def plot_against(table: pd.DataFrame, key: str, xlabel: str, *, log2: bool = False) -> Figure | None:
    """The primary metric against a numeric group key (a distance, a training-set size), one line per row
    label in the table's order: each seed a dot, the means joined, each with its 95 % t interval. None when
    no row has a result."""
    usable = table[table["mean"].notna()]
    if usable.empty:
        return None
    seeds = _seed_values(table)
    fig = _figure(5.8, 3.6)
    ax = fig.subplots()
    for position, (label, rows) in enumerate(usable.groupby("label", sort=False)):
        rows = rows.sort_values(key)
        colour = f"C{position % 10}"
        x = rows[key].to_numpy(float)
        for xi, g in zip(x, rows["group"]):
            vals = seeds.get((g, label), np.array([]))
            ax.plot(np.full(len(vals), xi), vals, "o", color=colour, alpha=0.35, markersize=3.5)
        ns = sorted(set(rows["n"]))
        ax.errorbar(x, rows["mean"], yerr=_interval(rows), marker="D", capsize=3, color=colour,
                    label=f"{label} (n={ns[0] if len(ns) == 1 else f'{ns[0]}-{ns[-1]}'})")
    if log2:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    _metric_axis(ax, table)
    ax.set_title(f"dots: seeds; diamonds and bars: {INTERVAL_LABEL}", fontsize=8)
    ax.legend(fontsize=7)
    return fig


def plot_curves(
    assigned: pd.DataFrame,
    history: pd.DataFrame,
    *,
    metric: str = keys.VAL_TOP1,
    title: str = "",
    chance: float | None = None,
) -> Figure | None:
    """Validation `metric` per epoch for each variant, one panel per group: each seed's curve thin, the mean
    over seeds thick with its 95 % t interval as a band. `assigned` is :func:`nlstudy.report.tables.
    assign_rows`' output; the numbers are :func:`nlstudy.report.epochs.curves`'. A label keeps one colour in
    every panel, given by its first place in the table (the baseline's is the first colour)."""
    data = epochs.curves(history, assigned, metric=metric)
    if data.empty:
        return None
    x_col = data.attrs["x"]
    group_keys = assigned.attrs.get("group_keys", [])
    varying = _varying(assigned, group_keys)
    layout = tables.table_rows(assigned)
    colour = {label: f"C{i % 10}" for i, label in enumerate(dict.fromkeys(layout["label"]))}
    per_seed = epochs.seed_curves(history, assigned, metric=metric, x=x_col)
    groups = list(dict.fromkeys(data["group"]))
    fig = _figure(max(5.0, 4.2 * len(groups)), 3.8)
    axes = fig.subplots(1, len(groups), sharey=True, squeeze=False)[0]
    for ax, group in zip(axes, groups):
        mine = data[[g == group for g in data["group"]]]
        for position, line_data in mine.groupby("position", sort=True):
            label = line_data["label"].iloc[0]
            for _, run in per_seed[per_seed["position"] == position].groupby("run_id", sort=False):
                ax.plot(run[x_col], run["value"], color=colour[label], alpha=0.25, linewidth=0.7)
            x = line_data[x_col].to_numpy(float)
            mean = line_data["mean"].to_numpy(float)
            n = line_data["n"].to_numpy(float)
            std = np.nan_to_num(line_data["std"].to_numpy(float))
            half = np.where(n > 1, student_t.ppf(0.975, np.maximum(n - 1, 1)) * std / np.sqrt(np.maximum(n, 1)), 0.0)
            style = "--" if line_data["baseline"].iloc[0] else "-"
            ax.plot(x, mean, style, color=colour[label], label=f"{label} (n={int(n.max())})")
            low, high = mean - half, mean + half
            if "top" in metric:
                low, high = np.clip(low, 0, 100), np.clip(high, 0, 100)
            ax.fill_between(x, low, high, color=colour[label], alpha=0.15)
        if chance is not None and "top" in metric:
            ax.axhline(chance, color="0.4", linestyle=":", linewidth=1, label=f"chance ({chance:g} %)")
        if "top" in metric:
            ax.set_ylim(0, 100)
        name = group_text([k for k in group_keys if k in varying], dict(zip(group_keys, group)))
        ax.set_title(name or "all runs", fontsize=8)
        ax.set_xlabel(x_col)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel(f"{metric} (%)" if "top" in metric else metric)
    fig.suptitle(_fit(f"{title}\nthin: each seed; thick: the mean; band: its 95 % t interval over seeds",
                      fig.get_figwidth()), fontsize=9)
    return fig


def _varying(assigned: pd.DataFrame, group_keys: Sequence[str]) -> set[str]:
    out = set()
    for i, key in enumerate(group_keys):
        if len({g[i] for g in assigned["group"]}) > 1:
            out.add(key)
    return out
