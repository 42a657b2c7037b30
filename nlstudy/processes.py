"""Is a process still there? Used by the sweep agents (whose runs are alive) and the report (is an
offline run still being written). psutil answers, on every platform it supports."""

from __future__ import annotations

import os

import psutil

# the token's unit: the clock ticks of /proc/<pid>/stat's start time (Linux: 100 a second), in which the
# records written before psutil hold it
TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_start(pid: int) -> str | None:
    """A token that tells this process apart from a later one with the same pid, or None when no such process
    exists ("?" where this user may not look at it). A zombie (dead, not yet waited for by its parent: an agent
    of `--jobs` killed while its siblings run) is no process: None.

    The token is the process's start in clock ticks since boot, as a decimal string: psutil's create_time less
    its boot_time (both read from the same wall clock, so a clock step between writing a token and checking it,
    NTP's, changes neither). It is the same number that the records agents wrote before psutil hold (Linux's
    /proc/<pid>/stat start time), so a live agent of either age is known as alive."""
    try:
        process = psutil.Process(pid)
        if process.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return None
        return str(round((process.create_time() - psutil.boot_time()) * TICKS_PER_S))
    except psutil.AccessDenied:
        return "?"
    except (psutil.NoSuchProcess, ValueError):  # a zombie's ZombieProcess is a NoSuchProcess; ValueError: pid < 0
        return None


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
