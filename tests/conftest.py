"""Shared by the tests: real offline wandb runs made in subprocesses, and a report cache of their own."""

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
    env.pop("WANDB_SWEEP_ID", None)
    env.pop("WANDB_RUN_ID", None)
    if isinstance(spec, dict):
        env["WANDB_RUN_ID"] = spec["id"]
        if spec.get("sweep"):
            env["WANDB_SWEEP_ID"] = spec["sweep"]
    return subprocess.Popen([sys.executable, str(OFFLINE_RUN), json.dumps(spec), str(root)],
                            env=env, stderr=subprocess.DEVNULL, **popen)


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
