"""The signals a person or a scheduler sends to stop a command: SIGINT (Ctrl-C), SIGTERM (`kill`, SLURM's
preemption, a container being stopped) and SIGHUP (the terminal closed).

Python turns only SIGINT into an exception (KeyboardInterrupt); SIGTERM and SIGHUP end the process on the
spot, leaving its child processes running and its records unwritten. Inside `raising()` each of the three
raises `Interrupted` (a KeyboardInterrupt that knows its signal), so a command cleans up as it would after
Ctrl-C, says so in one line and exits with `exit_code(signal)`: 128 + the signal number, the shell's
convention (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP). On SIGHUP the terminal is gone: standard output
and error are pointed at /dev/null first (`detach_terminal`), so that the clean-up's own messages do not
fail.
"""

from __future__ import annotations

import contextlib
import os
import signal
import functools
import sys
import threading
from collections.abc import Callable, Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
NAMES = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP (its terminal closed)"}
EXIT_CODES = {128 + s: s for s in SIGNALS}  # the exit code of a command interrupted by each signal -> the signal


class Interrupted(KeyboardInterrupt):
    """Raised by `raising()`'s handlers: the command was asked to stop by signal `signum`."""

    def __init__(self, signum: int = signal.SIGINT):
        self.signum = signum
        super().__init__(name(signum))


def name(signum: int) -> str:
    """'SIGINT (Ctrl-C)', 'SIGTERM', 'SIGHUP (its terminal closed)', else the signal's own name."""
    if signum in NAMES:
        return NAMES[signum]
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def signal_of(error: BaseException) -> int:
    """The signal behind an interrupt: Interrupted's, else SIGINT (a plain KeyboardInterrupt is Ctrl-C)."""
    return getattr(error, "signum", signal.SIGINT)


def exit_code(signum: int) -> int:
    """128 + the signal number: how a command interrupted by `signum` exits (130 for Ctrl-C)."""
    return 128 + int(signum)


def detach_terminal() -> None:
    """Point standard output and error at /dev/null (the terminal that showed them is gone)."""
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            with contextlib.suppress(OSError):
                os.dup2(null, fd)
        os.close(null)


@contextlib.contextmanager
def raising(signals: tuple[int, ...] = SIGNALS) -> Iterator[None]:
    """Within the block, each of `signals` raises Interrupted(signum) in the main thread (the handlers before
    are restored after). Outside the main thread, where no handler can be set, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: object) -> None:
        if signum == signal.SIGHUP:
            detach_terminal()
        raise Interrupted(signum)

    old = {s: signal.signal(s, handle) for s in signals}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def one_line(prog: str, then: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Decorates a command's main function: it runs `raising()`, and an interrupt it does not handle itself ends
    it with one line on stderr ('PROG: interrupted by SIGTERM; THEN') and the exit code 128 + the signal,
    never a traceback."""
    def decorate(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def run(*args, **kwargs) -> int:
            try:
                with raising():
                    return main(*args, **kwargs)
            except KeyboardInterrupt as e:
                signum = signal_of(e)
                with contextlib.suppress(OSError):
                    print(f"{prog}: interrupted by {name(signum)}; {then}", file=sys.stderr, flush=True)
                return exit_code(signum)
        return run
    return decorate
