"""Each arm at its own learning rate: pick it on validation from a per-arm sweep, then write it into the study's
sweep file (rows under `model`, each with its `optim.lr`), so that no arm runs at a rate tuned for another.

    choose_by_arm(runs, arm_keys)         {arm: (rate, mean val top-1, seeds)}: the rate with the best mean
                                          validation top-1 of each arm
    with_rates(sweep_text, chosen, ...)   the study's sweep file with each row's optim.lr set to its arm's rate

Plain functions on a frame of runs (one row per run, flat config keys as columns: `study.runs_frame` joined
with the runs' summaries) and on sweep-file text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import yaml

from nlstudy import keys

LR = "model.optim.lr"


def arm_of(values: Mapping[str, Any], arm_keys: Sequence[str]) -> str:
    """An arm's name: its values of `arm_keys` as compact JSON (the same for equal values, order-free; a placement
    map counts as its compact JSON text, whether the frame holds the map (`collect.read_runs`) or its text
    (`study.runs_frame`))."""
    return json.dumps({k: _cell(values.get(k)) for k in arm_keys}, sort_keys=True, separators=(",", ":"), default=str)


def choose_by_arm(runs: pd.DataFrame, arm_keys: Sequence[str], *, rate: str = LR,
                  metric: str = keys.VAL_TOP1_BEST) -> dict[str, tuple[float, float, int]]:
    """For each arm (the distinct values of `arm_keys` among `runs`), the `rate` whose runs have the best mean
    `metric` (ties: the smaller rate, the more conservative), with that mean and its number of runs. Runs without
    the metric (failed, still running) do not count; an arm none of whose runs has it raises a ValueError."""
    missing = [k for k in (*arm_keys, rate, metric) if k not in runs.columns]
    if missing:
        raise ValueError(f"choose_by_arm: the runs have no column {missing[0]!r}; columns: {sorted(runs.columns)}")
    chosen = {}
    for arm, rows in runs.groupby(runs[list(arm_keys)].apply(lambda r: arm_of(r, arm_keys), axis=1), sort=True):
        done = rows[pd.to_numeric(rows[metric], errors="coerce").notna()]
        if done.empty:
            raise ValueError(f"choose_by_arm: arm {arm} has no run with {metric}: run its rate sweep first")
        means = done.groupby(rate)[metric].agg(["mean", "size"]).reset_index()
        best = means.sort_values(["mean", rate], ascending=[False, True]).iloc[0]
        chosen[arm] = (float(best[rate]), float(best["mean"]), int(best["size"]))
    return chosen


def _cell(value: Any) -> Any:
    """A config value as a runs frame holds it (`study.runs_frame`): placement maps and lists as compact JSON."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return value


def _flat_row(row: Mapping[str, Any], prefix: str = "model") -> dict[str, Any]:
    """A sweep row under `model` ({backbone: {...}, optim: {...}}) as dotted keys, values as frame cells."""
    flat = keys.flatten({prefix: row})
    for key in list(flat):  # a placement map flattens to model.backbone.nonlocal_blocks.res3: put it back whole
        head = next((k for k in _WHOLE if key.startswith(k + ".")), None)
        if head is not None:
            flat.setdefault(head, {})
            flat[head][key[len(head) + 1:]] = flat.pop(key)
    return {k: _cell(v) for k, v in flat.items()}


def with_rates(sweep_text: str, chosen: Mapping[str, tuple[float, float, int]], arm_keys: Sequence[str]) -> str:
    """The sweep file `sweep_text` (YAML whose `parameters.model.values` are the rows) with each row's
    optim.lr set to its arm's chosen rate. An arm's keys a row leaves out take their demo defaults as the rate
    sweep's runs resolved them, so pass `arm_keys` as the rate sweep's runs name them; a row whose arm has no
    chosen rate raises a ValueError naming it. The file's comments are not kept: the header says where the rates
    came from instead."""
    sweep = yaml.safe_load(sweep_text)
    rows = sweep.get("parameters", {}).get("model", {}).get("values")
    if not isinstance(rows, list):
        raise ValueError("with_rates: the sweep has no `parameters.model.values` rows")
    known = [(json.loads(arm), value) for arm, value in chosen.items()]
    for row in rows:
        flat = _flat_row(row)
        match = [value for arm, value in known
                 if all(flat.get(k, _default(k)) == v or (_is_none(v) and k not in flat) for k, v in arm.items())]
        if len(match) != 1:
            raise ValueError(f"with_rates: no single chosen rate for the row {json.dumps(row, sort_keys=True)} "
                             f"({len(match)} arms match); chosen arms: {sorted(chosen)}")
        row.setdefault("optim", {})["lr"] = match[0][0]
    lines = [f"# learning rates chosen on validation per arm (nlstudy.analysis.tuning): "
             + "; ".join(f"{arm} -> {rate:g} (val top-1 {mean:.1f}, {n} run(s))" for arm, (rate, mean, n) in
                         sorted(chosen.items()))]
    return "\n".join(lines) + "\n" + yaml.safe_dump(sweep, sort_keys=False, default_flow_style=None, width=120)


# what an arm key a sweep row leaves out resolves to in the demo config (the rate sweep's runs record it so)
_DEFAULTS = {keys.BLOCK: "nonlocal", "model.backbone.arch": "c2d"}
_WHOLE = (keys.NONLOCAL_BLOCKS,)  # keys whose value is a map, kept whole (as the runs frame keeps them)


def _default(key: str) -> Any:
    return _DEFAULTS.get(key)


def _is_none(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
