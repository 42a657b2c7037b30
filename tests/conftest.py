"""Shared by the tests: real offline wandb runs made in subprocesses, and a report cache of their own.

`make test` runs the tests on 2 pytest-xdist worker processes, each test file whole on one worker
(--dist loadfile), while the other worker runs other files: a test writes only under its tmp_path (or a
tmp_path_factory folder, which is per worker), never into the repository or the user's home, picks no fixed
port, and bounds waits, not speed (two workers and their subprocesses share the cores)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

OFFLINE_RUN = Path(__file__).parent / "fixtures" / "report" / "offline_run.py"


def launch_offline_run(spec, root, **popen):
    """Start tests/fixtures/report/offline_run.py on `spec` (one spec, or a list written by one process)
    under the runs root `root`; returns the Popen."""
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", WANDB_PROJECT="nlstudy-test")
    for name in ("WANDB_SWEEP_ID", "WANDB_RUN_ID", "WANDB_SERVICE", "WANDB_SWEEP_PARAM_PATH"):
        env.pop(name, None)  # left by wandb in this process (an in-process run, wandb's agent): not this run's
    if isinstance(spec, dict):
        env["WANDB_RUN_ID"] = spec["id"]
        if spec.get("sweep"):
            env["WANDB_SWEEP_ID"] = spec["sweep"]
    return subprocess.Popen([sys.executable, str(OFFLINE_RUN), json.dumps(spec), str(root)],
                            env=env, stderr=subprocess.DEVNULL, **popen)


def pytest_configure(config):
    """Each pytest-xdist worker keeps torch to its share of the cores for the work done in its own process
    (two workers with two threads each on two cores wait on each other's threads; the runs the tests start
    in subprocesses set their threads themselves)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        from nlstudy.processes import cores

        torch.set_num_threads(max(1, cores() // workers))


@pytest.fixture(scope="session")
def launch_run():
    """:func:`launch_offline_run`, for the tests that make real runs."""
    return launch_offline_run


@pytest.fixture(autouse=True, scope="session")
def private_report_cache(tmp_path_factory):
    """`nlstudy report` keeps what it read of each run in the user's cache directory; the tests keep theirs
    in a temporary one (subprocesses inherit it)."""
    from nlstudy.report.logcache import CACHE_ENV

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("report-cache")))
        yield


@pytest.fixture(autouse=True)
def no_inherited_wandb_service(monkeypatch):
    """An in-process `nlstudy.train` leaves $WANDB_SERVICE set in this process after wandb.finish(); a wandb
    run started later from a subprocess would attach to that service instead of starting its own."""
    monkeypatch.delenv("WANDB_SERVICE", raising=False)
