"""Is a process still there? Used by the sweep agents (whose runs are alive) and the report (is an
offline run still being written). Linux reads /proc; elsewhere signal 0 answers."""

from __future__ import annotations

import os
from pathlib import Path


def process_start(pid: int) -> str | None:
    """A token that tells this process apart from a later one with the same pid (Linux: its start
    time in clock ticks since boot; "?" where it cannot be read), or None when no such process exists.
    A zombie (dead, not yet waited for by its parent: an agent of `--jobs` killed while its siblings run)
    is no process: None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return None if fields[0] in ("Z", "X") else fields[19]
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return "?"
    return "?"


def alive(pid: int | None, start: str | None = None) -> bool:
    """Process `pid` exists and, when `start` (its process_start token) is given, is the same process."""
    if not pid:
        return False
    token = process_start(pid)
    return token is not None and (start in (None, "?") or token in ("?", start))


def cores() -> int:
    """The CPUs this process may run on (its affinity; os.cpu_count() where that is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
