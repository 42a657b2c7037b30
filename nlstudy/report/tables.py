"""Ablation tables: pure functions from the tidy runs frame to one table frame per ablation.

What each table compares is its :class:`~nlstudy.report.specs.TableSpec` (:mod:`nlstudy.report.specs`);
this module assigns the runs to its rows and groups and computes the numbers. Any config key beyond the
spec's that varies among a table's runs (seed, ``derived.*`` and per-run paths excepted) also splits
groups, so runs that differ in something the spec did not foresee are never averaged together.

Row identity: the keys of the non-local block (``model.backbone.nl.*``, ``model.backbone.block``)
mean nothing for a run without inserted blocks (``nonlocal_blocks == "none"``), so they are set
to the wildcard :data:`~nlstudy.report.text.ANY` there; a baseline run with a wildcard in a group key
joins every group that matches it otherwise (a 2a grid ``none x pairwise`` gives one baseline row, not four).

:func:`build_table` returns one row per (group, variant) with the numbers (means, spreads, counts,
deltas, Welch's t-test against the baseline (:mod:`nlstudy.report.stats`), relative cost, the paper's
numbers (:mod:`nlstudy.report.paper`)) as plain columns; formatting is the renderers' job. Table
metadata (title, group / row keys, footnotes: :mod:`nlstudy.report.text`) rides in ``table.attrs``.
:func:`table_rows` fixes the row order (each group's baseline first, then the rows sorted by value),
which the figures follow too; :func:`curves` turns the history into mean ± std per row and epoch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from nlstudy import choices, keys
from nlstudy.report.paper import paper_cell, paper_numbers
from nlstudy.report.specs import TableSpec, config_columns, is_axis, is_plain, resolve_spec
from nlstudy.report.stats import significance, t_interval
from nlstudy.report.text import ANY, block_count, canon, metadata, row_label, show

NL_KEYS = (
    keys.BLOCK, keys.PAIRWISE, keys.SUBSAMPLE, keys.SUBSAMPLE_ORDER, keys.MODE, keys.INTER_RATIO, keys.SCALE,
)

# preferred order of values within a table (the paper's order); other values follow, sorted
VALUE_ORDER: dict[str, tuple] = {
    keys.NONLOCAL_BLOCKS: choices.PLACEMENTS,
    keys.PAIRWISE: choices.PAIRWISE,
    keys.MODE: tuple(choices.MODE_LABELS),
    keys.ARCH: choices.ARCHS,
    keys.BLOCK: choices.BLOCKS,
    keys.SUBSAMPLE: (False, True),
    keys.SUBSAMPLE_ORDER: choices.SUBSAMPLE_ORDERS,
    keys.TASK: choices.TASKS,
}

METRICS = {  # output column -> summary key
    "top1": keys.VAL_TOP1_BEST,
    "top5": keys.VAL_TOP5_BEST,
    "test_top1": keys.TEST_TOP1,
    "test_top5": keys.TEST_TOP5,
}


class MissingRowsError(ValueError):
    """strict=True and a row has no finished run."""


def _sort_key(keys_: Sequence[str], values: Sequence[Any]) -> tuple:
    """Sort key of a group or row tuple: the paper's order of values, numbers numerically, then text."""
    return tuple(_sort_value(k, v) for k, v in zip(keys_, values))


def _sort_value(key: str, value: Any) -> tuple:
    if value == ANY:
        return (-1, 0, "")
    order = VALUE_ORDER.get(key, ())
    for i, preferred in enumerate(order):
        if type(preferred) is type(value) and preferred == value:
            return (i, 0, "")
    if key == keys.NONLOCAL_BLOCKS and block_count(value) is not None:  # placement maps after the presets, by count
        return (len(order), float(block_count(value)), str(value))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (len(order), float(value), "")
    return (len(order) + 1, 0, str(value))


# --------------------------------------------------------------------------------------------------
# rows and groups
# --------------------------------------------------------------------------------------------------


def _identity(config: Mapping[str, Any], wanted: Sequence[str]) -> dict[str, Any]:
    values = {k: canon(config.get(k)) for k in set(wanted) | {keys.NONLOCAL_BLOCKS, keys.ARCH, keys.BLOCK}}
    if values.get(keys.NONLOCAL_BLOCKS) == choices.NO_BLOCKS:
        for k in NL_KEYS:
            values[k] = ANY
    return values


def assign_rows(
    runs: pd.DataFrame,
    table_id: str,
    *,
    expected: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Which (group, row) each run of `table_id` belongs to.

    Returns one row per (run, group) -- a baseline run with a wildcard group value can serve
    several groups -- with columns: run_id, state ("expected" for a run the sweep plans but that
    never started), seed, created_at, the metric keys, derived.params / derived.flops_per_clip,
    sweep_id, ``group`` (tuple of group values), ``row`` (tuple of row values), ``label``,
    ``model``/``variant`` (the paper's naming, or None), ``baseline`` (bool), and one column per
    group and row key. ``attrs``: spec, group_keys, row_keys.
    """
    spec = resolve_spec(table_id, runs)
    mine = runs[runs["table"] == table_id] if "table" in runs.columns else runs.iloc[0:0]
    row_keys = list(spec.row_keys)

    # keys beyond the spec's that vary among these runs also split groups
    extra = []
    for key in config_columns(mine):
        if key in row_keys or key in spec.group_keys or not is_axis(key):
            continue
        ids = [_identity({key: v, keys.NONLOCAL_BLOCKS: nb}, [key])[key]
               for v, nb in zip(mine[key], mine.get(keys.NONLOCAL_BLOCKS, pd.Series([None] * len(mine))))]
        if len({v for v in ids if v != ANY}) > 1:
            extra.append(key)
    group_keys = list(spec.group_keys) + extra
    wanted = row_keys + group_keys

    items = []
    for rec in mine.to_dict("records"):
        items.append(_item(rec, wanted, state=rec["state"]))
    if expected is not None and len(expected):
        planned = expected[expected["table"] == table_id] if "table" in expected.columns else expected
        items.extend(_expected_items(planned, items, wanted, row_keys, group_keys))

    # groups seen with concrete values; wildcard groups join every group that matches them
    concrete = {tuple(it["values"][k] for k in group_keys) for it in items
                if all(it["values"][k] != ANY for k in group_keys)}
    rows = []
    for it in items:
        gvals = tuple(it["values"][k] for k in group_keys)
        targets = [gvals]
        if ANY in gvals:
            targets = [g for g in concrete if all(a == ANY or a == b for a, b in zip(gvals, g))] or [gvals]
            targets.sort(key=lambda g: _sort_key(group_keys, g))  # a set's order is no order
        for g in targets:
            values = dict(it["values"], **dict(zip(group_keys, g)))
            rows.append(_assignment(it, values, spec, row_keys, group_keys))
    columns = ["run_id", "state", "seed", "created_at", "sweep_id", "group", "row", "label", "model",
               "variant", "baseline", *METRICS.values(), keys.PARAMS, keys.FLOPS, *dict.fromkeys(wanted)]
    out = pd.DataFrame.from_records(rows, columns=columns)
    out.attrs.update(table_id=table_id, spec=spec, group_keys=group_keys, row_keys=row_keys)
    return out


def _item(rec: Mapping[str, Any], wanted: Sequence[str], *, state: str) -> dict[str, Any]:
    return {
        "run_id": rec.get("run_id"), "state": state, "seed": canon(rec.get(keys.SEED)),
        "created_at": rec.get("created_at"), "sweep_id": rec.get("sweep_id"),
        "metrics": {m: rec.get(m) for m in (*METRICS.values(), keys.PARAMS, keys.FLOPS)},
        "values": _identity(rec, wanted),
    }


def _expected_items(planned: pd.DataFrame, items: list[dict], wanted, row_keys, group_keys) -> list[dict]:
    """Pseudo-runs for the runs a sweep plans; keys the sweep leaves to the base config are taken
    from that sweep's real runs when they agree, else group keys become wildcards and a row the
    sweep cannot pin down is not expected."""
    out = []
    by_sweep: dict[Any, list[dict]] = {}
    for it in items:
        by_sweep.setdefault(it["sweep_id"], []).append(it)
    for rec in planned.to_dict("records"):
        present = {k for k, v in rec.items() if canon(v) is not None}
        it = _item(rec, wanted, state="expected")
        it["run_id"] = None
        siblings = by_sweep.get(rec.get("sweep_id"), [])
        unknown_row = False
        for key in wanted:
            if key in present or it["values"][key] == ANY:
                continue
            seen = {s["values"][key] for s in siblings}
            if len(seen) == 1:
                it["values"][key] = next(iter(seen))
            elif key in group_keys:
                it["values"][key] = ANY
            else:
                unknown_row = True
        if not unknown_row:
            out.append(it)
    return out


def _assignment(it, values, spec: TableSpec, row_keys, group_keys) -> dict[str, Any]:
    paper = spec.paper(values) if spec.paper else None
    return {
        "run_id": it["run_id"], "state": it["state"], "seed": it["seed"], "created_at": it["created_at"],
        "sweep_id": it["sweep_id"],
        "group": tuple(values[k] for k in group_keys), "row": tuple(values[k] for k in row_keys),
        "label": row_label(values, row_keys, paper), "model": paper[0] if paper else None,
        "variant": paper[1] if paper else None, "baseline": is_plain(values),
        **it["metrics"], **{k: values[k] for k in dict.fromkeys([*group_keys, *row_keys])},
    }


# --------------------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------------------


def build_table(
    runs: pd.DataFrame,
    table_id: str,
    *,
    expected: pd.DataFrame | None = None,
    strict: bool = False,
    paper: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One ablation table: one row per (group, variant), the group's baseline first.

    Columns: the group keys and row keys (canonical values), ``label``, ``model``/``variant``
    (the paper's naming), ``baseline``, ``status`` (ok | failed | running | missing), ``n``
    (finished seeds with a result), ``n_failed``, ``n_running``, ``n_missing`` (seeds the sweep
    plans but never started), ``n_dup`` (extra finished runs of a seed; the latest counts), per
    metric ``top1, top5[, test_top1, test_top5]`` the mean, ``<m>_std`` (over seeds, ddof=1) and
    for top-1 the 95% t interval ``top1_ci_low/high`` (n >= 3); ``delta_top1`` vs the group's
    baseline; ``p_top1``, the two-sided p-value of Welch's t-test of top-1 over seeds against the
    baseline (:func:`~nlstudy.report.stats.welch_p`: NaN for the baseline row and with fewer than
    two seeds on a side), ``sig`` (p < :data:`~nlstudy.report.stats.ALPHA`) and ``p_exact`` (both
    sides without spread: compared exactly);
    ``params``, ``flops`` and ``params_rel``, ``flops_rel`` vs the baseline; and
    ``paper_top1``, ``paper_top5``, ``paper_depth`` where the paper published the row (at the
    group's depth, else the nearest published depth, marked by ``paper_depth``).

    strict: raise MissingRowsError when a row has no finished run (expected by the sweep or seen failed).
    """
    paper = paper_numbers() if paper is None else paper
    assigned = assign_rows(runs, table_id, expected=expected)
    spec: TableSpec = assigned.attrs["spec"]
    group_keys, row_keys = assigned.attrs["group_keys"], assigned.attrs["row_keys"]
    metrics = [m for m, key in METRICS.items()
               if m in ("top1", "top5") or (key in assigned and assigned[key].notna().any())]

    members: dict[tuple, list[int]] = {}
    for i, key in enumerate(zip(assigned["group"], assigned["row"])):
        members.setdefault(key, []).append(i)
    out = []
    for entry in table_rows(assigned).to_dict("records"):
        c = _cell(assigned.iloc[members[(entry["group"], entry["row"])]], metrics)
        c["baseline"] = entry["baseline"]
        out.append(c)
    bases = {c["group"]: c for c in out if c["baseline"]}
    for c in out:
        base = bases.get(c["group"])
        c.update(_relative(c, base))
        c.update(significance(c, base))
        c.update(paper_cell(paper, table_id, c))

    columns = [*dict.fromkeys([*group_keys, *row_keys]), "label", "model", "variant", "baseline", "status",
               "n", "n_failed", "n_running", "n_missing", "n_dup"]
    for m in metrics:
        columns += [m, f"{m}_std"] + (["top1_ci_low", "top1_ci_high"] if m == "top1" else [])
    columns += ["delta_top1", "p_top1", "sig", "p_exact", "params", "flops", "params_rel", "flops_rel",
                "paper_top1", "paper_top5", "paper_depth"]
    table = pd.DataFrame.from_records(out, columns=columns)
    for col in ("n", "n_failed", "n_running", "n_missing", "n_dup"):
        table[col] = table[col].astype("int64")
    for col in ("sig", "p_exact"):
        table[col] = table[col].astype("bool")
    table.attrs.update(metadata(table, table_id, spec, group_keys, row_keys, runs))

    if strict:
        if table.empty:
            raise MissingRowsError(f"table {table_id}: no runs")
        bad = table[table["n"] == 0]
        if len(bad):
            lines = [f"{' / '.join(show(r[k]) for k in group_keys)}: {r['label']} ({r['status']})"
                     for r in bad.to_dict("records")]
            raise MissingRowsError(f"table {table_id}: {len(bad)} row(s) without a finished run: " + "; ".join(lines))
    return table


def table_rows(assigned: pd.DataFrame) -> pd.DataFrame:
    """The rows of the table that :func:`assign_rows`' `assigned` makes, in display order: groups
    sorted by value, and in each group its baseline first, then the other rows sorted by value.

    One row per (group, row): ``group``, ``row`` (tuples, as in `assigned`), ``label`` and
    ``baseline`` (the group's reference row: its plain C2D row, else the spec's fallback). The
    order depends only on the values, never on the order of the runs, their ids or times, so the
    tables and figures keep their layout (and the figures their colours) from one report to the next.
    """
    spec: TableSpec = assigned.attrs["spec"]
    group_keys, row_keys = assigned.attrs["group_keys"], assigned.attrs["row_keys"]
    # every run of a (group, row) shares its key values, label and plain-ness: any one stands for it
    firsts = assigned.drop_duplicates(subset=["group", "row"]).to_dict("records")
    out = []
    for group in sorted({c["group"] for c in firsts}, key=lambda g: _sort_key(group_keys, g)):
        cells = [c for c in firsts if c["group"] == group]
        cells.sort(key=lambda c: (not c["baseline"], _sort_key(row_keys, c["row"])))
        base = _pick_baseline(cells, spec)
        if base is not None:
            cells = [base, *(c for c in cells if c is not base)]
        out.extend({"group": group, "row": c["row"], "label": c["label"], "baseline": c is base} for c in cells)
    return pd.DataFrame.from_records(out, columns=["group", "row", "label", "baseline"])


def _cell(cell: pd.DataFrame, metrics: Sequence[str]) -> dict[str, Any]:
    first = cell.iloc[0]
    res: dict[str, Any] = {k: first[k] for k in cell.columns
                           if k not in ("run_id", "state", "seed", "created_at", "sweep_id", *METRICS.values(),
                                        keys.PARAMS, keys.FLOPS)}
    res["row"], res["group"] = first["row"], first["group"]
    real = cell[cell["state"] != "expected"]
    # one status per seed: finished beats running beats failed; a run without a seed is its own seed
    seed_of = [("seed", s) if s is not None else ("run", r) for s, r in zip(real["seed"], real["run_id"])]
    real = real.assign(_seed=seed_of)
    top1_key = METRICS["top1"]
    done = real[(real["state"] == "finished") & real[top1_key].notna()]
    # the latest run of a seed counts (run id breaks a tie: the result must not depend on the frame's order)
    done = done.sort_values(["created_at", "run_id"], kind="stable", na_position="first")
    kept = done.groupby("_seed", sort=False).tail(1)
    finished_seeds = set(kept["_seed"])
    running = {s for s, st in zip(real["_seed"], real["state"]) if st == "running"} - finished_seeds
    failed = set(real["_seed"]) - finished_seeds - running
    expected_seeds = set(cell.loc[cell["state"] == "expected", "seed"])
    seen = {s for kind, s in real["_seed"] if kind == "seed"}
    if None in expected_seeds:
        n_missing = int(len(real) == 0)
    else:
        n_missing = len(expected_seeds - seen)
    res.update(n=len(kept), n_failed=len(failed), n_running=len(running), n_missing=n_missing,
               n_dup=len(done) - len(kept))
    res["status"] = ("ok" if len(kept) else "running" if running else "failed" if failed else "missing")
    for m in metrics:
        # sorted: float sums depend on the order of their terms, the table must not
        values = np.sort(pd.to_numeric(kept[METRICS[m]], errors="coerce").dropna().to_numpy(dtype=float))
        res[m] = float(values.mean()) if len(values) else math.nan
        res[f"{m}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        if m == "top1":
            res["top1_ci_low"], res["top1_ci_high"] = t_interval(values)
            res["top1_values"] = values  # for the test against the baseline; not a table column
    for col, key in (("params", keys.PARAMS), ("flops", keys.FLOPS)):
        vals = pd.to_numeric(real[key], errors="coerce").dropna()
        res[col] = float(vals.median()) if len(vals) else math.nan
    return res


def _pick_baseline(cells: list[dict], spec: TableSpec) -> dict | None:
    for c in cells:
        if c["baseline"]:
            return c
    if spec.fallback_baseline is not None:
        for c in cells:
            if spec.fallback_baseline(c):
                return c
    return None


def _relative(c: dict, base: dict | None) -> dict[str, float]:
    if base is None:
        return {"delta_top1": math.nan, "params_rel": math.nan, "flops_rel": math.nan}
    return {
        "delta_top1": c["top1"] - base["top1"],
        "params_rel": c["params"] / base["params"] if base["params"] else math.nan,
        "flops_rel": c["flops"] / base["flops"] if base["flops"] else math.nan,
    }


# --------------------------------------------------------------------------------------------------
# curves over epochs
# --------------------------------------------------------------------------------------------------

CURVE_COLUMNS = ("group", "row", "label", "baseline", "position", "mean", "std", "n")


def curves(
    history: pd.DataFrame,
    assigned: pd.DataFrame,
    *,
    metric: str = keys.VAL_TOP1,
    x: str | None = None,
) -> pd.DataFrame:
    """Mean ± std over seeds of a logged `metric`, per table row and epoch (or step).

    history: the long frame of :func:`nlstudy.report.collect.history_frame`. assigned: the row
    assignment of one table (:func:`assign_rows`); its finished runs count. x: ``"epoch"`` or
    ``"step"``; by default epoch where every value of `metric` has one, else step
    (``attrs["x"]`` says which).

    One row per (group, row, x) in the table's order (:func:`table_rows`): ``group``, ``row``,
    ``label``, ``baseline``, ``position`` (the row's index in the table), one column per group key,
    the x column, ``mean``, ``std`` (ddof=1; NaN for one seed) and ``n`` (seeds at that x). A
    baseline run serving several groups appears in each.
    """
    group_keys = list(assigned.attrs.get("group_keys", []))
    layout = table_rows(assigned)
    position = {(g, r): i for i, (g, r) in enumerate(zip(layout["group"], layout["row"]))}
    done = assigned[assigned["run_id"].notna() & (assigned["state"] == "finished")]
    members = pd.DataFrame({"run_id": done["run_id"].to_numpy(),
                            "position": [position[k] for k in zip(done["group"], done["row"])]})
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
