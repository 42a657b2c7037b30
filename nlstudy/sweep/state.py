"""A local sweep's state on disk, shared by every agent working on it.

    <runs root>/sweeps/<sweep id>/
        sweep.yaml            the sweep file as given
        plan.json             the runs it plans (nlstudy.sweep.plan; the report reads it: nlstudy.records)
        sweep.json            id, source file, project, creation time, fingerprint of the config
        resolved.json         each planned run config's resolved key, from the check (written by every command)
        lock                  locked (SweepState.lock) around "ask the engine + record the new run" and every record write
        runs/<run id>/
            run.json          the run's record (below); written whole, atomically
            params.yaml       WANDB_SWEEP_PARAM_PATH: the run config in wandb's config-file form
            args.json         the ${args_json_file} file (when the command uses that macro)
            progress.jsonl    NLSTUDY_PROGRESS_FILE: one JSON line per validation, written by the run
            stop              NLSTUDY_STOP_FILE: created by an agent to stop the run (hyperband)
            output.log        the run's stdout and stderr
    <runs root>/wandb/offline-run-<time>-<run id>/    the wandb run itself (written by the run)

A record: ``id``, ``config`` (W&B form ``{name: {"value": v}}``), ``state`` (:data:`STATES`),
``created_at`` / ``started_at`` / ``ended_at`` (ISO, UTC), ``duration_s``, ``exitcode``, ``agent``
(``host``, ``pid``, ``pid_start``, ``session`` of the agent that owns it), ``pid`` / ``pid_start`` of
the run's process, ``heartbeat``, ``retry_of`` / ``retried_by``, ``retry`` (the run was interrupted
or crashed and is to be run again; ``not_retried_by``: a session that leaves that to the next one),
``wandb_id`` (the wandb run it logs under: its own id, or that of the run it resumes), ``resumes`` (the
wandb run directory whose checkpoint it continues), ``reuse_key`` / ``reused_from`` (a finished run of the same
configuration that stands in for this one: ``nlstudy.sweep.agent``), ``summary`` (last values of the progress
rows), ``note``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import json
import os
import secrets
import signal
import socket
import string
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from filelock import FileLock

from nlstudy import files
from nlstudy.processes import alive, process_start
from nlstudy.records import LIVE, RECORD_FILE, SWEEP_FILE, SWEEPS_DIR, agent_alive, read_record
from nlstudy.registry import lookup

# state -> the state the search engine is told (a run stopped by hyperband ended cleanly: finished)
STATES: dict[str, str] = {
    "pending": "pending",  # claimed by an agent, process not started yet
    "running": "running",
    "finished": "finished",  # exit code 0
    "stopped": "finished",  # exit code 0 after an early-termination request (hyperband)
    "failed": "failed",  # exit code > 0
    "crashed": "crashed",  # killed by a signal it was not sent, or its agent died under it
    "killed": "killed",  # the agent stopped it (Ctrl-C / SIGTERM to the agent)
}
ENDED = ("finished", "stopped", "failed", "crashed", "killed")
HEARTBEAT_S = 30.0  # an agent refreshes the records of its running runs this often
ID_CHARS = string.ascii_lowercase + string.digits


def engine_state(state: str) -> str:
    return lookup(STATES, state, "run state")


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def new_id(n: int = 8) -> str:
    """A wandb-style id: lowercase letters and digits."""
    return "".join(secrets.choice(ID_CHARS) for _ in range(n))


def digest_id(digest: str, n: int = 8) -> str:
    """A wandb-style id (`n` lowercase letters and digits) that follows from a hex digest: the same digest, the
    same id (a sweep's default id, its runs' ids)."""
    number, chars = int(digest, 16), []
    for _ in range(n):
        number, digit = divmod(number, len(ID_CHARS))
        chars.append(ID_CHARS[digit])
    return "".join(chars)


def record_id(sweep_id: str, config: Mapping[str, Any], taken: Callable[[str], bool], n: int = 8) -> str:
    """The id of a sweep's next run of `config` (its record, and the wandb run it logs under): derived from the
    sweep's id, the config and how many ids of that config `taken` already holds, so that the same sweep file
    run again in a fresh clone names its runs as before (the per-seed tables publish the ids); wandb-style,
    `n` lowercase letters and digits. `taken(id)` says whether an id is in use (a record of this sweep, or a
    wandb run left in the runs root): the next ordinal is tried then. The same sweep file run by two people
    gives both the same ids, as it gives the same sweep id: `--sweep-id` names another sweep."""
    text = json.dumps(config, sort_keys=True, default=str)
    candidates = (digest_id(hashlib.sha256(json.dumps([sweep_id, text, ordinal]).encode()).hexdigest(), n)
                  for ordinal in itertools.count())
    return next(c for c in candidates if not taken(c))


def this_agent(session: str) -> dict[str, Any]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "pid_start": process_start(pid), "session": session}


def write_json(path: Path, data: Any) -> None:
    """Write whole or not at all (readers never see half a file; a full disk leaves the old file as it was)."""
    files.write_text(path, json.dumps(data, indent=1, default=str) + "\n")


class SweepState:
    """The directory of one sweep under a runs root."""

    def __init__(self, runs_root: str | os.PathLike, sweep_id: str):
        self.runs_root = Path(runs_root).absolute()
        self.id = sweep_id
        self.dir = self.runs_root / SWEEPS_DIR / sweep_id

    # -- the sweep --------------------------------------------------------------------------------
    @property
    def sweep_file(self) -> Path:
        return self.dir / SWEEP_FILE

    @property
    def info_file(self) -> Path:
        return self.dir / "sweep.json"

    @property
    def resolved_file(self) -> Path:
        return self.dir / "resolved.json"

    def exists(self) -> bool:
        return self.info_file.is_file()

    def write_resolved(self, resolved: Mapping[str, str]) -> None:
        """Keep what the check resolved ({config text: resolved key}, ``nlstudy.sweep.check.Checked``) for
        the agents of this command. Where it cannot be written (a full disk), an older file is removed: the
        agents then compare parameter values (``nlstudy.sweep.reuse.reuse_key``), never stale keys."""
        try:
            write_json(self.resolved_file, dict(resolved))
        except OSError:
            with contextlib.suppress(OSError):
                self.resolved_file.unlink()

    def resolved(self) -> dict[str, str]:
        """{config text: resolved key} as the last check wrote it ({} when there is none)."""
        try:
            found = json.loads(self.resolved_file.read_text())
        except (OSError, ValueError):
            return {}
        return found if isinstance(found, dict) else {}

    def info(self) -> dict[str, Any]:
        return json.loads(self.info_file.read_text())

    def create(self, text: str, info: Mapping[str, Any]) -> None:
        """Make the directory and write sweep.yaml and sweep.json (once; a second agent that races
        to create the same sweep finds it made)."""
        (self.dir / "runs").mkdir(parents=True, exist_ok=True)
        with self.lock():
            if self.exists():
                return
            files.write_text(self.sweep_file, text)
            write_json(self.info_file, {"id": self.id, "created_at": now(), **info})

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """The sweep's lock, held for the `with` block: exclusive among every agent and process on this sweep,
        waited for as long as it takes, released when the block ends (an exception too) or the process dies
        (filelock.FileLock: an flock on `<sweep dir>/lock`, which stays in place). Not re-entrant: a block that
        takes it again inside itself waits forever."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with FileLock(self.dir / "lock"):
            yield

    # -- runs -------------------------------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        return self.dir / "runs" / run_id

    def record_file(self, run_id: str) -> Path:
        return self.run_dir(run_id) / RECORD_FILE

    def records(self) -> list[dict[str, Any]]:
        """Every run record, oldest first, each with its progress rows as ``history``."""
        out = []
        runs = self.dir / "runs"
        if not runs.is_dir():
            return out
        for path in runs.glob(f"*/{RECORD_FILE}"):
            rec = read_record(path)
            if rec is not None:
                rec["history"] = read_progress(path.parent / "progress.jsonl")
                out.append(rec)
        out.sort(key=lambda r: (r.get("created_at") or "", r["id"]))
        return out

    def write(self, record: Mapping[str, Any]) -> None:
        rec = {k: v for k, v in record.items() if k != "history"}
        self.run_dir(rec["id"]).mkdir(parents=True, exist_ok=True)
        write_json(self.record_file(rec["id"]), rec)

    def update(self, run_id: str, **changes: Any) -> dict[str, Any]:
        """Read, change and write one record under the lock."""
        with self.lock():
            rec = json.loads(self.record_file(run_id).read_text())
            rec.update(changes)
            self.write(rec)
            return rec

    def reap(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Call with the lock held: live records whose agent is gone become ``crashed`` and are marked
        for a retry (a run process that survived its agent is stopped first). Returns the changed."""
        changed = []
        for rec in records:
            if rec["state"] not in LIVE or agent_alive(rec.get("agent"), rec.get("heartbeat")):
                continue
            if rec.get("agent", {}).get("host") == socket.gethostname() and alive(rec.get("pid"), rec.get("pid_start")):
                _stop_orphan(rec["pid"], rec.get("pid_start"))
            rec.update(state="crashed", retry=True, ended_at=now(), note="its agent died while it ran")
            self.write(rec)
            changed.append(rec)
        return changed


def read_progress(path: Path) -> list[dict[str, Any]]:
    """The rows a run appended to its progress file (a half-written last line is skipped). A run resumed
    from a checkpoint logs again the steps after that checkpoint: a row whose ``step`` is not past the
    rows before it replaces those from that step on, so each validation counts once."""
    rows: list[dict[str, Any]] = []
    try:
        text = path.read_text()
    except OSError:
        return rows
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            if isinstance(row.get("step"), int):
                rows = [r for r in rows if not (isinstance(r.get("step"), int) and r["step"] >= row["step"])]
            rows.append(row)
    return rows


def _stop_orphan(pid: int, start: str | None, grace_s: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and alive(pid, start):
        time.sleep(0.2)
    if alive(pid, start):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
