"""What the report read out of each offline run's log, kept between reports.

wandb's reader of a ``.wandb`` log is a subprocess (:func:`nlstudy.report.wandb_log.inspect_records`);
a report over hundreds of runs spends nearly all its time there, reading logs that have not changed
since the last report. :class:`LogCache` keeps, per log, what was read out of it, in one JSON file
named after the log's path, under a key made of the log's size and modification time (ns), the
wandb version that read it and this module's :data:`FORMAT`. A log that changed in any way since
(a run still being written, a log cut off that grows back, a log copied over) misses the key and is
read again.

Safe by construction: an entry is written to a temporary file and renamed into place (no reader sees
half an entry); an entry that does not parse, or whose key, path or format differ, is a miss (and
is rewritten); a log modified less than :data:`RACY_S` seconds before it was read is not cached (a
write within the same timestamp tick would go unseen); a log that changed while it was read is not
cached; a cache that cannot be written is skipped, never an error. What depends on the moment (is the
run's process still alive?) is not the cache's business: the caller works it out on every read.

Where: ``$NLSTUDY_CACHE_DIR``, else ``$XDG_CACHE_HOME/nlstudy/report``, else
``~/.cache/nlstudy/report`` (never in the runs root, which may be read-only or shared).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

from nlstudy import files

CACHE_ENV = "NLSTUDY_CACHE_DIR"
FORMAT = 1  # bump when what the caller stores changes shape
RACY_S = 2.0  # a log modified this recently is read but not cached


class Stamp(NamedTuple):
    """What the cache key knows of a log file: its size and modification time."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> Stamp | None:
        """The file's stamp, None when it cannot be stat'ed."""
        try:
            st = path.stat()
        except OSError:
            return None
        return cls(st.st_size, st.st_mtime_ns)


def default_dir() -> Path:
    """``$NLSTUDY_CACHE_DIR``, else ``$XDG_CACHE_HOME/nlstudy/report``, else ``~/.cache/nlstudy/report``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nlstudy" / "report"


@functools.cache
def reader_version() -> str:
    """The version of wandb whose reader filled the entries (its output may change between versions)."""
    try:
        return importlib.metadata.version("wandb")
    except importlib.metadata.PackageNotFoundError:
        return "none"


class LogCache:
    """One JSON file per log under `directory` (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory) if directory is not None else default_dir()

    def __repr__(self) -> str:
        return f"LogCache({str(self.directory)!r})"

    def entry(self, log: Path) -> Path:
        """The file that holds `log`'s entry."""
        return self.directory / f"{hashlib.sha256(_key_path(log).encode()).hexdigest()[:32]}.json"

    def get(self, log: Path, stamp: Stamp) -> Any | None:
        """What :meth:`put` stored for `log` at exactly this `stamp`; None on any miss."""
        try:
            stored = json.loads(self.entry(log).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(stored, dict) or stored.get("key") != self._key(log, stamp):
            return None
        return stored.get("contents")

    def put(self, log: Path, stamp: Stamp, contents: Any, *, read_since_ns: int) -> bool:
        """Store `contents`, what was read out of `log` when it had `stamp` (taken before the read, which
        began at time.time_ns() `read_since_ns`). Nothing is stored, and False returned, when the log
        has changed since, was modified less than RACY_S seconds before the read began, or the
        entry cannot be written."""
        if Stamp.of(log) != stamp or read_since_ns - stamp.mtime_ns < RACY_S * 1e9:
            return False
        text = json.dumps({"key": self._key(log, stamp), "contents": contents}, separators=(",", ":"))
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            files.write_text(self.entry(log), text)  # whole or not at all (and no temporary left)
        except OSError:
            return False
        return True

    @staticmethod
    def _key(log: Path, stamp: Stamp) -> list:
        return [FORMAT, reader_version(), _key_path(log), stamp.size, stamp.mtime_ns]


def _key_path(log: Path) -> str:
    return str(Path(log).resolve())
