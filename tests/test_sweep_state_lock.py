"""SweepState.lock (filelock.FileLock on <sweep dir>/lock): exclusive across processes, waited for, released
when its block ends (an exception too) and when its holder dies; and the same flock as the code before it, so an
agent of either age excludes the other while a sweep is upgraded under them."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nlstudy.sweep.state import SweepState

ROOT = Path(__file__).resolve().parents[1]
HOLD = textwrap.dedent("""
    import sys, time
    from nlstudy.sweep.state import SweepState
    with SweepState(sys.argv[1], "s1").lock():
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
""")
TRY_OLD = textwrap.dedent("""
    import fcntl, sys
    with open(sys.argv[1], "a") as f:  # the lock as the code before filelock took it
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            sys.exit(3)
""")


def holder(root: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(root), str(seconds)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "held"
    return proc


def acquire_time(state: SweepState) -> float:
    start = time.monotonic()
    with state.lock():
        return time.monotonic() - start


def test_another_process_waits_until_the_holder_leaves_its_block(tmp_path):
    proc = holder(tmp_path, 1.0)
    try:
        assert acquire_time(SweepState(tmp_path, "s1")) > 0.5
    finally:
        proc.wait(30)
    assert (SweepState(tmp_path, "s1").dir / "lock").is_file()  # the same path; it stays


def test_the_holders_death_releases_it(tmp_path):
    proc = holder(tmp_path, 60.0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert acquire_time(SweepState(tmp_path, "s1")) < 10


def test_an_exception_in_the_block_releases_it(tmp_path):
    state = SweepState(tmp_path, "s1")
    with pytest.raises(KeyError), state.lock():
        raise KeyError("x")
    assert acquire_time(state) < 1


def test_it_is_the_flock_the_code_before_it_took(tmp_path):
    state = SweepState(tmp_path, "s1")
    with state.lock():
        assert subprocess.run([sys.executable, "-c", TRY_OLD, str(state.dir / "lock")]).returncode == 3
    assert subprocess.run([sys.executable, "-c", TRY_OLD, str(state.dir / "lock")]).returncode == 0
    with open(state.dir / "lock", "a") as f:  # an old agent holds it: a new one waits
        fcntl.flock(f, fcntl.LOCK_EX)
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path), "0"], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        time.sleep(1.0)
        assert proc.poll() is None
    assert proc.stdout.readline().strip() == "held" and proc.wait(30) == 0
