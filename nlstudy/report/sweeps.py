"""What the sweeps planned: the runs a grid sweep will launch, so the report can mark rows that never ran
(and those an agent is running now, whose wandb log may not exist yet); and which finished runs stand in
for a sweep's runs that the agent reused rather than ran again.

All of it is read from what the local sweep agent wrote under ``<runs root>/sweeps/<sweep id>/``: its plan.json
(the grid's points, flattened, with their config keys) and its runs' records (state, agent, heartbeat, config,
reused_from, wandb_id); the names and forms are ``nlstudy.records``, and nothing here imports nlstudy.sweep (nor
torch). A sweep without a plan.json (made before plans were written, and not written since: `nlstudy report`
writes them first) plans nothing known here: `unknown_plans` names them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from nlstudy import keys, records
from nlstudy.report.offline import read_offline
from nlstudy.report.schema import Collection


def live_configs(sweep_dir: str | os.PathLike) -> set[str]:
    """The run configs (``nlstudy.records.config_key``) that an agent of the sweep in `sweep_dir` is running
    now: its records that are pending or running, whose agent is alive. Such a run may not have written its
    wandb log yet (it is still starting: parsing, reading the data), so only the sweep's records know of it."""
    return {records.config_key(rec["config"]) for rec in records.sweep_records(sweep_dir)
            if isinstance(rec, dict) and rec.get("state") in records.LIVE and isinstance(rec.get("config"), dict)
            and records.agent_alive(rec.get("agent"), rec.get("heartbeat"))}


def planned_runs(sweep_file: str | os.PathLike) -> pd.DataFrame:
    """The runs one grid sweep plans (its plan.json beside `sweep_file`), as the sweep engine will propose them:
    one row per grid point, columns ``sweep_id``, ``state`` ("running" where an agent runs that point now,
    `live_configs`, else "expected") plus the swept keys flattened (``table`` and ``seed_everything`` among them
    when the sweep sets them). Empty for another method, a grid over the sweep's limit, or a sweep without a
    readable plan."""
    sweep_dir = Path(sweep_file).parent
    plan = records.read_plan(sweep_dir)
    if plan is None or not plan["points"]:
        return pd.DataFrame()
    live = live_configs(sweep_dir)
    rows = [dict(point["values"], sweep_id=sweep_dir.name, state="running" if point["key"] in live else "expected")
            for point in plan["points"]]
    return pd.DataFrame.from_records(rows)


def unknown_plans(sweep_files: Iterable[str | os.PathLike]) -> list[Path]:
    """The sweep dirs of `sweep_files` without a readable plan.json: what they plan is unknown to the report."""
    return [Path(f).parent for f in sweep_files if records.read_plan(Path(f).parent) is None]


def planned(sweep_files: Iterable[str | os.PathLike], *, sweep: str | None = None) -> pd.DataFrame:
    """Every planned run of the given sweep files (optionally one sweep id) in one frame, with a
    ``table`` column (None where the sweep does not set it)."""
    frames = [planned_runs(f) for f in sweep_files if sweep is None or Path(f).parent.name == sweep]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=["sweep_id", keys.TABLE])
    out = pd.concat(frames, ignore_index=True)
    if keys.TABLE not in out.columns:
        out[keys.TABLE] = None
    out[keys.TABLE] = out[keys.TABLE].map(lambda v: None if v is None or v != v else str(v))
    return out


def stand_ins(runs_root: str | os.PathLike) -> list[dict[str, str | None]]:
    """The reused runs under `runs_root` (a runs root, or a wandb folder alone): for each finished record of a
    local sweep that a finished run stands in for, and for each stand-in's own run (its
    files/nlstudy_stand_in.json, written by the sweep agent), that run's ``wandb_id`` and the reusing sweep's
    ``sweep_id``, ``table`` and ``report`` settings (its ``report.*`` parameters: how its table compares, which
    the stand-in takes on)."""
    import json

    out = []
    for rec in records.all_records(runs_root):
        if rec.get("reused_from") and rec.get("state") == "finished":
            values = records.flat_values(rec.get("config") or {})
            out.append({"wandb_id": rec.get("wandb_id"), "sweep_id": rec["sweep_id"], "table": values.get(keys.TABLE),
                        "report": {k: v for k, v in values.items() if k.startswith(keys.REPORT)}})
    root = Path(runs_root)
    base = root / "wandb" if (root / "wandb").is_dir() else root
    for path in sorted(base.glob(f"*run-*/files/{keys.STAND_IN_FILE}")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and isinstance(record.get(keys.REUSED_FROM), str):
            report = record.get("report") if isinstance(record.get("report"), dict) else {}
            out.append({"wandb_id": record[keys.REUSED_FROM], "sweep_id": record.get("sweep_id"),
                        "table": record.get(keys.TABLE), "report": report})
    return out


def add_stand_ins(runs: pd.DataFrame, runs_root: str | os.PathLike) -> pd.DataFrame:
    """`runs` (a row per run: ``run_id``, ``table``) with one more row per reused run of a local sweep: a copy
    of the run that stands in for it (its ``wandb_id``), filed under the reusing sweep's ``table`` (and its
    ``sweep_id``, where `runs` has that column), once per table: every table that planned the configuration
    counts that run (the baseline every table plans runs once)."""
    if runs.empty or "run_id" not in runs.columns:
        return runs
    rows, filed = [], set(zip(runs["run_id"], runs.get(keys.TABLE, pd.Series([None] * len(runs)))))
    for stand_in in stand_ins(runs_root):
        original = runs[runs["run_id"] == stand_in["wandb_id"]]
        if original.empty:
            continue
        row = original.iloc[0].to_dict()
        if "sweep_id" in runs.columns:
            row["sweep_id"] = stand_in["sweep_id"]
        row[keys.TABLE] = stand_in["table"] if stand_in["table"] is not None else row.get(keys.TABLE)
        # the reusing sweep's report settings (how its table compares), not the original's
        row.update({k: None for k in row if k.startswith(keys.REPORT)}, **stand_in["report"])
        if (row["run_id"], row[keys.TABLE]) not in filed:  # a table counts a run once (an edited sweep reuses its own runs)
            filed.add((row["run_id"], row[keys.TABLE]))
            rows.append(row)
    if not rows:
        return runs
    merged = pd.concat([runs, pd.DataFrame.from_records(rows)], ignore_index=True)
    merged.attrs.update(runs.attrs)
    return merged


def with_stand_ins(collection: Collection, runs_root: str | os.PathLike) -> Collection:
    """`collection` with its runs' stand-ins (`add_stand_ins`): a reused run counted in each table that planned it."""
    runs = add_stand_ins(collection.runs, runs_root)
    return collection if runs is collection.runs else Collection(runs=runs, history=collection.history)


def read_local(runs_root: str | os.PathLike, sweep: str | None = None, cache=None) -> Collection:
    """Every offline run under `runs_root` as the tables count it (what `nlstudy report --runs` reads): the
    runs (``offline.read_offline``, through `cache` when given), a row more per reused run (`with_stand_ins`),
    then only `sweep`'s rows when given (after the stand-ins, which may come from another sweep)."""
    collection = with_stand_ins(read_offline(runs_root, cache=cache), runs_root)
    if sweep is not None:
        runs = collection.runs[collection.runs["sweep_id"] == sweep] if "sweep_id" in collection.runs else collection.runs.iloc[:0]
        history = collection.history
        if "run_id" in history:
            history = history[history["run_id"].isin(runs["run_id"])]
        collection = Collection(runs, history)
    return collection
