"""The wandb-core reader: the records of one offline ``.wandb`` log, printed by wandb's own inspector (through
nlstudy.adapters.wandb), folded into LogContents and kept in the report's log cache (nlstudy.report.logcache)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from nlstudy.adapters import wandb as wandb_adapter
from nlstudy.report.logcache import LogCache, Stamp


def inspect_command(run_file: Path, *, via_cli: bool = False) -> list[str]:
    """The command that prints `run_file`'s records: what ``wandb leet inspect --json RUN_FILE`` runs
    (wandb-core's inspector on the log and the wandb dir it lives in), started directly; or, `via_cli`,
    that CLI itself (``python -m wandb``, whose start-up costs ~10x the read: the report's reader
    before issue 11, kept as the reference the fast one is checked against)."""
    run_file = Path(run_file).resolve()
    if via_cli:
        return [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_file)]
    return [*wandb_adapter.inspector_command(), "--run-file", str(run_file), str(run_file.parent.parent)]


def inspect_records(run_file: Path, *, via_cli: bool = False) -> list[dict[str, Any]]:
    """The records of one ``.wandb`` log as wandb's own reader prints them (one dict per record);
    `via_cli`: see :func:`inspect_command`.

    Raises RuntimeError when the reader printed nothing and failed (an unreadable log); a log cut
    short by a kill is not an error (wandb prints the records it could read, then a warning)."""
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true")
    proc = subprocess.run(inspect_command(run_file, via_cli=via_cli), capture_output=True, text=True, env=env,
                          check=False)
    records = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    if proc.returncode != 0 and not records and "incomplete" not in proc.stderr:
        raise RuntimeError(f"wandb leet inspect failed on {run_file}: {proc.stderr.strip()[:300]}")
    return records


RUN_INFO = ("run_id", "display_name", "sweep_id", "project", "start_time", "host")  # what is kept of the run record


@dataclasses.dataclass
class LogContents:
    """What one run's log holds, folded out of its records; what the cache keeps."""

    info: dict[str, Any]  # the run record (id, name, project, sweep id, start time, host); {} when absent
    config: dict[str, Any]  # as logged (nested as wandb keeps it)
    summary: dict[str, Any]
    history: list[dict[str, Any]]
    exit_code: int | None  # None: no exit record

    @classmethod
    def fold(cls, records: Iterable[Mapping[str, Any]]) -> LogContents:
        contents = cls(info={}, config={}, summary={}, history=[], exit_code=None)
        for record in records:
            kind = record.get("type")
            body = record.get(kind) or {}
            if kind == "run":
                contents.info = {k: v for k, v in body.items() if k in RUN_INFO}
                _apply_update(contents.config, body.get("config") or {})
            elif kind == "config":
                _apply_update(contents.config, body)
            elif kind == "summary":
                _apply_update(contents.summary, body)
            elif kind == "history":
                row = dict(body.get("item") or {})
                row.setdefault("_step", (body.get("step") or {}).get("num"))
                contents.history.append(row)
            elif kind == "exit":
                contents.exit_code = int(body.get("exit_code") or 0)
        return contents

    @classmethod
    def from_cache(cls, stored: Any) -> LogContents | None:
        """A cache entry back as LogContents; None when it is not one (an old or damaged entry)."""
        try:
            contents = cls(**stored)
        except TypeError:
            return None
        shapes_ok = (all(isinstance(getattr(contents, f), dict) for f in ("info", "config", "summary"))
                     and isinstance(contents.history, list) and all(isinstance(r, dict) for r in contents.history)
                     and (contents.exit_code is None or type(contents.exit_code) is int))
        return contents if shapes_ok else None


def read_log(run_file: Path, cache: LogCache | None = None) -> LogContents:
    """What `run_file` holds: from `cache` when the log is unchanged since it was cached, else read with
    :func:`inspect_records` (and cached). Raises RuntimeError for an unreadable log (never cached)."""
    stamp = Stamp.of(run_file)
    if cache is not None and stamp is not None:
        hit = LogContents.from_cache(cache.get(run_file, stamp))
        if hit is not None:
            return hit
    since = time.time_ns()
    contents = LogContents.fold(inspect_records(run_file))
    if cache is not None and stamp is not None:
        cache.put(run_file, stamp, dataclasses.asdict(contents), read_since_ns=since)
    return contents


def _apply_update(target: dict[str, Any], body: Mapping[str, Any]) -> None:
    target.update(body.get("update") or {})
    for key in body.get("remove") or []:
        target.pop(key if isinstance(key, str) else ".".join(key), None)
