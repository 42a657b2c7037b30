"""Faults people cause around `nlstudy report` (issue 22): a report read while a sweep runs, a runs root whose
`wandb/` is a symbolic link, a full disk under the report's outputs, a signal while it works.

The runs are real offline wandb runs (tests/fixtures/report/offline_run.py) and the sweep is the local agent
over a toy run (tests/fixtures/sweep/toy_run.py): no torch."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from nlstudy import keys
from nlstudy.report import cli as report_cli
from nlstudy.sweep.spec import load
from nlstudy.sweep.state import SweepState
from test_sweep_resume import wait_for  # a bound on waiting, not on speed

pytestmark = pytest.mark.slow  # real wandb runs and agents in subprocesses

ROOT = Path(__file__).resolve().parents[1]
TOY = ROOT / "tests" / "fixtures" / "sweep" / "toy_run.py"
SEEDS = (0, 1)


def spec(run_id: str, seed: int, top1: float, sweep: str | None = None) -> dict:
    config = {keys.TABLE: "faults", keys.SEED: seed, "hang": True, keys.NONLOCAL_BLOCKS: "none"}
    epochs = [{keys.VAL_TOP1: top1 - 5.0}, {keys.VAL_TOP1: top1}]
    return {"id": run_id, "name": run_id, "sweep": sweep, "end": "finish", "config": config, "epochs": epochs,
            "summary": {keys.VAL_TOP1_BEST: top1, keys.VAL_TOP5_BEST: 100.0, keys.TEST_TOP1: top1 - 1.0}}


@pytest.fixture(scope="module")
def finished_root(tmp_path_factory, launch_run):
    """A runs root with two finished runs of table "faults" (seeds 0 and 1)."""
    root = tmp_path_factory.mktemp("finished")
    writer = launch_run([spec("seed0run", 0, 60.0), spec("seed1run", 1, 62.0)], root)
    assert writer.wait(timeout=180) == 0
    return root


def table(out: Path, name: str = "faults") -> list[dict]:
    return pd.read_csv(out / f"{name}.csv").to_dict("records")




def test_a_report_read_while_a_sweep_runs_counts_a_starting_run_as_running(tmp_path, launch_run, monkeypatch):
    """Case 4: the agent runs seed 0, whose run has written no wandb log yet (the toy run never does); seed 1
    finished. The report's row has one seed finished and one running, none "planned, never started"."""
    path, root = tmp_path / "live.yaml", tmp_path / "runs"
    path.write_text(json.dumps({
        "method": "grid", "command": ["python", str(TOY), "${args_json_file}"],
        "parameters": {keys.TABLE: {"value": "faults"}, "hang": {"value": True}, keys.NONLOCAL_BLOCKS: {"value": "none"},
                       keys.SEED: {"values": list(SEEDS)}}}))
    state = SweepState(root, load(path).default_id)
    env = dict(os.environ, TOY_HANG="1", TOY_LOG=str(tmp_path / "toy.jsonl"))
    env.pop(keys.RUNS_ENV, None)
    agent = subprocess.Popen([sys.executable, "-m", "nlstudy", "sweep", str(path), "--runs-root", str(root)],
                             cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: state.exists() and any(r["state"] == "running" for r in state.records()), "seed 0 to run")
        assert launch_run(spec("seed1run", 1, 62.0, sweep=state.id), root).wait(timeout=180) == 0
        assert report_cli.main(["--runs", str(root), "--out", str(tmp_path / "out"), "--no-cache"]) == 0
        [row] = table(tmp_path / "out")
        assert (row["n"], row["n_running"], row["n_missing"]) == (1, 1, 0), row
    finally:
        agent.send_signal(signal.SIGINT)
        agent.wait(timeout=60)


def test_a_runs_root_whose_wandb_folder_is_a_symbolic_link_is_read(finished_root, tmp_path):
    """Case 9: `<root>/wandb` links to scratch space (and a link inside it points back up): the report reads
    the runs through it, each once."""
    root = tmp_path / "linked"
    root.mkdir()
    (root / "wandb").symlink_to(finished_root / "wandb", target_is_directory=True)
    loop = finished_root / "wandb" / "loop"
    loop.symlink_to(finished_root, target_is_directory=True)
    try:
        assert report_cli.main(["--runs", str(root), "--out", str(tmp_path / "out"), "--no-cache"]) == 0
    finally:
        loop.unlink()
    assert "From 2 runs (2 finished)" in (tmp_path / "out" / "README.md").read_text()
    [row] = table(tmp_path / "out")
    assert row["n"] == 2


def small_disk(limit: int):
    def setup() -> None:  # no file may grow past `limit` bytes (a disk that is full by then; Python gets EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return setup


def test_a_full_disk_under_the_report_leaves_no_file_cut_and_says_what_it_could_not_write(finished_root, tmp_path):
    """Case 8: the report again into its results on a disk that is full; then into a new folder. One line, exit
    1, no traceback; every file is as it was (or absent), none cut short, no temporary left."""
    out, fresh = tmp_path / "results", tmp_path / "fresh"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "MPLCONFIGDIR": str(tmp_path / "mpl")}

    def report(where: Path, **popen) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "nlstudy", "report", "--runs", str(finished_root), "--out",
                               str(where), "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300, **popen)

    first = report(out)
    assert first.returncode == 0, first.stderr
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    limit = min(len(data) for data in before.values()) - 1  # every output is larger: the first write fails
    for where in (out, fresh):
        full = report(where, preexec_fn=small_disk(limit))
        assert full.returncode == 1, full.stdout + full.stderr
        lines = full.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"nlstudy report: cannot write {where / 'faults.md'} "), full.stderr
        assert "File too large" in lines[0] and "Traceback" not in full.stdout + full.stderr
        assert not [p for p in where.rglob("*") if p.name.endswith(".tmp")]
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not [p for p in fresh.rglob("*") if p.is_file()]


def test_a_signal_while_the_report_works_ends_it_in_one_line(finished_root, tmp_path, monkeypatch, capsys):
    """SIGTERM (or SIGHUP, Ctrl-C) while the report builds its tables: one line, exit 143, no traceback, and what
    it wrote whole."""
    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)  # the signal arrives first
        raise AssertionError("not interrupted")

    monkeypatch.setattr(report_cli, "write_report", interrupted)
    assert report_cli.main(["--runs", str(finished_root), "--out", str(tmp_path / "out"), "--no-cache"]) == 143
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nlstudy report: interrupted by SIGTERM; "), err
