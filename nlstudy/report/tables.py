"""Ablation tables: pure functions from the tidy runs frame to one table frame per ablation.

A table is described by a :class:`TableSpec` in the :data:`TABLES` registry: which config keys
identify a row (the variants), which keys split the table into groups that each have their own
baseline, and how a row maps to the paper's (model, variant) naming in ``wang2018_table2.csv``.
Any other config key that varies among a table's runs (seed, ``derived.*`` and per-run paths
excepted) also splits groups, so runs that differ in something the spec did not foresee are never
averaged together. A table id found in the runs but absent from the registry still gets a generic
table: its rows are the distinct values of the ``model.*`` keys that vary among its runs, and every
other varying axis (``data.*``, ``trainer.*``...) splits groups, so each setting of those axes is
compared with its own baseline.

Row identity: the keys of the non-local block (``model.backbone.nl.*``, ``model.backbone.block``)
mean nothing for a run without inserted blocks (``nonlocal_blocks == "none"``), so they are set
to the wildcard :data:`ANY` there; a baseline run with a wildcard in a group key joins every group
that matches it otherwise (a 2a grid ``none x pairwise`` gives one baseline row, not four).

:func:`build_table` returns one row per (group, variant) with the numbers (means, spreads, counts,
deltas, Welch's t-test against the baseline, relative cost, the paper's numbers) as plain columns;
formatting is the renderers' job. Table metadata (title, group / row keys, footnotes) rides in
``table.attrs``. :func:`table_rows` fixes the row order (each group's baseline first, then the rows
sorted by value), which the figures follow too; :func:`curves` turns the history into mean ± std
per row and epoch.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from nlstudy import keys
from nlstudy.registry import lookup
from nlstudy.report.collect import FIXED_COLUMNS

DATASET, FRAMES, SIZE, TASK = keys.DATASET, keys.FRAMES, keys.SIZE, keys.TASK

ANY = "*"  # wildcard: a key that does not apply to this run (see the module docstring)
NL_KEYS = (
    keys.BLOCK, keys.PAIRWISE, keys.SUBSAMPLE, keys.SUBSAMPLE_ORDER, keys.MODE, keys.INTER_RATIO, keys.SCALE,
)
NO_BLOCKS = "none"
BASELINE_ARCH = "c2d"
KINETICS = "kinetics"

# parts of a config key that mark it as a per-run detail rather than an ablation axis
NOISE_PARTS = ("dir", "path", "ckpt", "logger", "callbacks", "wandb", "root")

# preferred order of values within a table (the paper's order); other values follow, sorted
VALUE_ORDER: dict[str, tuple] = {
    keys.NONLOCAL_BLOCKS: (NO_BLOCKS, "1-block", "5-block", "10-block", "res2", "res3", "res4", "res5"),
    keys.PAIRWISE: ("gaussian", "embedded_gaussian", "dot_product", "concatenation"),
    keys.MODE: ("space", "time", "spacetime"),
    keys.ARCH: ("c2d", "i3d_3x3x3", "i3d_3x1x1"),
    keys.BLOCK: ("residual", "nonlocal", "global_context", "squeeze_excitation"),
    keys.SUBSAMPLE: (False, True),
    keys.SUBSAMPLE_ORDER: ("after", "before"),
    TASK: ("far", "near"),
}
ARCH_NAMES = {"c2d": "C2D", "i3d_3x1x1": "I3D 3x1x1", "i3d_3x3x3": "I3D 3x3x3"}
BLOCK_NAMES = {"nonlocal": "NL", "residual": "Res", "global_context": "GC", "squeeze_excitation": "SE"}
MODE_NAMES = {"space": "space-only", "time": "time-only", "spacetime": "spacetime"}

METRICS = {  # output column -> summary key
    "top1": keys.VAL_TOP1_BEST,
    "top5": keys.VAL_TOP5_BEST,
    "test_top1": keys.TEST_TOP1,
    "test_top5": keys.TEST_TOP5,
}
FAILED_STATES = ("failed", "crashed", "killed")
ALPHA = 0.05  # significance level of the top-1 test against the baseline
SIG_MARK = "*"  # marks p < ALPHA: after Δ top-1 in the tables, above the bar in the figure


class MissingRowsError(ValueError):
    """strict=True and a row has no finished run."""


Row = Mapping[str, Any]  # one row's canonical key values
PaperMap = Callable[[Row], "tuple[str, str] | None"]


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """How to build one ablation table.

    title: the heading. row_keys: config keys whose values identify a row (variant).
    group_keys: keys that split the table into groups, each with its own baseline.
    paper: maps a row's values to the paper's (model, variant), or None where the paper has no such row.
    fallback_baseline: picks the reference row of a group that has no plain (no block, C2D) row.
    notes: footnotes of this table (what its axes mean), after the common ones.
    """

    title: str
    row_keys: tuple[str, ...]
    group_keys: tuple[str, ...] = (DATASET, keys.DEPTH)
    paper: PaperMap | None = None
    fallback_baseline: Callable[[Row], bool] | None = None
    notes: tuple[str, ...] = ()


def _is_plain(row: Row) -> bool:
    return row.get(keys.NONLOCAL_BLOCKS) == NO_BLOCKS and row.get(keys.ARCH, BASELINE_ARCH) == BASELINE_ARCH


def _nl(row: Row) -> bool:
    """An inserted block that is the non-local block (the default where the key is absent)."""
    return row.get(keys.NONLOCAL_BLOCKS) not in (NO_BLOCKS, None) and row.get(keys.BLOCK) in (None, "nonlocal")


def _arch(row: Row) -> str:
    return row.get(keys.ARCH) or BASELINE_ARCH


def _paper_2a(row: Row):
    if _is_plain(row):
        return ("C2D", "baseline")
    if _arch(row) == "c2d" and _nl(row) and row.get(keys.NONLOCAL_BLOCKS) == "1-block":
        return ("NL C2D 1-block", row.get(keys.PAIRWISE) or "embedded_gaussian")
    return None


def _paper_2b(row: Row):
    if _is_plain(row):
        return ("C2D", "baseline")
    if _arch(row) == "c2d" and _nl(row) and row.get(keys.NONLOCAL_BLOCKS) in ("res2", "res3", "res4", "res5"):
        return ("NL C2D 1-block", row[keys.NONLOCAL_BLOCKS])
    return None


def _paper_2c(row: Row):
    if _is_plain(row):
        return ("C2D", "baseline")
    if _arch(row) == "c2d" and _nl(row) and row.get(keys.NONLOCAL_BLOCKS) in ("1-block", "5-block", "10-block"):
        return ("NL C2D", row[keys.NONLOCAL_BLOCKS])
    return None


def _paper_2d(row: Row):
    if _is_plain(row):
        return ("C2D", "baseline")
    if _arch(row) == "c2d" and _nl(row) and row.get(keys.NONLOCAL_BLOCKS) == "5-block":
        mode = row.get(keys.MODE) or "spacetime"
        return ("NL C2D 5-block", MODE_NAMES.get(mode, mode))
    return None


def _paper_2e(row: Row):
    blocks = row.get(keys.NONLOCAL_BLOCKS)
    if _is_plain(row):
        return ("C2D", "baseline")
    if blocks == NO_BLOCKS and _arch(row) in ("i3d_3x3x3", "i3d_3x1x1"):
        return ("I3D", _arch(row).removeprefix("i3d_"))
    if _arch(row) == "c2d" and _nl(row) and blocks == "5-block":
        return ("NL C2D", "5-block")
    return None


def _paper_2f(row: Row):
    blocks = row.get(keys.NONLOCAL_BLOCKS)
    if _is_plain(row):
        return ("C2D", "baseline")
    if _arch(row) == "i3d_3x1x1" and blocks == NO_BLOCKS:
        return ("I3D", "baseline")
    if _arch(row) == "i3d_3x1x1" and _nl(row) and blocks == "5-block":
        return ("NL I3D", "5-block")
    return None


def _paper_2g(row: Row):
    """Table 2f's rows at 128 frames, each named "128-frame"."""
    named = _paper_2f(row) if row.get(FRAMES) == 128 else None
    return (named[0], "128-frame") if named else None


TABLES: dict[str, TableSpec] = {
    "2a": TableSpec("Table 2a: pairwise function (1 non-local block in res4)",
                    (keys.NONLOCAL_BLOCKS, keys.PAIRWISE), paper=_paper_2a),
    "2b": TableSpec("Table 2b: stage of the single non-local block", (keys.NONLOCAL_BLOCKS,), paper=_paper_2b),
    "2c": TableSpec("Table 2c: number of non-local blocks", (keys.NONLOCAL_BLOCKS,), paper=_paper_2c),
    "2d": TableSpec("Table 2d: space-only, time-only and spacetime non-local (5 blocks)",
                    (keys.NONLOCAL_BLOCKS, keys.MODE), paper=_paper_2d),
    "2e": TableSpec("Table 2e: non-local C2D vs 3D convolution (I3D)", (keys.ARCH, keys.NONLOCAL_BLOCKS),
                    paper=_paper_2e),
    "2f": TableSpec("Table 2f: non-local I3D", (keys.ARCH, keys.NONLOCAL_BLOCKS), paper=_paper_2f),
    "2g": TableSpec("Table 2g: longer clips (128 frames)", (keys.ARCH, keys.NONLOCAL_BLOCKS, FRAMES),
                    paper=_paper_2g),
    "subsample": TableSpec("Subsampling of the pairwise path (phi, g)",
                           (keys.NONLOCAL_BLOCKS, keys.SUBSAMPLE, keys.SUBSAMPLE_ORDER)),
    "resolution": TableSpec("Non-local block vs input resolution", (keys.NONLOCAL_BLOCKS,),
                            group_keys=(DATASET, keys.DEPTH, FRAMES, SIZE)),
    "inter_ratio": TableSpec("Inner width of the non-local block (channels / C)",
                             (keys.NONLOCAL_BLOCKS, keys.INTER_RATIO)),
    "scale": TableSpec("1/sqrt(d) scaling of the embedded-Gaussian logits", (keys.NONLOCAL_BLOCKS, keys.SCALE)),
    "control": TableSpec("Control: the same positions with a plain residual, non-local, "
                         "global-context or squeeze-excitation block",
                         (keys.BLOCK, keys.NONLOCAL_BLOCKS),
                         fallback_baseline=lambda row: row.get(keys.BLOCK) == "residual"),
    "locality": TableSpec("Locality control: long-range (far) vs local-evidence (near) task",
                          (keys.NONLOCAL_BLOCKS,), group_keys=(DATASET, keys.DEPTH, TASK)),
    "receptive_field": TableSpec(
        "Receptive field: top-1 vs the distance between the two patches of the embedded task",
        (keys.NONLOCAL_BLOCKS,), group_keys=(DATASET, keys.DEPTH, TASK, keys.DISTANCE),
        notes=("distance: pixels between the two patches (Chebyshev, corner to corner); with task=within "
               "both patches are in one frame exactly that far apart, with task=far it is a minimum and the "
               "patches are in different frames.",)),
    "data_efficiency": TableSpec(
        "Data efficiency: top-1 vs the number of training clips of the embedded task",
        (keys.NONLOCAL_BLOCKS,), group_keys=(DATASET, keys.DEPTH, TASK, keys.TRAIN_SAMPLES),
        notes=("train_samples: clips in the training split; the validation clips are drawn independently "
               "of it, so every row is scored on the same validation set. With a fixed trainer.max_epochs a "
               "smaller training set also means fewer optimiser steps.",)),
    "attention": TableSpec(
        "Attention-map runs: pairwise function and mode of one non-local block",
        (keys.NONLOCAL_BLOCKS, keys.PAIRWISE, keys.MODE)),
}


def table_spec(table_id: str) -> TableSpec:
    """The registered spec of `table_id`, or a ValueError listing the valid ids."""
    return lookup(TABLES, table_id, "table")


# --------------------------------------------------------------------------------------------------
# value helpers
# --------------------------------------------------------------------------------------------------


def canon(value: Any) -> Any:
    """A hashable, comparable form of a config value: integral floats -> int (a column with a gap
    turns 50 into 50.0), lists / dicts -> canonical JSON, NaN -> None."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return int(value) if value.is_integer() else value
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"))
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def show(value: Any) -> str:
    """A canonical value as a table cell: placement maps as res3[1,3]+res4[1,3,5]."""
    if value is None:
        return "?"
    if value == ANY:
        return "any"
    if isinstance(value, str) and value.startswith("{"):
        try:
            tree = json.loads(value)
        except ValueError:
            return value
        return "+".join(f"{k}[{','.join(str(i) for i in v)}]" if isinstance(v, list) else f"{k}:{v}"
                        for k, v in tree.items())
    if isinstance(value, str) and value.startswith("["):
        return value.replace('"', "")
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


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
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (len(order), float(value), "")
    return (len(order) + 1, 0, str(value))


def short(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def group_text(group_keys: Sequence[str], values: Mapping[str, Any]) -> str:
    """A group's name from the keys that vary between groups: "distance=8, task=within" ("" if none)."""
    return ", ".join(f"{short(k)}={show(values[k])}" for k in group_keys)


def config_columns(runs: pd.DataFrame) -> list[str]:
    """The config columns of a runs frame (``runs.attrs["config_columns"]``, else every column that is
    neither fixed nor a metric: metric keys hold a "/" or are wandb's ``epoch``)."""
    listed = runs.attrs.get("config_columns")
    if listed is not None:
        return [c for c in listed if c in runs.columns]
    return [c for c in runs.columns if c not in FIXED_COLUMNS and "/" not in c and c != "epoch"
            and not c.startswith("_")]


def _is_axis(key: str) -> bool:
    """Could `key` be an ablation axis (as opposed to the seed, a derived fact, a per-run path)?"""
    if key in (keys.SEED, keys.TABLE) or key.startswith(keys.DERIVED):
        return False
    lowered = key.lower()
    return not any(part in lowered for part in NOISE_PARTS)


# --------------------------------------------------------------------------------------------------
# rows and groups
# --------------------------------------------------------------------------------------------------


def _identity(config: Mapping[str, Any], wanted: Sequence[str]) -> dict[str, Any]:
    values = {k: canon(config.get(k)) for k in set(wanted) | {keys.NONLOCAL_BLOCKS, keys.ARCH, keys.BLOCK}}
    if values.get(keys.NONLOCAL_BLOCKS) == NO_BLOCKS:
        for k in NL_KEYS:
            values[k] = ANY
    return values


MODEL_PREFIX = "model."  # in a generic table, the varying keys under it are the rows; the others, groups


def resolve_spec(table_id: str, runs: pd.DataFrame) -> TableSpec:
    """The registered spec, or for an unknown id a generic one built from the keys that vary: the
    varying ``model.*`` keys are the rows, every other varying axis (``data.*``, ``trainer.*``...)
    a group key, so each setting of those axes has its own baseline."""
    if table_id in TABLES:
        return TABLES[table_id]
    mine = runs[runs["table"] == table_id] if "table" in runs.columns else runs
    varying = []
    for key in config_columns(mine):
        if key == DATASET or not _is_axis(key):
            continue
        values = {canon(v) for v in mine[key]}
        if len(values) > 1:
            varying.append(key)
    rows = tuple(sorted(k for k in varying if k.startswith(MODEL_PREFIX)))
    axes = tuple(sorted(k for k in varying if not k.startswith(MODEL_PREFIX)))
    title = f"Table {table_id}"
    if rows:
        title += ": " + ", ".join(short(k) for k in rows)
    if axes:
        title += (" at each " if rows else ": ") + ", ".join(short(k) for k in axes)
    return TableSpec(title=title, row_keys=rows, group_keys=(DATASET, *axes))


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
        if key in row_keys or key in spec.group_keys or not _is_axis(key):
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
        "label": _label(values, row_keys, paper), "model": paper[0] if paper else None,
        "variant": paper[1] if paper else None, "baseline": _is_plain(values),
        **it["metrics"], **{k: values[k] for k in dict.fromkeys([*group_keys, *row_keys])},
    }


def _label(values: Row, row_keys: Sequence[str], paper: tuple[str, str] | None) -> str:
    if paper is not None:
        return f"{paper[0]} {paper[1]}"
    arch = ARCH_NAMES.get(values.get(keys.ARCH), show(values.get(keys.ARCH)))
    if values.get(keys.ARCH) is None:
        arch = "C2D"
    blocks = values.get(keys.NONLOCAL_BLOCKS)
    used = {keys.ARCH, keys.NONLOCAL_BLOCKS, keys.BLOCK}
    if blocks == NO_BLOCKS:
        head = f"{arch} baseline"
    elif blocks is None:
        head = arch
    else:
        block = BLOCK_NAMES.get(values.get(keys.BLOCK), show(values.get(keys.BLOCK)))
        if values.get(keys.BLOCK) is None:
            block = "NL"
        head = f"{block} {arch} {show(blocks)}"
    rest = [f"{short(k)}={show(values[k])}" for k in row_keys if k not in used and values.get(k) != ANY]
    return ", ".join([head, *rest])


# --------------------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------------------


@functools.cache
def paper_numbers() -> pd.DataFrame:
    """The paper's Table 2 (Kinetics-400), packaged with nlstudy.report."""
    with importlib.resources.files("nlstudy.report").joinpath("wang2018_table2.csv").open() as f:
        return pd.read_csv(f, dtype={"table": str})


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
    baseline (:func:`welch_p`: NaN for the baseline row and with fewer than two seeds on a side),
    ``sig`` (p < :data:`ALPHA`) and ``p_exact`` (both sides without spread: compared exactly);
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
        c.update(_significance(c, base))
        c.update(_paper_cell(paper, table_id, c, group_keys))

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
    table.attrs.update(_metadata(table, table_id, spec, group_keys, row_keys, runs))

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
            res["top1_ci_low"], res["top1_ci_high"] = _t_interval(values)
            res["top1_values"] = values  # for the test against the baseline; not a table column
    for col, key in (("params", keys.PARAMS), ("flops", keys.FLOPS)):
        vals = pd.to_numeric(real[key], errors="coerce").dropna()
        res[col] = float(vals.median()) if len(vals) else math.nan
    return res


def _t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    n = len(values)
    if n < 3:
        return math.nan, math.nan
    mean, sem = values.mean(), values.std(ddof=1) / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + level / 2, df=n - 1) * sem)
    return max(float(mean - half), 0.0), min(float(mean + half), 100.0)  # accuracies live in [0, 100]


def trivial_top5(table: pd.DataFrame) -> bool:
    """Every run's top-5 is 100 %: a task with at most 5 classes, where the column says nothing."""
    top5 = table[[c for c in ("top5", "test_top5") if c in table.columns]].to_numpy(dtype=float).ravel()
    top5 = top5[~np.isnan(top5)]
    stds = table[[c for c in ("top5_std", "test_top5_std") if c in table.columns]].to_numpy(dtype=float).ravel()
    return bool(len(top5)) and bool((top5 == 100.0).all()) and bool(np.nan_to_num(stds).max(initial=0.0) == 0.0)


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


def welch_p(a: np.ndarray, b: np.ndarray) -> tuple[float, bool]:
    """Two-sided p-value of Welch's t-test of `a` against `b` (one value per seed), and whether it
    was decided exactly.

    NaN with fewer than two values on a side (no variance to test with). When both sides have zero
    variance the t statistic is 0/0 or x/0, so they are compared exactly: p = 1 for the same
    constant, 0 for different constants (``exact`` is then True).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return math.nan, False
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return (1.0 if a[0] == b[0] else 0.0), True
    with warnings.catch_warnings():  # one constant side is fine for Welch; scipy still warns about it
        warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue), False


def _significance(c: dict, base: dict | None) -> dict[str, Any]:
    if base is None or c is base:
        return {"p_top1": math.nan, "sig": False, "p_exact": False}
    p, exact = welch_p(c["top1_values"], base["top1_values"])
    return {"p_top1": p, "sig": bool(p < ALPHA), "p_exact": exact}


def _paper_cell(paper: pd.DataFrame, table_id: str, c: dict, group_keys: Sequence[str]) -> dict[str, Any]:
    none = {"paper_top1": math.nan, "paper_top5": math.nan, "paper_depth": math.nan}
    if c.get("model") is None:
        return none
    hits = paper[(paper["table"] == table_id) & (paper["model"] == c["model"]) & (paper["variant"] == c["variant"])]
    if hits.empty:
        return none
    depth = canon(c.get(keys.DEPTH))
    depth = depth if isinstance(depth, (int, float)) and not isinstance(depth, bool) else 50
    best = hits.iloc[(hits["depth"] - depth).abs().argsort(kind="stable").to_numpy()[0]]
    return {"paper_top1": float(best["top1"]), "paper_top5": float(best["top5"]), "paper_depth": int(best["depth"])}


def _metadata(table, table_id, spec, group_keys, row_keys, runs) -> dict[str, Any]:
    varying = [k for k in group_keys if table[k].map(lambda v: json.dumps(v, default=str)).nunique() > 1]
    constant = {k: table[k].iloc[0] for k in group_keys if k not in varying and len(table)}
    notes = ["top-1 / top-5: best validation accuracy (%) over the epochs (`val/top1_best`, "
             "`val/top5_best`), mean ± std over seeds; 95% CI: Student t over seeds (n ≥ 3), clipped to [0, 100]."]
    if trivial_top5(table):
        notes.append("top-5 columns left out: 100 % in every run (the task has at most 5 classes).")
    notes.append("n: finished seeds; failed, running and missing (planned by the sweep, never started) "
                 "seeds in brackets; a duplicated seed counts once (its latest run).")
    if table["baseline"].any():
        notes.append("Δ top-1, params, FLOPs: relative to the group's baseline (first row).")
        note = (f"p: Welch's t-test of top-1 over seeds against the group's baseline, two-sided, "
                f"not corrected for multiple comparisons; {SIG_MARK} p < {ALPHA:g}; "
                "n<2: fewer than two seeds on a side")
        if table["p_exact"].any():
            note += ("; (exact): no spread over seeds on either side, so the rows are compared exactly "
                     "(p = 1 for equal values, 0 otherwise)")
        notes.append(note + ".")
    else:
        notes.append("No baseline row (no run without inserted blocks): Δ and relative cost left blank.")
    if table["paper_top1"].notna().any():
        datasets = {show(v) for v in table.get(DATASET, pd.Series(dtype=object))}
        note = (f"paper: Wang et al. (CVPR 2018), Table {table_id}: Kinetics-400 top-1 / top-5, "
                "ResNet of the same depth")
        other = sorted(d for d in datasets if d.lower() != KINETICS)
        if other:
            note += (f"; our runs are on {', '.join(other)}, not Kinetics, so the paper column is for "
                     "orientation only")
        if keys.DEPTH in table and (table["paper_top1"].notna() & (table["paper_depth"] != table[keys.DEPTH])).any():
            note += "; (R50) / (R101): no published number at our depth, shown at that depth"
        notes.append(note + ".")
    if constant:
        notes.append("All rows: " + ", ".join(f"{k}={show(v)}" for k, v in constant.items()) + ".")
    notes.extend(spec.notes)
    return dict(table_id=table_id, title=spec.title, group_keys=list(group_keys), row_keys=list(row_keys),
                varying_group_keys=varying, footnotes=notes)


def table_ids(runs: pd.DataFrame, expected: pd.DataFrame | None = None) -> list[str]:
    """The table ids found in the runs (and planned sweeps): registry order, then the others sorted."""
    found = set(runs["table"].dropna()) if "table" in runs.columns else set()
    if expected is not None and "table" in expected.columns:
        found |= set(expected["table"].dropna())
    found = {str(t) for t in found}
    return [t for t in TABLES if t in found] + sorted(found - set(TABLES))


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
