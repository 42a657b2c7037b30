"""The state of an offline run, worked out on every read (never cached): an ``exit`` record gives finished (exit
code 0), killed (128 + SIGINT, SIGTERM or SIGHUP: `nlstudy fit` stopped by a signal,
``nlstudy.lit.ending.stop_interrupted``) or failed. Without one the run either still runs or died (SIGKILL, OOM,
power): it counts as running while the process that wrote it is alive on this host (its pid is in the run's
``logs/debug.log``, read through nlstudy.adapters.wandb) -- or, for a run from another host, while its log was
written in the last `stale_after_s` seconds -- and as crashed otherwise."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from nlstudy import interrupts
from nlstudy.adapters import wandb as wandb_adapter
from nlstudy.processes import alive

# an offline run that has not written for this long, on another host, is taken as crashed
STALE_AFTER_S = 15 * 60


def run_state(run_file: Path, exit_code: int | None, host: str | None, debug_log: str,
              stale_after_s: float = STALE_AFTER_S) -> str:
    """finished | killed | failed from the log's exit code; without one, running or crashed (see the module
    docstring). `host`: where the run ran (its run record's); `debug_log`: the text of its logs/debug.log."""
    if exit_code is not None:
        return "finished" if exit_code == 0 else "killed" if exit_code in interrupts.EXIT_CODES else "failed"
    return "running" if still_writing(run_file, host, debug_log, stale_after_s) else "crashed"


def still_writing(run_file: Path, host: str | None, debug_log: str, stale_after_s: float) -> bool:
    """Is the run that writes `run_file` alive: its pid (in `debug_log`) on this host, else a log written within
    `stale_after_s` seconds?"""
    pid = wandb_adapter.pid_from_debug_log(debug_log)
    same_host = host in (None, "", socket.gethostname())
    if pid is not None and same_host:
        return alive(pid)
    try:
        age = time.time() - run_file.stat().st_mtime
    except OSError:
        return False
    return age < stale_after_s
