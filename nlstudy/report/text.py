"""Config values as text: the canonical form of a value, table cells, row labels, group names, and a
table's title and footnotes.

:func:`canon` is the one form every layer of the report compares values in (``50.0`` and ``50`` are
one depth, a placement map one string); :func:`show` turns a canonical value into a cell. A table's
title is its spec's, plus what the spec says it states about the runs (:func:`title`), read from the
runs themselves: a title never claims a setting the runs did not have.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from nlstudy import keys
from nlstudy.choices import ARCH_LABELS, BLOCK_LABELS, KINETICS, NO_BLOCKS, NONLOCAL
from nlstudy.report import stats
from nlstudy.report.stats import trivial_top5

ANY = "*"  # wildcard: a key that does not apply to this run (see nlstudy.report.tables)


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


def short(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def block_count(value: Any) -> int | None:
    """How many blocks a canonical placement map places ('{"res3":[1],"res4":[1]}' -> 2); None for a preset."""
    if not (isinstance(value, str) and value.startswith("{")):
        return None
    try:
        tree = json.loads(value)
    except ValueError:
        return None
    return sum(len(v) for v in tree.values() if isinstance(v, list)) if isinstance(tree, dict) else None


def group_text(group_keys: Sequence[str], values: Mapping[str, Any]) -> str:
    """A group's name from the keys that vary between groups: "distance=8, task=within" ("" if none)."""
    return ", ".join(f"{short(k)}={show(values[k])}" for k in group_keys)


def row_label(values: Mapping[str, Any], row_keys: Sequence[str], paper: tuple[str, str] | None) -> str:
    """A row's label: the paper's (model, variant) where it has the row, else "NL C2D 1-block, key=value"."""
    if paper is not None:
        return f"{paper[0]} {paper[1]}"
    arch = ARCH_LABELS.get(values.get(keys.ARCH), show(values.get(keys.ARCH)))
    if values.get(keys.ARCH) is None:
        arch = "C2D"
    blocks = values.get(keys.NONLOCAL_BLOCKS)
    used = {keys.ARCH, keys.NONLOCAL_BLOCKS, keys.BLOCK}
    if blocks == NO_BLOCKS:
        head = f"{arch} baseline"
    elif blocks is None:
        head = arch
    else:
        block = BLOCK_LABELS.get(values.get(keys.BLOCK), show(values.get(keys.BLOCK)))
        if values.get(keys.BLOCK) is None:
            block = "NL"
        count = block_count(blocks)  # a map: its number of blocks first, as the presets' names say it
        head = f"{block} {arch} {show(blocks)}" if count is None else \
            f"{block} {arch} {count} block{'s' if count != 1 else ''} ({show(blocks)})"
    rest = [f"{short(k)}={show(values[k])}" for k in row_keys if k not in used and values.get(k) != ANY]
    return ", ".join([head, *rest])


# --------------------------------------------------------------------------------------------------
# title and footnotes
# --------------------------------------------------------------------------------------------------


def title(spec: Any, runs: pd.DataFrame, table_id: str) -> str:
    """The title of `spec` (a :class:`~nlstudy.report.specs.TableSpec`), then in brackets what
    ``spec.setting`` says the title states about the runs, each read from the table's runs with
    inserted blocks and shown only where it is the same in all of them:
    "Table 2a: pairwise function (1 non-local block at res4[0])"."""
    if not spec.setting:
        return spec.title
    mine = runs[runs["table"] == table_id] if "table" in runs.columns else runs.iloc[0:0]
    if keys.NONLOCAL_BLOCKS in mine.columns:
        placed = mine[[canon(v) not in (NO_BLOCKS, None) for v in mine[keys.NONLOCAL_BLOCKS]]]
    else:
        placed = mine.iloc[0:0]
    parts = [_blocks_text(placed) if key == keys.NL_POSITIONS else _key_text(placed, key) for key in spec.setting]
    parts = [p for p in parts if p]
    return f"{spec.title} ({'; '.join(parts)})" if parts else spec.title


def _values(runs: pd.DataFrame, key: str) -> set:
    return {canon(v) for v in runs[key]} - {None} if key in runs.columns else set()


def _only(runs: pd.DataFrame, key: str) -> Any:
    """The one value `key` has in `runs` (absent values left out), else None."""
    seen = _values(runs, key)
    return next(iter(seen)) if len(seen) == 1 else None


def _key_text(runs: pd.DataFrame, key: str) -> str | None:
    value = _only(runs, key)
    return None if value is None else f"{short(key)}={show(value)}"


def _blocks_text(runs: pd.DataFrame) -> str | None:
    """The number and place of the inserted blocks: "2 non-local blocks at res3[1]+res4[1]" where every
    run has them at the same positions (``derived.nl_positions``), else "5 non-local blocks" where the
    number is the same, else "nonlocal_blocks=5-block" where the placement setting is; None where none
    of these is the same in every run."""
    kinds = _values(runs, keys.BLOCK) or {NONLOCAL}  # the block key's default
    kind = next(iter(kinds)) if len(kinds) == 1 else None
    noun = "non-local" if kind == NONLOCAL else BLOCK_LABELS.get(kind, "inserted")
    positions = _only(runs, keys.NL_POSITIONS)  # canonical JSON of a list: '["res3.1","res4.1"]'
    positions = json.loads(positions) if isinstance(positions, str) and positions.startswith('["') else []
    if positions:
        n = len(positions)
        return f"{n} {noun} block{'s' * (n != 1)} at {_placement(positions)}"
    count = _only(runs, keys.NL_COUNT)
    if isinstance(count, int) and count > 0:
        return f"{count} {noun} block{'s' * (count != 1)}"
    return _key_text(runs, keys.NONLOCAL_BLOCKS)


def _placement(positions: Sequence[str]) -> str:
    """["res3.1", "res4.1"] -> "res3[1]+res4[1]", as a placement map is shown in a row label."""
    where: dict[str, list[int]] = {}
    for position in positions:
        stage, _, index = str(position).rpartition(".")
        if not stage or not index.isdigit():
            return ", ".join(str(p) for p in positions)
        where.setdefault(stage, []).append(int(index))
    return show(canon(where))


METRIC_NAMES = {  # a logged metric's name in a table's header and sentences
    keys.TEST_TOP1: "test top-1", keys.TEST_TOP5: "test top-5",
    keys.VAL_TOP1_BEST: "val top-1 (best)", keys.VAL_TOP5_BEST: "val top-5 (at best top-1)",
}
METRIC_NOTES = {
    keys.TEST_TOP1: "top-1 accuracy (%) on the test split of the model each run ends with",
    keys.TEST_TOP5: "top-5 accuracy (%) on the test split of the model each run ends with",
    keys.VAL_TOP1_BEST: ("the best validation top-1 (%) over the epochs, biased upward by the choice of the "
                         "epoch (a secondary measure)"),
    keys.VAL_TOP5_BEST: "validation top-5 (%) at the epoch of the best top-1",
}


def metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric)


def metadata(table, table_id, spec, group_keys, row_keys, runs, settings) -> dict[str, Any]:
    """A built table's ``attrs``: table_id, title (:func:`title`), group / row keys, the group keys that
    vary, and the footnotes around the statistics' (``notes_head``, ``notes_tail``: :func:`footnotes` puts
    the family's between them). `spec` is the table's :class:`~nlstudy.report.specs.TableSpec`, `settings`
    its :class:`~nlstudy.report.comparisons.Settings`."""
    varying = [k for k in group_keys if table[k].map(lambda v: json.dumps(v, default=str)).nunique() > 1]
    constant = {k: table[k].iloc[0] for k in group_keys if k not in varying and len(table)}
    metric = settings.metric
    shown = [m for m in settings.secondary if m.replace("/", "_") in table.columns]
    note = (f"{metric_name(metric)} (`{metric}`): {METRIC_NOTES.get(metric, 'the logged metric')}, "
            "mean ± std over seeds (the primary measure: every Δ, test and verdict is of it)")
    if settings.fallback:
        note += (f"; no run of this table logged `{settings.fallback}` (run with its test: "
                 f"`--test_after_fit=true`), so the table falls back to `{metric}`")
    notes = [note + "."]
    if shown:
        notes.append("Beside it: " + "; ".join(f"{metric_name(m)} (`{m}`): {METRIC_NOTES.get(m, 'logged')}"
                                               for m in shown) + ", mean ± std over seeds.")
    if trivial_top5(table):
        notes.append("top-5 columns left out: 100 % in every run (the task has at most 5 classes).")
    notes.append("n: counted seeds (the latest finished run of each seed that logged the metric); failed, "
                 "running, unscored (finished without the metric) and missing (planned by the sweep, never "
                 "started) seeds in brackets; a duplicated seed counts once (its latest run). The value of "
                 f"every run is in `{table_id}_runs.csv`.")
    tail = []
    if table["paper_top1"].notna().any():
        datasets = {show(v) for v in table.get(keys.DATASET, pd.Series(dtype=object))}
        note = (f"paper: Wang et al. (CVPR 2018), Table {table_id}: Kinetics-400 top-1 / top-5 (validation), "
                "ResNet of the same depth")
        other = sorted(d for d in datasets if d.lower() != KINETICS)
        if other:
            note += (f"; our runs are on {', '.join(other)}, not Kinetics, so the paper column is for "
                     "orientation only")
        if keys.DEPTH in table and (table["paper_top1"].notna() & (table["paper_depth"] != table[keys.DEPTH])).any():
            note += "; (R50) / (R101): no published number at our depth, shown at that depth"
        tail.append(note + ".")
    if constant:
        tail.append("All rows: " + ", ".join(f"{k}={show(v)}" for k, v in constant.items()) + ".")
    tail.extend(spec.notes)
    return dict(table_id=table_id, title=title(spec, runs, table_id), group_keys=list(group_keys),
                row_keys=list(row_keys), varying_group_keys=varying, notes_head=notes, notes_tail=tail)


def family_notes(table: pd.DataFrame) -> list[str]:
    """The footnotes of a table's statistics, once its family is known (``attrs["family"]``,
    :func:`nlstudy.report.family.apply`)."""
    if not table["baseline"].any():
        return ["No baseline row (no run without inserted blocks): Δ, tests and relative cost left blank."]
    settings = table.attrs.get("settings", {})
    fam = table.attrs.get("family", {"scope": "table", "size": 0, "tables": 1})
    metric, margin, looks = settings.get("metric", ""), settings.get("margin", stats.MARGIN), settings.get("looks")
    unit = "points" if "top" in metric else "units"
    if fam["scope"] == "report":
        scope = (f"the {fam['size']} distinct comparisons of this report ({fam['tables']} table(s); a "
                 "comparison that several tables show on the same runs counts once)")
    else:
        scope = f"the {fam['size']} comparison(s) of this table on its own"
    notes = [
        "Δ, params, FLOPs: relative to the group's baseline (its first row). Δ [95% CI]: the difference of the "
        "means, with the 95 % Welch interval of that difference.",
        "p: Welch's t-test of the difference, two-sided. p Holm: Holm-adjusted over " + scope + ". p equiv: the "
        f"two one-sided Welch tests (TOST) of |Δ| ≥ {margin:g} {unit}, Holm-adjusted over the same family. "
        f"MDE: the smallest |Δ| a two-sided t-test at α = {stats.ALPHA:g} detects with {stats.POWER * 100:.0f} % power "
        "at the row's n and the pooled spread of the two sides. n<2: fewer than two seeds on a side, not tested.",
        f"verdict: better / worse when p Holm < {stats.ALPHA:g}, equivalent (the same within ±{margin:g}) when "
        f"p equiv < {stats.ALPHA:g}, else undecided (neither shown: more seeds would tell).",
    ]
    if table["p_exact"].any():
        notes.append("(exact): no spread over seeds on either side, so the means are compared exactly.")
    if looks and len(looks) > 1:
        notes.append(f"Seeds were added until decided, with looks planned at n = {', '.join(map(str, looks))}: each "
                     "p is divided by its look's share of α (`alpha_share` in the csv) before Holm, so the "
                     "repeated looks keep α.")
    notes.append(f"α = {stats.ALPHA:g}; margin = ±{margin:g} {unit} of `{metric}`; family: {fam['size']} "
                 f"comparison(s){' of this report' if fam['scope'] == 'report' else ' of this table'}.")
    return notes


def footnotes(table: pd.DataFrame) -> list[str]:
    """Every footnote of a built table: what its numbers are, its statistics and family, then the rest."""
    return [*table.attrs.get("notes_head", []), *family_notes(table), *table.attrs.get("notes_tail", [])]
