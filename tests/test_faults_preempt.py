"""Preemption and interruptions before any run (issue 22): SIGTERM (SLURM's preemption) to `nlstudy sweep --jobs 2`
once its runs have checkpoints (case 3), and Ctrl-C or SIGTERM while the sweep's files are checked (case 2). The
runs and helpers are tests/test_faults_signals.py's."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pandas as pd
import pytest

from nlstudy import keys
from test_faults_signals import children, parts_configs, records, report, sweep, sweep_file, wait_for

pytestmark = pytest.mark.slow  # every test starts real processes; most train


def test_sigterm_to_a_sweep_of_two_jobs_resumes_its_runs_into_one_row(tmp_path):
    """Case 3: SIGTERM (SLURM's preemption) to `nlstudy sweep --jobs 2` once its two runs have checkpoints: exit
    143, the runs killed; the same command resumes them and runs the third seed. Each resumed run logs the
    configuration it started with, and the report's table keeps the three seeds in one row (it split into
    `num_classes=2` n=2, the resumed runs, and `num_classes=?` n=1)."""
    path = sweep_file(tmp_path / "preempt.yaml", seeds=(0, 1, 2), checkpoints=True, **{"trainer.max_epochs": 6})
    root = tmp_path / "runs"
    agents = sweep(path, root, "--jobs", "2")

    def checkpointed():
        recs = records(root, path)
        have = [r for r in recs if keys.run_dirs(r["wandb_id"], root)
                and keys.checkpoint_file(keys.run_dirs(r["wandb_id"], root)[-1]).is_file()]
        return len(recs) == 2 and len(have) == 2

    wait_for(checkpointed, "both runs' first checkpoints")
    agents.send_signal(signal.SIGTERM)
    out, err = agents.communicate(timeout=120)
    assert agents.returncode == 143, out + err
    assert "Traceback" not in out + err
    interrupted = records(root, path)
    assert all(r["state"] == "killed" and r["retry"] for r in interrupted if r["state"] != "finished"), interrupted

    again = sweep(path, root, "--jobs", "2")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, out + err
    resumed = [r for r in records(root, path) if r.get("resumes")]
    assert resumed and all(r["state"] == "finished" for r in resumed)

    readme = report(root, tmp_path / "report")
    assert "From 3 runs (3 finished)" in readme, readme
    rows = pd.read_csv(tmp_path / "report" / "faults.csv").to_dict("records")
    assert [r["n"] for r in rows] == [3], rows  # one row of three seeds
    for rec in resumed:
        first, *later = parts_configs(root, rec["wandb_id"])
        assert later and all(part == first for part in later)  # the resumed part logs what the first logged


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_a_signal_while_the_files_are_checked_ends_in_one_line(tmp_path, how):
    """Case 2: Ctrl-C (SIGINT to the process group) or SIGTERM (to the command alone) while `nlstudy check`
    validates the runs: one line, exit 128 + the signal, no check process left behind, no sweep state."""
    path, root = sweep_file(tmp_path / "check.yaml", seeds=(0, 1, 2)), tmp_path / "runs"
    proc = sweep(path, root, start_new_session=True)
    checks = wait_for(lambda: children(proc.pid), "the check processes to start", timeout=60)
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    signum = signal.SIGINT if how == "ctrl-c" else signal.SIGTERM
    assert proc.returncode == 128 + signum, out + err
    assert err.count("\n") == 1 and err.startswith("nlstudy sweep: interrupted by SIG"), err
    assert "run the same command again" in err and "Traceback" not in out + err
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
                             for pid in checks), "the check processes to end", timeout=30)
    assert not (root / "sweeps").exists()
