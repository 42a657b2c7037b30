"""Each arm at its own learning rate: pick it on validation from a per-arm sweep, then write it into the study's
sweep file (rows under `model`, each with its `optim.lr`), so that no arm runs at a rate tuned for another.

    choose_by_arm(runs, arm_keys)         {arm: (rate, mean val top-1, seeds)}: the rate with the best mean
                                          validation top-1 of each arm
    with_rates(sweep_text, chosen, ...)   the study's sweep file with each row's optim.lr set to its arm's rate
    write_chosen(runs_root, study, out)   every study file of PLAN with the rates its rate sweep chose, under `out`
                                          (`python -m nlstudy.analysis.tuning`, what `make analysis` runs)

Plain functions on a frame of runs (one row per run, flat config keys as columns: `study.runs_frame` joined
with the runs' summaries) and on sweep-file text.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from nlstudy import files, keys

LR = keys.LR


def arm_of(values: Mapping[str, Any], arm_keys: Sequence[str]) -> str:
    """An arm's name: its values of `arm_keys` as compact JSON (the same for equal values, order-free; a placement
    map counts as its compact JSON text, whether the frame holds the map (`offline.read_runs`) or its text
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


# Which study files take their rates from which rate sweep (its table id). The committed files keep the placeholder
# rate; the chosen ones are written under the analysis runs root, never into sweeps/demo/study/.
PLAN: dict[str, tuple[str, ...]] = {
    "reach_lr": ("reach.yaml", "reach_112.yaml", "data_steps.yaml"),
    "far_lr": ("far_mixers.yaml",),
}
ARM_KEYS = (keys.NONLOCAL_BLOCKS, keys.BLOCK, keys.ARCH)  # what makes an arm (its rate is chosen per arm)
# arms a study file places differently from its rate sweep, at the same map size: reach_112's 7x7 block sits at
# res4 of 112-px frames, the rate sweep's 7x7 block at res3 of 56-px frames
LIKE: dict[str, dict[str, str]] = {"reach_112.yaml": {'{"res4":[1]}': '{"res3":[1]}'}}


def with_like(chosen: Mapping[str, tuple[float, float, int]], like: Mapping[str, str]) -> dict[str, tuple[float, float, int]]:
    """`chosen` plus, for each (placement -> placement of the rate sweep) in `like`, the arms of that placement
    again under the other one (their rate, mean and runs)."""
    out = dict(chosen)
    for placement, source in like.items():
        for arm, value in chosen.items():
            values = json.loads(arm)
            if values.get(keys.NONLOCAL_BLOCKS) == source:
                values[keys.NONLOCAL_BLOCKS] = placement
                out[json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)] = value
    return out


def rate_runs(runs_root: str | os.PathLike, table: str) -> pd.DataFrame:
    """The finished runs of rate sweep `table` under `runs_root`, with their summaries (val/top1_best); a
    ValueError naming the table and the sweep that makes it when there are none."""
    from nlstudy.analysis import study  # torch-heavy; only when the runs are read
    from nlstudy.report.offline import read_runs

    frame = study.runs_frame(runs_root, table)
    if frame.empty:
        raise ValueError(f"no runs of the rate sweep {table!r} under {runs_root}: run "
                         f"`nlstudy sweep sweeps/demo/study/{table}.yaml --runs-root {runs_root}` first")
    runs = read_runs(frame["run_dir"].unique()).runs
    return runs[runs["state"] == "finished"]


def write_chosen(runs_root: str | os.PathLike, study_dir: str | os.PathLike, out_dir: str | os.PathLike,
                 plan: Mapping[str, Sequence[str]] = PLAN) -> list[Path]:
    """Each study file of `plan` (under `study_dir`) with its arms' rates chosen on validation from the runs of its
    rate sweep under `runs_root`, written whole to `out_dir` under the same name. The same runs give the same
    files, byte for byte (a fresh clone reproduces them). Returns the files written."""
    written = []
    for table, names in plan.items():
        chosen = choose_by_arm(rate_runs(runs_root, table), ARM_KEYS)
        for name in names:
            text = with_rates((Path(study_dir) / name).read_text(encoding="utf-8"),
                              with_like(chosen, LIKE.get(name, {})), ARM_KEYS)
            out = Path(out_dir) / name
            out.parent.mkdir(parents=True, exist_ok=True)
            files.write_text(out, f"# generated by python -m nlstudy.analysis.tuning from {Path(study_dir).as_posix()}/"
                                  f"{name} and the runs of {table}; do not edit\n" + text)
            written.append(out)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nlstudy.analysis.tuning",
                                     description="Write the study's sweep files with each arm's learning rate chosen "
                                                 "on validation by its rate sweep.")
    parser.add_argument("--runs", default="runs/analysis", help="runs root of the rate sweeps (default: runs/analysis)")
    parser.add_argument("--study", default="sweeps/demo/study", help="the committed study files (default: %(default)s)")
    parser.add_argument("--out", default=None, help="where the chosen files go (default: <runs>/study)")
    args = parser.parse_args(argv)
    try:
        written = write_chosen(args.runs, args.study, args.out or Path(args.runs) / "study")
    except (ValueError, FileNotFoundError) as e:
        print(f"nlstudy.analysis.tuning: error: {e}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path.as_posix()} ({path.read_text(encoding='utf-8').splitlines()[1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
