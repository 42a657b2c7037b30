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

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from nlstudy import choices, keys
from nlstudy.report import comparisons, family
from nlstudy.report.paper import paper_cell, paper_numbers
from nlstudy.report.specs import TableSpec, config_columns, is_axis, is_plain, resolve_spec
from nlstudy.report.text import ANY, block_count, canon, group_text, metadata, row_label, show

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

METRICS = (keys.TEST_TOP1, keys.VAL_TOP1_BEST, keys.TEST_TOP5, keys.VAL_TOP5_BEST)  # the metrics a table may show


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
    metrics: Sequence[str] = (),
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

    metrics = tuple(dict.fromkeys((*METRICS, *metrics)))
    items = []
    for rec in mine.to_dict("records"):
        items.append(_item(rec, wanted, metrics, state=rec["state"]))
    if expected is not None and len(expected):
        planned = expected[expected["table"] == table_id] if "table" in expected.columns else expected
        items.extend(_expected_items(planned, items, wanted, row_keys, group_keys, metrics))

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
               "variant", "baseline", *metrics, keys.PARAMS, keys.FLOPS, *dict.fromkeys(wanted)]
    out = pd.DataFrame.from_records(rows, columns=columns)
    out.attrs.update(table_id=table_id, spec=spec, group_keys=group_keys, row_keys=row_keys)
    return out


def _item(rec: Mapping[str, Any], wanted: Sequence[str], metrics: Sequence[str], *, state: str) -> dict[str, Any]:
    return {
        "run_id": rec.get("run_id"), "state": state, "seed": canon(rec.get(keys.SEED)),
        "created_at": rec.get("created_at"), "sweep_id": rec.get("sweep_id"),
        "metrics": {m: rec.get(m) for m in (*metrics, keys.PARAMS, keys.FLOPS)},
        "values": _identity(rec, wanted),
    }


def _expected_items(planned: pd.DataFrame, items: list[dict], wanted, row_keys, group_keys, metrics) -> list[dict]:
    """Pseudo-runs for the runs a sweep plans; keys the sweep leaves to the base config are taken
    from that sweep's real runs when they agree, else group keys become wildcards and a row the
    sweep cannot pin down is not expected."""
    out = []
    by_sweep: dict[Any, list[dict]] = {}
    for it in items:
        by_sweep.setdefault(it["sweep_id"], []).append(it)
    for rec in planned.to_dict("records"):
        present = {k for k, v in rec.items() if canon(v) is not None}
        # a planned run an agent runs now, whose log may not exist yet (report.sweeps.planned_runs), is running
        it = _item(rec, wanted, metrics, state="running" if rec.get("state") == "running" else "expected")
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
    metric: str | None = None,
    margin: float | None = None,
) -> pd.DataFrame:
    """One ablation table, its comparisons corrected as one family (Holm over this table alone; a report's
    tables are one family together: :func:`build_tables`).

    One row per (group, variant), the group's baseline first. Columns: the group and row keys (canonical
    values), ``group`` (the group's name: "task=far", or "all"), ``label``, ``model``/``variant`` (the
    paper's naming), ``baseline``, ``status`` (ok | failed | running | unscored | missing), the counts ``n``
    (counted seeds: the latest finished run of each seed that logged the metric), ``n_failed``,
    ``n_running``, ``n_missing`` (planned by the sweep, never started), ``n_unscored`` (finished without the
    metric), ``n_dup`` (extra finished runs of a counted seed); ``metric`` (the primary metric's logged name:
    ``test/top1`` unless `metric`, the runs' ``report.metric`` or its absence says otherwise) and its
    ``mean``, ``std``, ``ci_low``/``ci_high`` (95 % t interval of the mean); each secondary metric's mean and
    ``_std`` (``val_top1_best``, ``test_top5``, ``val_top5_best``); the comparison with the group's baseline
    (:mod:`nlstudy.report.comparisons`, :mod:`nlstudy.report.family`): ``delta``, ``delta_ci_low``,
    ``delta_ci_high``, ``p``, ``p_holm``, ``p_equiv``, ``margin``, ``mde``, ``verdict``, and ``p_tost`` (TOST
    before Holm), ``alpha_share``, ``p_exact``, ``comparison`` (its id: the same id in every table that
    shows it); ``params``, ``flops``, ``params_rel``, ``flops_rel``; ``paper_top1``, ``paper_top5``,
    ``paper_depth`` where the paper published the row. ``attrs``: title, keys, footnotes, the settings,
    the family, and ``seeds``: the per-run lines (:func:`seeds` gives them as a frame).

    strict: raise MissingRowsError when a row has no counted run (expected by the sweep or seen failed).
    """
    table = _build(runs, table_id, expected=expected, strict=strict, paper=paper, metric=metric, margin=margin)
    return family.apply({table_id: table}, scope="table")[table_id]


def build_tables(
    runs: pd.DataFrame,
    table_ids: Sequence[str],
    *,
    expected: pd.DataFrame | None = None,
    strict: bool = False,
    metric: str | None = None,
    margin: float | None = None,
    scope: str = "report",
) -> dict[str, pd.DataFrame]:
    """Every table of `table_ids` (:func:`build_table`), their comparisons one family (`scope` "report": the
    distinct comparisons of all of them, Holm over those; "table": each table on its own). With `strict`,
    every table is checked before any is returned."""
    built = {t: _build(runs, t, expected=expected, strict=strict, metric=metric, margin=margin) for t in table_ids}
    return family.apply(built, scope=scope)


def _build(runs, table_id, *, expected, strict, paper=None, metric=None, margin=None) -> pd.DataFrame:
    paper = paper_numbers() if paper is None else paper
    mine = runs[runs["table"] == table_id] if "table" in runs.columns else runs.iloc[0:0]
    try:
        s = comparisons.settings(mine, metric=metric, margin=margin)
    except ValueError as err:
        raise ValueError(f"table {table_id}: {err}") from None
    assigned = assign_rows(runs, table_id, expected=expected, metrics=(s.metric,))
    spec: TableSpec = assigned.attrs["spec"]
    group_keys, row_keys = assigned.attrs["group_keys"], assigned.attrs["row_keys"]
    varying = varying_keys(assigned, group_keys)
    names = [group_text(varying, dict(zip(group_keys, g))) or "all" for g in assigned["group"]]

    members: dict[tuple, list[int]] = {}
    for i, key in enumerate(zip(assigned["group"], assigned["row"])):
        members.setdefault(key, []).append(i)
    out = []
    for entry in table_rows(assigned).to_dict("records"):
        c = comparisons.cell(assigned.iloc[members[(entry["group"], entry["row"])]], s)
        first = assigned.iloc[members[(entry["group"], entry["row"])][0]]
        c.update({k: first[k] for k in (*dict.fromkeys([*group_keys, *row_keys]), "label", "model", "variant")})
        c["group_name"] = names[members[(entry["group"], entry["row"])][0]]
        c["baseline"] = entry["baseline"]
        out.append(c)
    bases = {c["group"]: c for c in out if c["baseline"]}
    for c in out:
        base = bases.get(c["group"])
        c.update(comparisons.compare_rows(c, base, s), margin=s.margin)
        c.update(comparisons.relative(c, base))
        c.update(paper_cell(paper, table_id, c))
    secondary = [m for m in s.secondary  # the secondary metrics some row has a value of
                 if any(not math.isnan(c.get(comparisons.column(m), math.nan)) for c in out)]
    columns = [*dict.fromkeys([*group_keys, *row_keys]), "group", "label", "model", "variant", "baseline", "status",
               *comparisons.COUNTS, "metric", "mean", "std", "ci_low", "ci_high"]
    for m in secondary:
        columns += [comparisons.column(m), f"{comparisons.column(m)}_std"]
    columns += ["delta", "delta_ci_low", "delta_ci_high", "p", "p_holm", "p_equiv", "margin", "mde", "verdict",
                "p_tost", "alpha_share", "p_exact", "comparison", "params", "flops", "params_rel", "flops_rel",
                "paper_top1", "paper_top5", "paper_depth"]
    records = [dict(c, group=c["group_name"], p_holm=math.nan, p_equiv=math.nan, verdict="", metric=s.metric)
               for c in out]
    table = pd.DataFrame.from_records(records, columns=columns)
    for col in comparisons.COUNTS:
        table[col] = table[col].astype("int64")
    for col in ("baseline", "p_exact"):
        table[col] = table[col].astype("bool")
    table.attrs.update(metadata(table, table_id, spec, group_keys, row_keys, runs, s))
    table.attrs["settings"] = {**dataclasses.asdict(s), "secondary": secondary}
    classes = {canon(v) for v in mine[keys.NUM_CLASSES]} - {None} if keys.NUM_CLASSES in mine else set()
    table.attrs["num_classes"] = next(iter(classes)) if len(classes) == 1 else None
    positions = {key: i for i, key in enumerate((c["group"], c["row"]) for c in out)}
    lines = comparisons.seed_lines(assigned, names, [positions[k] for k in zip(assigned["group"], assigned["row"])], s)
    table.attrs["seeds"] = {"columns": list(lines.columns), "records": lines.to_dict("records")}

    if strict:
        if table.empty:
            raise MissingRowsError(f"table {table_id}: no runs")
        bad = table[table["n"] == 0]
        if len(bad):
            lines = [f"{' / '.join(show(r[k]) for k in group_keys)}: {r['label']} ({r['status']})"
                     for r in bad.to_dict("records")]
            raise MissingRowsError(f"table {table_id}: {len(bad)} row(s) without a finished run: " + "; ".join(lines))
    return table


def seeds(table: pd.DataFrame) -> pd.DataFrame:
    """The per-run lines behind `table` (:func:`nlstudy.report.comparisons.seed_lines`): what
    ``<id>_runs.csv`` holds."""
    lines = table.attrs.get("seeds") or {"columns": list(comparisons.SEED_COLUMNS), "records": []}
    return pd.DataFrame.from_records(lines["records"], columns=lines["columns"])


def varying_keys(assigned: pd.DataFrame, group_keys: Sequence[str]) -> list[str]:
    """The group keys whose value differs between the groups of `assigned`."""
    return [k for i, k in enumerate(group_keys) if len({g[i] for g in assigned["group"]}) > 1]


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


def _pick_baseline(cells: list[dict], spec: TableSpec) -> dict | None:
    if spec.reference is not None:
        return next((c for c in cells if spec.reference(c)), None)
    for c in cells:
        if c["baseline"]:
            return c
    if spec.fallback_baseline is not None:
        for c in cells:
            if spec.fallback_baseline(c):
                return c
    return None


# --------------------------------------------------------------------------------------------------
# curves over epochs
# --------------------------------------------------------------------------------------------------

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

    history: the long frame of :func:`nlstudy.report.records.history_frame`. assigned: the row
    assignment of one table (:func:`assign_rows`); its finished runs count. x: ``"epoch"`` or
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
