"""nlstudy.processes: a process's identity token (psutil), alive or not, and the tokens records hold
from before psutil (Linux's /proc/<pid>/stat start time, in clock ticks since boot)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from nlstudy import processes
from nlstudy.processes import alive, process_start


def proc_stat_start(pid: int) -> str:
    """The token as the code before psutil computed it (what existing records hold)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="Linux's /proc")
def test_the_token_is_the_one_old_records_hold_so_a_live_old_agent_is_alive():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        for pid in (os.getpid(), child.pid, 1):
            assert process_start(pid) == proc_stat_start(pid)
        assert alive(child.pid, proc_stat_start(child.pid))  # a record an old agent wrote
        assert not alive(child.pid, str(int(proc_stat_start(child.pid)) - 1))  # a process before it with that pid
    finally:
        child.kill()
        child.wait()


def test_a_zombie_and_a_reaped_process_are_not_alive():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    token = process_start(child.pid)
    deadline = time.monotonic() + 30
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process_start(child.pid) is None and not alive(child.pid) and not alive(child.pid, token)
    child.wait()
    assert process_start(child.pid) is None and not alive(child.pid, token)
    assert not alive(None) and not alive(0) and not alive(-1)  # -1 is no pid (os.kill(-1, 0) would be everyone)


def test_a_wall_clock_step_changes_no_token(monkeypatch):
    token = process_start(os.getpid())
    step = 3600.0  # NTP moves the clock: create_time and boot_time both move with it
    real_boot, real_create = psutil.boot_time, psutil.Process.create_time
    monkeypatch.setattr(psutil, "boot_time", lambda: real_boot() + step)
    monkeypatch.setattr(psutil.Process, "create_time", lambda self: real_create(self) + step)
    assert process_start(os.getpid()) == token and alive(os.getpid(), token)


def test_a_process_we_may_not_inspect_counts_as_alive(monkeypatch):
    def denied(pid):
        raise psutil.AccessDenied(pid)

    monkeypatch.setattr(processes.psutil, "Process", denied)
    assert process_start(12345) == "?" and alive(12345, "777") and alive(12345)


def test_any_token_matches_an_unknown_start():
    assert alive(os.getpid(), None) and alive(os.getpid(), "?")
    assert not alive(os.getpid(), "not-a-token")
