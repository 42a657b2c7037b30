"""The offline reader: every run directory under a runs root (``<root>/wandb/offline-run-<time>-<id>/``), its
``.wandb`` log read by wandb-core's inspector (nlstudy.report.wandb_log, through the log cache), its state worked out
on every read (nlstudy.report.runstate), the parts of resumed runs and copies made one (nlstudy.report.resumed),
as the frames of nlstudy.report.schema."""

from __future__ import annotations

import concurrent.futures
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

from nlstudy import keys
from nlstudy.adapters import wandb as wandb_adapter
from nlstudy.files import walk
from nlstudy.report.logcache import LogCache
from nlstudy.report.schema import Collection, RunRecord, config_from_wandb, of_sweep
from nlstudy.report.resumed import merge_resumed
from nlstudy.report.runstate import STALE_AFTER_S, run_state
from nlstudy.report.wandb_log import LogContents, read_log


class NoRunsError(ValueError):
    """The given path holds no wandb run."""



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
    Go ``wandb-core``). Its own reader is ``wandb leet inspect``, so
    :func:`nlstudy.report.wandb_log.inspect_records` runs it with ``--json`` (wandb-core's inspector, one subprocess per run, `workers` in parallel) and
    :class:`LogContents` folds the printed records: the ``run`` record (id, name, project, sweep id,
    start time, host, initial config), ``config`` updates, ``summary`` updates, ``history`` rows and
    the ``exit`` record. ``--json`` without ``--summary`` is used because only the full record stream
    carries the sweep id and the history, and it reads logs cut short by a kill. With a `cache`
    (:class:`~nlstudy.report.logcache.LogCache`), what was folded out of a log is kept, and a log
    that has not changed since is not read again.

    State: finished, killed or failed from the ``exit`` record; without one, running or crashed
    (:func:`nlstudy.report.runstate.run_state`: whether the process that wrote the log is alive, or the log
    was written in the last `stale_after_s` seconds). Worked out on every read, never cached.

    wandb-core writes the log in 32 KiB blocks, so a run killed early may leave a log with no
    records at all; its config is then recovered from the ``config: {...}`` line wandb.init wrote
    to ``logs/debug.log`` (best effort; the ``note`` column says so).

    Copies: a run id met in several directories is one run (:func:`nlstudy.report.resumed.merge_resumed`).
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
    state = run_state(run_file, log.exit_code, info.get("host"), debug_log, stale_after_s)

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
