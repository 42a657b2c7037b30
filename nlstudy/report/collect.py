"""Collect logged runs into one tidy frame (one row per run) and one long history frame.

Two readers give frames of the same schema:

- :func:`read_offline` reads offline run directories (``<root>/wandb/offline-run-<time>-<id>/``).
- :func:`read_wandb` reads a W&B project through ``wandb.Api()``.

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

Nothing here imports torch (nor wandb, except :func:`read_wandb`, lazily).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import re
import socket
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from nlstudy import interrupts, keys
from nlstudy.adapters import wandb as wandb_adapter
from nlstudy.files import walk
from nlstudy.processes import alive
from nlstudy.report.logcache import LogCache
from nlstudy.report.wandb_log import RUN_INFO, LogContents, inspect_command, inspect_records, read_log  # noqa: F401 (re-exported)

FIXED_COLUMNS = (
    "run_id", "name", "state", "sweep_id", "table", "project", "created_at", "source", "path", "note",
)
HISTORY_COLUMNS = ("run_id", "step", "epoch", "global_step", "metric", "value")
RUN_STATES = ("finished", "failed", "crashed", "killed", "running")
FAILED_STATES = ("failed", "crashed")  # a run that ended without its results: its note says why, where it can

EPOCH = "epoch"
GLOBAL_STEP = "trainer/global_step"

# an offline run that has not written for this long, on another host, is taken as crashed
STALE_AFTER_S = 15 * 60


class NoRunsError(ValueError):
    """The given path holds no wandb run."""


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


# --------------------------------------------------------------------------------------------------
# offline run directories
# --------------------------------------------------------------------------------------------------


def find_run_files(root: str | os.PathLike) -> list[Path]:
    """Every ``run-*.wandb`` log under `root`, which is a runs root, a wandb dir or one run dir. Symbolic links
    to folders are followed (a runs root whose ``wandb/`` lives on scratch space, as on many clusters; Path.rglob
    does not follow them), each real folder once (a link back up does not loop)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such directory: {root}")
    found = set()
    for folder, _, names in walk(root):
        for name in names:
            path = Path(folder, name)
            if name.startswith("run-") and name.endswith(".wandb") and path.is_file():
                found.add(path.resolve())
    return sorted(found)


def read_offline(
    root: str | os.PathLike,
    *,
    sweep: str | None = None,
    workers: int = 4,
    stale_after_s: float = STALE_AFTER_S,
    cache: LogCache | None = None,
) -> Collection:
    """Read every offline run under `root` (optionally only those of one sweep).

    How: wandb 0.31 ships no Python reader for its ``.wandb`` transaction log (the old
    ``wandb.sdk.internal.datastore`` is gone; the log is a leveldb-style block format written by the
    Go ``wandb-core``). Its own reader is ``wandb leet inspect``, so :func:`inspect_records` runs it
    with ``--json`` (wandb-core's inspector, one subprocess per run, `workers` in parallel) and
    :class:`LogContents` folds the printed records: the ``run`` record (id, name, project, sweep id,
    start time, host, initial config), ``config`` updates, ``summary`` updates, ``history`` rows and
    the ``exit`` record. ``--json`` without ``--summary`` is used because only the full record stream
    carries the sweep id and the history, and it reads logs cut short by a kill. With a `cache`
    (:class:`~nlstudy.report.logcache.LogCache`), what was folded out of a log is kept, and a log
    that has not changed since is not read again.

    State: an ``exit`` record gives finished (exit code 0), killed (128 + SIGINT, SIGTERM or SIGHUP: `nlstudy
    fit` stopped by a signal, ``nlstudy.lit.cli.stop_interrupted``) or failed. Without one the run either
    still runs or died (SIGKILL, OOM, power): it counts as running while the process that wrote it
    is alive on this host (its pid is in the run's ``logs/debug.log``) -- or, for a run from another
    host, while its log was written in the last `stale_after_s` seconds -- and as crashed otherwise.
    Worked out on every read, never cached.

    wandb-core writes the log in 32 KiB blocks, so a run killed early may leave a log with no
    records at all; its config is then recovered from the ``config: {...}`` line wandb.init wrote
    to ``logs/debug.log`` (best effort; the ``note`` column says so).

    Copies: a run id met in several directories is one run (:func:`merge_resumed`).
    """
    files = find_run_files(root)
    if not files:
        raise NoRunsError(f"no wandb runs under {root} (looked for run-*.wandb)")
    return _read_files(files, sweep=sweep, workers=workers, stale_after_s=stale_after_s, cache=cache)


def read_runs(run_dirs: Iterable[str | os.PathLike], *, workers: int = 4,
              stale_after_s: float = STALE_AFTER_S, cache: LogCache | None = None) -> Collection:
    """Like `read_offline`, for the given run directories only (a notebook that needs one table's runs
    need not read every run of the root)."""
    files = [f for run_dir in run_dirs for f in find_run_files(run_dir)]
    return _read_files(files, sweep=None, workers=workers, stale_after_s=stale_after_s, cache=cache)


def _read_files(files: list[Path], *, sweep: str | None, workers: int, stale_after_s: float,
                cache: LogCache | None) -> Collection:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        records = list(pool.map(lambda f: read_offline_run(f, stale_after_s=stale_after_s, cache=cache), files))
    finally:  # interrupted (Ctrl-C, SIGTERM): the logs not read yet are not read after all
        pool.shutdown(wait=True, cancel_futures=True)
    return of_sweep(merge_resumed(records), sweep)


def merge_resumed(records: Iterable[RunRecord]) -> list[RunRecord]:
    """One record per run id. A run continued with `nlstudy fit --resume` is one wandb run written offline
    in several directories (`offline-run-<time>-<id>`, one per part); its parts, in the order they were
    written (their directory names sort by start time), become one record: config and summary merged, a
    later part winning; each part's history up to the global step where the next part starts (the next
    one restarted from a checkpoint and logs those steps again), then the next's; the state, path and note
    of the last part.

    Directories of the same name (a run directory copied elsewhere under the root, perhaps while it was
    still being written) are copies of one part: the most complete copy counts (:func:`_completeness`),
    the note names the others."""
    parts: dict[str, dict[str, list[RunRecord]]] = {}
    for record in records:
        parts.setdefault(record.run_id, {}).setdefault(Path(record.path).name, []).append(record)
    merged = []
    for copies in parts.values():
        group = sorted((_most_complete(c) for c in copies.values()), key=lambda r: Path(r.path).name)
        last = group[-1]
        history: list[dict[str, Any]] = []
        for part, following in zip(group, [*group[1:], None]):
            rows = part.history
            restart = min((row[GLOBAL_STEP] for row in following.history if GLOBAL_STEP in row), default=None) \
                if following is not None else None
            if restart is not None:
                rows = [row for row in rows if row.get(GLOBAL_STEP, -1) < restart]
            history.extend(rows)
        merged.append(dataclasses.replace(
            last, config={k: v for r in group for k, v in r.config.items()},
            summary={k: v for r in group for k, v in r.summary.items()}, history=history,
            created_at=group[0].created_at or last.created_at))
    return merged


def _most_complete(copies: list[RunRecord]) -> RunRecord:
    """The copy that counts among copies of one run directory, its note naming the others."""
    if len(copies) == 1:
        return copies[0]
    best = max(sorted(copies, key=lambda r: r.path), key=_completeness)
    others = sorted(r.path for r in copies if r is not best)
    note = f"{len(others)} other copy(ies) of this run directory left out (less complete or the same): " \
           + ", ".join(others)
    return dataclasses.replace(best, note="; ".join(filter(None, [best.note, note])))


def _completeness(record: RunRecord) -> tuple:
    """How much of a run a copy of its log holds: an exit record first, then the logged rows and keys
    (a copy taken while the run was being written holds a prefix of the log)."""
    return (record.state in ("finished", "failed", "killed"), len(record.history), len(record.summary),
            len(record.config))


def read_offline_run(run_file: Path, *, stale_after_s: float = STALE_AFTER_S,
                     cache: LogCache | None = None) -> RunRecord:
    """Fold one run's log into a RunRecord (see :func:`read_offline` for the rules)."""
    run_file = Path(run_file)
    run_dir = run_file.parent
    try:
        log = read_log(run_file, cache)
        unreadable = None
    except RuntimeError as err:  # one bad log must not sink the report: the run shows up, marked
        log, unreadable = LogContents.fold([]), str(err)
    info, config = log.info, log.config

    debug_log = wandb_adapter.read_debug_log(run_dir)
    if log.exit_code is not None:
        state = ("finished" if log.exit_code == 0 else "killed" if log.exit_code in interrupts.EXIT_CODES
                 else "failed")
    else:
        state = "running" if _still_writing(run_file, info.get("host"), debug_log, stale_after_s) else "crashed"

    note = None
    if not info:
        why = (f"unreadable log ({unreadable})" if unreadable
               else "log holds no records yet" if state == "running" else "log holds no records (killed early)")
        recovered = wandb_adapter.config_from_debug_log(debug_log)
        if recovered is not None:
            config = recovered
            note = f"{why}; config from logs/debug.log"
        else:
            note = why

    run_id = info.get("run_id") or _run_id_from_name(run_file)
    return RunRecord(
        run_id=run_id,
        state=state,
        config=config_from_wandb(config),
        summary=keys.flatten(log.summary),
        history=log.history,
        source="offline",
        path=str(run_dir),
        name=info.get("display_name") or None,
        sweep_id=info.get("sweep_id") or None,
        project=info.get("project") or None,
        created_at=info.get("start_time") or _start_from_name(run_dir),
        note=note,
    )


def _run_id_from_name(run_file: Path) -> str:
    return run_file.stem[len("run-"):] if run_file.stem.startswith("run-") else run_file.stem


def _start_from_name(run_dir: Path) -> str | None:
    m = re.search(r"run-(\d{8}_\d{6})-", run_dir.name)
    if not m:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.strptime(m.group(1), "%Y%m%d_%H%M%S"))


def _still_writing(run_file: Path, host: str | None, debug_log: str, stale_after_s: float) -> bool:
    pid = wandb_adapter.pid_from_debug_log(debug_log)
    same_host = host in (None, "", socket.gethostname())
    if pid is not None and same_host:
        return alive(pid)
    try:
        age = time.time() - run_file.stat().st_mtime
    except OSError:
        return False
    return age < stale_after_s


# --------------------------------------------------------------------------------------------------
# the W&B API
# --------------------------------------------------------------------------------------------------


def read_wandb(path: str, *, sweep: str | None = None, api: Any = None) -> Collection:
    """Read the runs of a W&B project ``ENTITY/PROJECT`` (optionally only one sweep's) via ``wandb.Api``.

    Config comes as wandb's public-API classes parse it ({"key": {"value": ...}} unwrapped),
    the summary from ``summaryMetrics`` and the history from the run's full (unsampled up to
    ``historyLineCount`` rows) history.
    """
    if api is None:
        import wandb  # local import: the offline path does not need it loaded

        api = wandb.Api()
    filters = {"sweep": sweep} if sweep else {}
    records = [_api_record(run) for run in api.runs(path, filters=filters, lazy=False)]
    have = {r.run_id for r in records}
    missing = sorted({r.config.get(keys.REUSED_FROM) for r in records} - {None} - have)
    if missing:  # runs that stand in for some of this sweep's, logged under another sweep
        records += [_api_record(run) for run in api.runs(path, filters={"name": {"$in": missing}}, lazy=False)]
    return of_sweep(records, sweep)


def _api_record(run: Any) -> RunRecord:
    """One run of the public API as a RunRecord (its full history: `historyLineCount` rows)."""
    lines = max(int(getattr(run, "history_line_count", 0) or 0), 1)  # the GraphQL field historyLineCount
    rows = run.history(samples=lines, pandas=False)
    return RunRecord(
        run_id=run.id,
        state=run.state,
        config=config_from_wandb(run.config),
        summary=keys.flatten(run.summary_metrics),
        history=list(rows),
        source="wandb",
        path="/".join(run.path),
        name=run.name or None,
        sweep_id=run.sweep_name or None,
        project=run.project,
        created_at=run.created_at,
    )
