"""Stand-ins in the runs frame: a run of one sweep that another sweep reused (nlstudy.sweep.standin) is filed
under each table that planned it, as a copy of the run it names."""

from __future__ import annotations

import pandas as pd

from nlstudy import keys


def file_stand_ins(runs: pd.DataFrame) -> pd.DataFrame:
    """`runs` with each stand-in's own run (config ``reused_from``: nlstudy.sweep.standin) replaced by a copy of
    the run it names, filed under the stand-in's ``table`` and ``sweep_id`` with its ``report.*`` settings (how
    that table compares; once per table: a table counts a run once); no stand-in is a row of its own, and the ``reused_from`` column goes. A stand-in whose run is not among
    `runs` is left out, its id in ``runs.attrs["unfiled_stand_ins"]`` (read_wandb fetches such runs first)."""
    if runs.empty or keys.REUSED_FROM not in runs.columns:
        return runs
    marked = runs[keys.REUSED_FROM].map(lambda v: isinstance(v, str) and bool(v))
    own, stand_ins = runs[~marked], runs[marked]
    filed = set(zip(own["run_id"], own["table"]))
    copies, unfiled = [], []
    for stand_in in stand_ins.to_dict("records"):
        original = own[own["run_id"] == stand_in[keys.REUSED_FROM]]
        if original.empty:
            unfiled.append(stand_in["run_id"])
            continue
        row = original.iloc[0].copy()
        row["table"] = stand_in["table"] if isinstance(stand_in["table"], str) else row["table"]
        row["sweep_id"] = stand_in["sweep_id"]
        for key in (k for k in runs.columns if k.startswith(keys.REPORT)):  # how the reusing table compares
            row[key] = stand_in[key]
        if (row["run_id"], row["table"]) not in filed:
            filed.add((row["run_id"], row["table"]))
            copies.append(row)
    out = pd.concat([own, pd.DataFrame(copies)], ignore_index=True) if copies else own.reset_index(drop=True)
    out = out.drop(columns=[keys.REUSED_FROM])
    out.attrs.update(runs.attrs)
    out.attrs["config_columns"] = [c for c in runs.attrs.get("config_columns", []) if c != keys.REUSED_FROM]
    out.attrs["unfiled_stand_ins"] = sorted(unfiled)
    return out
