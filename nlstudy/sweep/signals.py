"""The agent's signals: SIGINT / SIGTERM / SIGHUP counted between polls (Interrupt), and a run that dies with its
agent (_die_with_parent)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from collections.abc import Callable
from typing import Any

from nlstudy import interrupts


class Interrupt:
    """Counts SIGINT / SIGTERM / SIGHUP received; the agent reads it between polls (no exception mid-write).
    After SIGHUP (the terminal closed) the agent's output goes to /dev/null, and it stops as after Ctrl-C."""

    def __init__(self) -> None:
        self.count = 0
        self.signum: int | None = None  # the first signal received
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "Interrupt":
        for sig in interrupts.SIGNALS:
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handle(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGHUP:
            interrupts.detach_terminal()
        self.count += 1
        self.signum = self.signum or signum


def _die_with_parent(parent: int) -> Callable[[], None]:
    """preexec_fn: the child gets SIGTERM if this agent dies (Linux), so no run outlives its agent."""
    def setup() -> None:
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)
    return setup
