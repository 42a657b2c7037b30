"""From a table's runs to its numbers: which runs count (one per seed), each row's metrics over its seeds,
and each row compared with its group's baseline.

    runs (one per seed) -> per-run lines (:func:`seed_lines`, the table's ``<id>_runs.csv``)
        -> per-row cells (:func:`cell`: mean, std, 95 % t interval of the primary metric; the secondary metrics)
        -> comparisons (:func:`compare_rows`: delta, its Welch interval, p, TOST p, mde; the state's share of ALPHA)
        -> one family per report (:mod:`nlstudy.report.family`: Holm, verdicts)

A table's settings (:class:`Settings`: its primary metric, equivalence margin and planned looks) come from
the command line where given, else from its runs' ``report.*`` config keys (set per sweep file), else the
defaults: ``test/top1``, 2 points, one look.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from nlstudy import keys
from nlstudy.report import stats
from nlstudy.report.text import canon

PRIMARY = keys.TEST_TOP1  # the metric every table compares by default: the test top-1 of the final model
FALLBACK = keys.VAL_TOP1_BEST  # when no run of a table logged the primary metric (a fit without its test)
SECONDARY = (keys.VAL_TOP1_BEST, keys.TEST_TOP5, keys.VAL_TOP5_BEST)  # shown beside it when logged
COUNTS = ("n", "n_failed", "n_running", "n_missing", "n_unscored", "n_dup")


@dataclasses.dataclass(frozen=True)
class Settings:
    """How one table compares its rows. ``fallback``: the primary metric was asked for (or defaulted) but no
    run of the table logged it, so ``metric`` is FALLBACK instead."""

    metric: str = PRIMARY
    margin: float = stats.MARGIN
    looks: tuple[int, ...] | None = None
    alpha: float = stats.ALPHA
    fallback: str | None = None

    @property
    def secondary(self) -> tuple[str, ...]:
        return tuple(m for m in (PRIMARY, *SECONDARY) if m != self.metric)


def column(metric: str) -> str:
    """A metric's column in a table frame: ``val/top1_best`` -> ``val_top1_best``."""
    return metric.replace("/", "_")


def is_percent(metric: str) -> bool:
    """Is `metric` an accuracy in % (a top-k), bounded by [0, 100]?"""
    return "top1" in metric or "top5" in metric


def _only(values: pd.Series, what: str) -> Any:
    seen = {canon(v) for v in values} - {None}
    if len(seen) > 1:
        raise ValueError(f"{what}: the table's runs disagree ({', '.join(sorted(map(str, seen)))}); "
                         "set one value per table (a sweep file's report.* parameters) or on the command line")
    return next(iter(seen), None)


def settings(mine: pd.DataFrame, *, metric: str | None = None, margin: float | None = None) -> Settings:
    """The settings of the table whose runs are `mine`: `metric` / `margin` where given, else the runs'
    ``report.metric`` / ``report.margin``, else the defaults; the looks from ``report.looks``."""
    if metric is None:
        metric = _only(mine[keys.REPORT_METRIC], keys.REPORT_METRIC) if keys.REPORT_METRIC in mine else None
    if margin is None:
        margin = _only(mine[keys.REPORT_MARGIN], keys.REPORT_MARGIN) if keys.REPORT_MARGIN in mine else None
    looks = _only(mine[keys.REPORT_LOOKS], keys.REPORT_LOOKS) if keys.REPORT_LOOKS in mine else None
    looks = tuple(int(n) for n in json.loads(looks)) if isinstance(looks, str) else None
    metric = metric or PRIMARY
    fallback = None
    finished = mine[mine["state"] == "finished"] if "state" in mine else mine
    if len(finished) and (metric not in finished or finished[metric].isna().all()) and metric == PRIMARY:
        fallback, metric = metric, FALLBACK
    return Settings(metric=metric, margin=float(stats.MARGIN if margin is None else margin), looks=looks,
                    fallback=fallback)


# --------------------------------------------------------------------------------------------------
# which runs count, and each row's numbers
# --------------------------------------------------------------------------------------------------


def _seed_of(cell: pd.DataFrame) -> list[tuple]:
    """A run's seed identity: its seed, or the run itself when it has none."""
    return [("seed", s) if s is not None else ("run", r) for s, r in zip(cell["seed"], cell["run_id"])]


def counted(cell: pd.DataFrame, metric: str) -> pd.Series:
    """Which runs of one (group, row) count: the latest finished run of each seed that logged `metric`
    (the run id breaks a tie in time, so the result never depends on the frame's order)."""
    real = cell[cell["state"] != "expected"]
    out = pd.Series(False, index=cell.index)
    done = real[(real["state"] == "finished") & pd.to_numeric(real[metric], errors="coerce").notna()]
    if done.empty:
        return out
    done = done.assign(_seed=_seed_of(done)).sort_values(["created_at", "run_id"], kind="stable", na_position="first")
    out[done.groupby("_seed", sort=False).tail(1).index] = True
    return out


def cell(cell_runs: pd.DataFrame, s: Settings) -> dict[str, Any]:
    """One row's numbers from its runs (the rows of `assign_rows` of one (group, row)): counts, status, the
    primary metric's ``mean``, ``std``, ``ci_low``/``ci_high`` (95 % t interval of the mean, clipped to
    [0, 100] for a %), each secondary metric's mean and std, params and FLOPs (medians). The counted values
    and run ids ride along under ``values`` and ``run_ids`` (for the comparisons; not table columns)."""
    first = cell_runs.iloc[0]
    res: dict[str, Any] = {"row": first["row"], "group": first["group"]}
    real = cell_runs[cell_runs["state"] != "expected"]
    seeds = real.assign(_seed=_seed_of(real))
    kept = real[counted(real, s.metric)]
    kept_seeds = set(_seed_of(kept))
    finished_seeds = set(seeds.loc[seeds["state"] == "finished", "_seed"])
    running = set(seeds.loc[seeds["state"] == "running", "_seed"]) - finished_seeds
    failed = set(seeds["_seed"]) - finished_seeds - running
    expected_seeds = set(cell_runs.loc[cell_runs["state"] == "expected", "seed"])
    seen = {s_ for kind, s_ in seeds["_seed"] if kind == "seed"}
    n_missing = int(len(real) == 0) if None in expected_seeds else len(expected_seeds - seen)
    n_done = int(((seeds["state"] == "finished") & pd.to_numeric(seeds[s.metric], errors="coerce").notna()).sum())
    res.update(n=len(kept), n_failed=len(failed), n_running=len(running), n_missing=n_missing,
               n_unscored=len(finished_seeds - kept_seeds), n_dup=n_done - len(kept))
    res["status"] = ("ok" if len(kept) else "running" if running else "failed" if failed
                     else "unscored" if finished_seeds else "missing")
    order = np.argsort(kept["run_id"].astype(str).to_numpy(), kind="stable")  # a fixed order for the run ids
    values = pd.to_numeric(kept[s.metric], errors="coerce").to_numpy(dtype=float)
    res["run_ids"] = tuple(kept["run_id"].astype(str).to_numpy()[order])
    res["values"] = np.sort(values)  # sorted: float sums depend on the order of their terms, the table must not
    res["metric"] = s.metric
    res.update(_summary(res["values"], "", s.metric))
    for m in s.secondary:
        if m in kept:
            vals = np.sort(pd.to_numeric(kept[m], errors="coerce").dropna().to_numpy(dtype=float))
            res[column(m)] = float(vals.mean()) if len(vals) else math.nan
            res[f"{column(m)}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else math.nan
    for col, key in (("params", keys.PARAMS), ("flops", keys.FLOPS)):
        vals = pd.to_numeric(real[key], errors="coerce").dropna() if key in real else pd.Series(dtype=float)
        res[col] = float(vals.median()) if len(vals) else math.nan
    return res


def _summary(values: np.ndarray, prefix: str, metric: str) -> dict[str, float]:
    bounds = (0.0, 100.0) if is_percent(metric) else None
    low, high = stats.t_interval(values, bounds=bounds)
    return {f"{prefix}mean": float(values.mean()) if len(values) else math.nan,
            f"{prefix}std": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
            f"{prefix}ci_low": low, f"{prefix}ci_high": high}


# --------------------------------------------------------------------------------------------------
# each row against its group's baseline
# --------------------------------------------------------------------------------------------------

COMPARISON_COLUMNS = ("delta", "delta_ci_low", "delta_ci_high", "p", "p_tost", "mde", "p_exact", "alpha_share",
                      "comparison")


def compare_rows(c: dict[str, Any], base: dict[str, Any] | None, s: Settings) -> dict[str, Any]:
    """Row `c` against its group's baseline row `base` (cells of :func:`cell`): the raw comparison (before the
    family's Holm adjustment), the share of ALPHA of its state under the planned looks, and the comparison's
    identity (``comparison``, a hash of its runs): the same runs compared on the same metric with the same margin
    and share are one comparison, whichever tables show it (:func:`nlstudy.report.family.apply` names it by
    where it first appears, so no table depends on the run ids)."""
    none = {"delta": math.nan, "delta_ci_low": math.nan, "delta_ci_high": math.nan, "p": math.nan,
            "p_tost": math.nan, "mde": math.nan, "p_exact": False, "alpha_share": math.nan, "comparison": None}
    if base is None or c is base:
        return none
    r = stats.compare(c["values"], base["values"], margin=s.margin)
    share = stats.alpha_share(len(base["values"]), len(c["values"]), s.looks)
    identity = hashlib.sha1(repr((s.metric, s.margin, share, base["run_ids"], c["run_ids"])).encode()).hexdigest()
    return {"delta": r.delta, "delta_ci_low": r.ci_low, "delta_ci_high": r.ci_high, "p": r.p, "p_tost": r.p_tost,
            "mde": r.mde, "p_exact": r.exact, "alpha_share": share, "comparison": identity}


def relative(c: dict, base: dict | None) -> dict[str, float]:
    """Params and FLOPs relative to the baseline's."""
    if base is None:
        return {"params_rel": math.nan, "flops_rel": math.nan}
    return {"params_rel": c["params"] / base["params"] if base["params"] else math.nan,
            "flops_rel": c["flops"] / base["flops"] if base["flops"] else math.nan}


# --------------------------------------------------------------------------------------------------
# the per-run lines behind a table
# --------------------------------------------------------------------------------------------------

SEED_COLUMNS = ("run_id", "label", "group", "seed", "state", "counted", "sweep_id")


def seed_lines(assigned: pd.DataFrame, group_names: Sequence[str], positions: Sequence[int], s: Settings) -> pd.DataFrame:
    """One line per run of the table and group it is filed under (a baseline serving two groups is on two
    lines): ``run_id``, ``label``, ``group`` (the baseline group, as the table's ``group`` column names it),
    ``seed``, ``state``, ``counted`` (whether its value is in the table's numbers) and ``sweep_id``, then every
    metric the table uses under its logged name (``test/top1``, ``val/top1_best``, ...). `group_names`: the
    ``group`` text of each row of `assigned`; `positions`: the place in the table of each one's row (the
    lines follow the table's order, then the seeds')."""
    real = assigned.assign(group=list(group_names), _position=list(positions))
    real = real[real["state"] != "expected"]
    metrics = [m for m in dict.fromkeys((s.metric, *s.secondary)) if m in real]
    flags = pd.Series(False, index=real.index)
    for _, members in real.groupby("_position", sort=False):
        flags[members.index] = counted(members, s.metric)
    real = real.assign(counted=flags)
    order = sorted(range(len(real)), key=lambda i: _line_key(real.iloc[i]))
    return real.iloc[order][[*SEED_COLUMNS, *metrics]].reset_index(drop=True)


def _line_key(line: pd.Series) -> tuple:
    """The table's row order, then seed (numerically; none last), then run id: independent of the runs' order."""
    seed = line["seed"]
    numeric = isinstance(seed, (int, float)) and not isinstance(seed, bool) and seed == seed
    return (line["_position"], (0, float(seed), "") if numeric else (1, 0.0, str(seed)), str(line["run_id"]))
