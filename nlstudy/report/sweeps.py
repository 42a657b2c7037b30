"""What the sweeps planned: the runs a grid sweep will launch, so the report can mark rows that never ran
(and those an agent is running now, whose wandb log may not exist yet); and which finished runs stand in
for a sweep's runs that the agent reused rather than ran again.

The local sweep agent keeps each sweep's YAML at ``<runs root>/sweeps/<sweep id>/sweep.yaml``.
Only grid sweeps are expanded (random / bayes / hyperband sweeps plan no fixed set of runs); a
missing or unreadable layout simply means "no plan known". Nothing here imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from nlstudy import files, keys
from nlstudy.report.offline import read_offline
from nlstudy.report.records import Collection

MAX_PLANNED_RUNS = 100_000  # a grid larger than this is not expanded


def find_sweep_files(runs_root: str | os.PathLike) -> list[Path]:
    """``sweeps/*/sweep.yaml`` under `runs_root`; when `runs_root` is a wandb dir or one run dir,
    also under the runs root above it."""
    root = Path(runs_root)
    candidates = [root]
    if root.name == "wandb" or root.name.startswith(("offline-run-", "run-")):
        candidates.append(root.parent)
        if root.parent.name == "wandb":
            candidates.append(root.parent.parent)
    found: set[Path] = set()
    for base in candidates:
        found.update(p.resolve() for p in (base / "sweeps").glob("*/sweep.yaml") if p.is_file())
    return sorted(found)


def live_configs(sweep_dir: str | os.PathLike) -> set[str]:
    """The run configs (``nlstudy.sweep.check.config_key``) that an agent of the sweep in `sweep_dir` is running
    now: its records that are pending or running, whose agent is alive. Such a run may not have written its
    wandb log yet (it is still starting: parsing, reading the data), so only the sweep's records know of it."""
    from nlstudy.sweep.check import config_key
    from nlstudy.sweep.state import LIVE, agent_alive, read_record

    found = set()
    for path in Path(sweep_dir).glob("runs/*/run.json"):
        rec = read_record(path)
        if (isinstance(rec, dict) and rec.get("state") in LIVE and isinstance(rec.get("config"), dict)
                and agent_alive(rec.get("agent"), rec.get("heartbeat"))):
            found.add(config_key(rec["config"]))
    return found


def planned_runs(sweep_file: str | os.PathLike) -> pd.DataFrame:
    """The runs one grid sweep plans, as the sweep engine will propose them: one row per grid point,
    columns ``sweep_id``, ``state`` ("running" where an agent runs that point now, `live_configs`, else
    "expected") plus the swept keys flattened (``table`` and ``seed_everything`` among them when the sweep
    sets them). Empty for another method, a grid over MAX_PLANNED_RUNS points, or a file that does not
    read as a sweep."""
    path = Path(sweep_file)
    try:
        config = files.read_yaml(path) or {}
    except (OSError, ValueError):
        return pd.DataFrame()
    if not isinstance(config, Mapping) or config.get("method") != "grid" or not config.get("parameters"):
        return pd.DataFrame()
    from nlstudy.sweep import engine  # here: the `sweeps` package only matters once a sweep file is read

    try:
        if not 0 < engine.grid_size(config) <= MAX_PLANNED_RUNS:
            return pd.DataFrame()
        points = engine.grid_points(config)
    except (ValueError, TypeError, KeyError, AttributeError):  # not a sweep the engine can expand
        return pd.DataFrame()
    from nlstudy.sweep.check import config_key

    live = live_configs(path.parent)
    rows = [dict(keys.flatten({name: spec["value"] for name, spec in point.items()}), sweep_id=path.parent.name,
                 state="running" if config_key(point) in live else "expected")
            for point in points]
    return pd.DataFrame.from_records(rows)


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
    files/nlstudy_stand_in.json: nlstudy.sweep.standin), that run's ``wandb_id`` and the reusing sweep's
    ``sweep_id``, ``table`` and ``report`` settings (its ``report.*`` parameters: how its table compares, which
    the stand-in takes on)."""
    import json

    from nlstudy.sweep.spec import flat_values
    from nlstudy.sweep.state import SweepState

    out = []
    for rec in SweepState.all_records(runs_root):
        if rec.get("reused_from") and rec.get("state") == "finished":
            values = flat_values(rec.get("config") or {})
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
