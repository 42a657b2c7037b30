"""The schema of collected runs: one tidy frame (one row per run) and one long history frame, built the same way
(:func:`tidy`) from the RunRecords of either reader:

- :func:`nlstudy.report.offline.read_offline` reads offline run directories (``<root>/wandb/offline-run-<time>-<id>/``).
- :func:`nlstudy.report.wandb_api.read_wandb` reads a W&B project through ``wandb.Api()``.

The runs frame (:data:`FIXED_COLUMNS` first, then the run's config, then its summary)::

    run_id      str        the wandb run id
    name        str|None   display name (None when the run was never named: offline runs get no name)
    state       str        finished | failed | crashed | killed | running (W&B's words)
    sweep_id    str|None   the sweep that started the run
    table       str|None   the ``table`` config key: which ablation table the run belongs to
    project     str|None
    created_at  datetime64[ns, UTC]
    source      str        "offline" | "wandb"
    path        str        the run directory, or ENTITY/PROJECT/RUN_ID
    note        str|None   why a failed run failed (its ``failure`` summary: "NonFiniteLossError: train/loss
                           became nan at step 37 (epoch 2)"), and what the reader had to guess (e.g. a log
                           cut short by a kill)
    <config>    the resolved config, flattened to the dotted keys of ``nlstudy.keys``; lists and
                dicts stay Python values
    <summary>   the summary (``val/top1_best``, ``test/top1``, ``perf/wall_s``...), flattened; wandb's
                own "_" keys and ``failure`` (in ``note``) dropped; a summary key equal to a config key
                is renamed ``summary/<key>``
    Every column that holds only numbers is float64 (JSON does not keep 1 and 1.0 apart).

The list of config columns rides along in ``runs.attrs["config_columns"]``.

The history frame (long): ``run_id, step, epoch, global_step, metric, value`` -- one row per logged
numeric value (``step`` is wandb's ``_step``; ``epoch`` and ``global_step`` are the values of
``epoch`` / ``trainer/global_step`` logged in the same row, NaN where absent).

Nothing here imports torch or wandb.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from nlstudy import keys
from nlstudy.report.standins import file_stand_ins

FIXED_COLUMNS = (
    "run_id", "name", "state", "sweep_id", "table", "project", "created_at", "source", "path", "note",
)
HISTORY_COLUMNS = ("run_id", "step", "epoch", "global_step", "metric", "value")
RUN_STATES = ("finished", "failed", "crashed", "killed", "running")
FAILED_STATES = ("failed", "crashed")  # a run that ended without its results: its note says why, where it can

EPOCH = "epoch"
GLOBAL_STEP = "trainer/global_step"


@dataclasses.dataclass
class RunRecord:
    """One run as a reader sees it, before it becomes a row of the tidy frame."""

    run_id: str
    state: str
    config: dict[str, Any]  # flat dotted keys (nlstudy.keys.flatten)
    summary: dict[str, Any]  # flat keys, wandb's "_" keys already dropped
    history: list[dict[str, Any]]  # the logged rows, wandb's "_step" included
    source: str
    path: str
    name: str | None = None
    sweep_id: str | None = None
    project: str | None = None
    created_at: str | None = None
    note: str | None = None


@dataclasses.dataclass
class Collection:
    """What a reader returns: the tidy runs frame and the long history frame."""

    runs: pd.DataFrame
    history: pd.DataFrame


def combine(collections: Iterable[Collection]) -> Collection:
    """Several collections (runs roots, projects) as one: runs and history concatenated, config columns merged."""
    collections = list(collections)
    if not collections:
        return tidy([])
    runs = pd.concat([c.runs for c in collections], ignore_index=True)
    runs.attrs["config_columns"] = sorted({k for c in collections for k in c.runs.attrs.get("config_columns", [])})
    history = pd.concat([c.history for c in collections], ignore_index=True)
    return Collection(runs=runs, history=history)

# --------------------------------------------------------------------------------------------------
# shared: config flattening and frame building
# --------------------------------------------------------------------------------------------------


def config_from_wandb(config: Mapping[str, Any]) -> dict[str, Any]:
    """A run's config as wandb stores it -> flat dotted keys (:func:`nlstudy.keys.flatten`), without the
    version stamp wandb adds to synced configs."""
    return keys.flatten({k: v for k, v in config.items() if k != "wandb_version"})


def tidy(records: Iterable[RunRecord]) -> Collection:
    """RunRecords -> (runs frame, history frame), the same way for every reader."""
    records = sorted(records, key=lambda r: r.run_id)
    config_keys = sorted({k for r in records for k in r.config} - set(FIXED_COLUMNS))
    summary_keys = sorted({k for r in records for k in r.summary} - {keys.FAILURE})
    rename = {k: (f"summary/{k}" if k in config_keys or k in FIXED_COLUMNS else k) for k in summary_keys}
    rows = []
    for r in records:
        row = {
            "run_id": r.run_id, "name": r.name or None, "state": r.state, "sweep_id": r.sweep_id or None,
            "table": _table_id(r.config.get(keys.TABLE)), "project": r.project or None,
            "created_at": r.created_at, "source": r.source, "path": r.path, "note": _note(r),
        }
        row.update({k: r.config.get(k) for k in config_keys})
        row.update({rename[k]: r.summary.get(k) for k in summary_keys})
        rows.append(row)
    columns = list(FIXED_COLUMNS) + config_keys + [rename[k] for k in summary_keys]
    runs = pd.DataFrame.from_records(rows, columns=columns)
    runs["created_at"] = pd.to_datetime(runs["created_at"], utc=True, format="ISO8601")
    for key in config_keys + [rename[k] for k in summary_keys]:
        if key in keys.METRIC_KEYS or _all_numbers(runs[key]):
            runs[key] = pd.to_numeric(runs[key], errors="coerce").astype("float64")
    runs.attrs["config_columns"] = config_keys
    history = history_frame((r.run_id, r.history) for r in records)
    return Collection(runs=file_stand_ins(runs), history=history)


def of_sweep(records: list[RunRecord], sweep: str | None) -> Collection:
    """The runs of `sweep` (all of them when None) as one collection: its runs, and each of its stand-ins filed
    under it as the run that stands in, which may have run in another sweep (that run's own row is left out;
    its history stays, under its id)."""
    if sweep is None:
        return tidy(records)
    mine = [r for r in records if r.sweep_id == sweep]
    wanted = {r.config.get(keys.REUSED_FROM) for r in mine} - {None}
    sources = [r for r in records if r.run_id in wanted and r.sweep_id != sweep]
    collection = tidy(mine + sources)
    runs = collection.runs[collection.runs["sweep_id"] == sweep].reset_index(drop=True)
    runs.attrs.update(collection.runs.attrs)
    history = collection.history[collection.history["run_id"].isin(runs["run_id"])].reset_index(drop=True)
    return Collection(runs=runs, history=history)


def _note(record: RunRecord) -> str | None:
    """The reason a failed run gives (a resumed run that finished keeps its earlier part's in its summary:
    left out), then the reader's own note."""
    failure = record.summary.get(keys.FAILURE) if record.state in (*FAILED_STATES, "killed") else None
    return "; ".join(str(n) for n in (failure, record.note) if n) or None


def _all_numbers(column: pd.Series) -> bool:
    """Only numbers (and gaps)? JSON does not keep 1.0 apart from 1 (wandb-core prints 1), so every
    numeric column becomes float64 whichever reader filled it."""
    values = [v for v in column if v is not None and not (isinstance(v, float) and v != v)]
    return bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _table_id(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return str(value)


def history_frame(histories: Iterable[tuple[str, list[dict[str, Any]]]]) -> pd.DataFrame:
    """(run_id, logged rows) pairs -> the long history frame (numeric values only)."""
    out = []
    for run_id, rows in histories:
        for row in rows:
            step = row.get("_step")
            epoch = row.get(EPOCH)
            global_step = row.get(GLOBAL_STEP)
            for metric, value in row.items():
                if metric.startswith("_") or metric in (EPOCH, GLOBAL_STEP):
                    continue
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue
                out.append((run_id, step, epoch, global_step, metric, float(value)))
    frame = pd.DataFrame.from_records(out, columns=list(HISTORY_COLUMNS))
    frame = frame.astype({"step": "float64", "epoch": "float64", "global_step": "float64", "value": "float64"})
    frame = frame.sort_values(["run_id", "step", "metric"], kind="stable").reset_index(drop=True)
    return frame
