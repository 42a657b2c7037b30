"""A table's runs over epochs: each finished run's logged metric per epoch (or step), and its mean ± std over
seeds per table row, in the table's row order (:func:`nlstudy.report.tables.table_rows`), from the row assignment
of :func:`nlstudy.report.tables.assign_rows` and the long history frame of
:func:`nlstudy.report.schema.history_frame`. What the curves figure draws (:mod:`nlstudy.report.plots`).
"""

from __future__ import annotations

import math

import pandas as pd

from nlstudy import keys
from nlstudy.report.tables import table_rows

CURVE_COLUMNS = ("group", "row", "label", "baseline", "position", "mean", "std", "n")


def _curve_members(assigned: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The table's layout (:func:`table_rows`) and its finished runs with the position of their row."""
    layout = table_rows(assigned)
    position = {(g, r): i for i, (g, r) in enumerate(zip(layout["group"], layout["row"]))}
    done = assigned[assigned["run_id"].notna() & (assigned["state"] == "finished")]
    members = pd.DataFrame({"run_id": done["run_id"].to_numpy(), "seed": done["seed"].to_numpy(),
                            "position": [position[k] for k in zip(done["group"], done["row"])]})
    return layout, members


def seed_curves(history: pd.DataFrame, assigned: pd.DataFrame, *, metric: str = keys.VAL_TOP1,
                x: str = "epoch") -> pd.DataFrame:
    """Each finished run's logged `metric` against `x`: ``run_id``, ``seed``, ``position`` (its row's index in
    the table), `x`, ``value``; sorted by row, seed and x (not by run id), so a figure drawn from it is the same
    whatever the runs' ids."""
    _, members = _curve_members(assigned)
    logged = history[(history["metric"] == metric) & history["run_id"].isin(set(members["run_id"]))]
    logged = logged[logged[x].notna()].merge(members, on="run_id")
    logged = logged.assign(_seed=[float(v) if isinstance(v, (int, float)) and v == v else math.inf
                                  for v in logged["seed"]])
    out = logged.sort_values(["position", "_seed", x, "value"], kind="stable")
    return out[["run_id", "seed", "position", x, "value"]]


def curves(
    history: pd.DataFrame,
    assigned: pd.DataFrame,
    *,
    metric: str = keys.VAL_TOP1,
    x: str | None = None,
) -> pd.DataFrame:
    """Mean ± std over seeds of a logged `metric`, per table row and epoch (or step).

    history: the long frame of :func:`nlstudy.report.schema.history_frame`. assigned: the row
    assignment of one table (:func:`nlstudy.report.tables.assign_rows`); its finished runs count. x: ``"epoch"`` or
    ``"step"``; by default epoch where every value of `metric` has one, else step
    (``attrs["x"]`` says which).

    One row per (group, row, x) in the table's order (:func:`table_rows`): ``group``, ``row``,
    ``label``, ``baseline``, ``position`` (the row's index in the table), one column per group key,
    the x column, ``mean``, ``std`` (ddof=1; NaN for one seed) and ``n`` (seeds at that x). A
    baseline run serving several groups appears in each.
    """
    group_keys = list(assigned.attrs.get("group_keys", []))
    layout, members = _curve_members(assigned)
    logged = history[(history["metric"] == metric) & history["run_id"].isin(set(members["run_id"]))]
    if x is None:
        x = "epoch" if logged["epoch"].notna().all() else "step"
    logged = logged[logged[x].notna()].merge(members, on="run_id")
    # sorted by value first: a mean's float sum depends on its terms' order, which must not depend on run ids
    logged = logged.sort_values(["position", x, "value"], kind="stable")
    stats_ = (logged.groupby(["position", x], sort=True)["value"]
              .agg(mean="mean", std="std", n="count").reset_index())
    stats_["n"] = stats_["n"].astype("int64")
    rows = layout.assign(position=range(len(layout)))
    out = rows.merge(stats_, on="position", how="inner")
    for i, key in enumerate(group_keys):
        out[key] = [g[i] for g in out["group"]]
    out = out[[*CURVE_COLUMNS[:5], *group_keys, x, *CURVE_COLUMNS[5:]]]
    out.attrs["x"] = x
    return out.reset_index(drop=True)
