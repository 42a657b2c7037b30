"""What a sweep plans reaches the report through the sweep's own files only (nlstudy.records): the sweep writes
sweeps/<id>/plan.json (nlstudy.sweep.plan), the report reads it and the runs' records without importing
nlstudy.sweep; a runs root made before plans were written gets its plans from `nlstudy report` (nlstudy.cli)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nlstudy import cli as nlstudy_cli
from nlstudy import keys, records
from nlstudy.report import cli as report_cli
from nlstudy.report import sweeps
from nlstudy.sweep import engine, plan
from nlstudy.sweep.state import SweepState, now, this_agent

RUNS = Path(__file__).parent / "fixtures" / "report" / "runs.json"
SWEEP = "swp2a"
SWEEP_YAML = {
    "program": "nlstudy", "method": "grid", "metric": {"name": keys.VAL_TOP1_BEST, "goal": "maximize"},
    "parameters": {
        "table": {"value": "2a"},
        keys.SEED: {"values": [0, 1]},
        keys.NONLOCAL_BLOCKS: {"values": ["none", "1-block"]},
        keys.PAIRWISE: {"values": ["gaussian", "embedded_gaussian", "dot_product"]},
    },
}
RUNNING = {"table": {"value": "2a"}, keys.SEED: {"value": 1}, keys.NONLOCAL_BLOCKS: {"value": "1-block"},
           keys.PAIRWISE: {"value": "gaussian"}}  # the grid point an agent (this test process) runs now


def sweep_root(root: Path, *, with_plan: bool = True) -> Path:
    """A runs root with the sweep's file, its plan (unless not `with_plan`: a root made before plans) and the
    record of a run an agent runs now."""
    state = SweepState(root, SWEEP)
    state.create(yaml.safe_dump(SWEEP_YAML), {"fingerprint": "test"})
    if with_plan:
        assert plan.write(state.dir)
    state.write({"id": "live1", "config": RUNNING, "state": "running", "created_at": now(),
                 "agent": this_agent("s1"), "heartbeat": now(), "wandb_id": "live1"})
    return root


def test_the_plan_holds_the_grid_as_the_engine_proposes_it(tmp_path):
    root = sweep_root(tmp_path)
    got = records.read_plan(root / "sweeps" / SWEEP)
    points = engine.grid_points(SWEEP_YAML)
    assert got["sweep_id"] == SWEEP and got["method"] == "grid" and len(got["points"]) == len(points) == 12
    assert [p["key"] for p in got["points"]] == [records.config_key(p) for p in points]
    assert [p["values"] for p in got["points"]] == [records.flat_values(p) for p in points]
    # a random sweep plans no fixed set; a plan already there is kept
    state = SweepState(tmp_path, "rnd")
    state.create(yaml.safe_dump({"method": "random", "parameters": {"lr": {"min": 0.1, "max": 1.0}}}), {})
    assert plan.write_missing(tmp_path) == []
    assert records.read_plan(state.dir) == {"sweep_id": "rnd", "method": "random", "points": None}


def test_planned_rows_are_expected_or_running_from_the_plan_and_the_records(tmp_path):
    root = sweep_root(tmp_path)
    planned = sweeps.planned(records.find_sweep_files(root / "wandb"))
    assert len(planned) == 12 and set(planned["sweep_id"]) == {SWEEP} and set(planned["table"]) == {"2a"}
    running = planned[planned["state"] == "running"]
    assert running[[keys.SEED, keys.NONLOCAL_BLOCKS, keys.PAIRWISE]].values.tolist() == [[1, "1-block", "gaussian"]]
    # the agent gone: the run is no longer running, only expected
    state = SweepState(root, SWEEP)
    state.update("live1", agent={**this_agent("s1"), "pid": 2 ** 22 + 1})
    assert set(sweeps.planned(records.find_sweep_files(root))["state"]) == {"expected"}


def test_without_a_plan_the_report_knows_no_planned_run_and_says_so(tmp_path):
    root = sweep_root(tmp_path, with_plan=False)
    files = records.find_sweep_files(root)
    assert sweeps.planned(files).empty and sweeps.unknown_plans(files) == [root.resolve() / "sweeps" / SWEEP]


def test_nlstudy_report_writes_the_missing_plans_first(tmp_path):
    """The fallback for a runs root made before plans were written: `nlstudy report --runs DIR` (the dispatcher,
    above both layers) has the sweep write each missing plan.json, the same file the sweep writes today."""
    old, new = sweep_root(tmp_path / "old", with_plan=False), sweep_root(tmp_path / "new")
    nlstudy_cli.write_missing_plans(["--out", str(tmp_path / "out"), f"--runs={old / 'wandb'}", "--no-cache"])
    written = (old / "sweeps" / SWEEP / records.PLAN_FILE).read_text()
    assert written == (new / "sweeps" / SWEEP / records.PLAN_FILE).read_text()
    nlstudy_cli.write_missing_plans(["--runs"])  # the report's parser says what is wrong with that
    nlstudy_cli.write_missing_plans(["--runs", str(tmp_path / "nowhere")])
    assert not (tmp_path / "nowhere").exists()


def test_a_plan_that_cannot_be_written_stays_unknown(tmp_path, monkeypatch):
    root = sweep_root(tmp_path, with_plan=False)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(plan, "write_json", full)
    assert plan.write_missing(root) == [root.resolve() / "sweeps" / SWEEP]
    assert not (root / "sweeps" / SWEEP / records.PLAN_FILE).exists()


@pytest.fixture(scope="module")
def reported_root(tmp_path_factory, launch_run):
    """A runs root with two finished runs of the sweep (the baseline, seeds 0 and 1) and its plan and records."""
    root = tmp_path_factory.mktemp("runs")
    specs = [s for s in json.loads(RUNS.read_text()) if s["id"] in ("base0", "base1")]
    assert launch_run(specs, root).wait(timeout=120) == 0
    return sweep_root(root)


@pytest.mark.slow  # makes real offline runs, starts Python subprocesses
def test_a_report_lists_expected_and_running_rows_without_importing_the_sweep(reported_root, tmp_path):
    out = tmp_path / "results"
    code = textwrap.dedent(f"""
        import sys
        from nlstudy.report import cli
        code = cli.main(["--runs", {str(reported_root)!r}, "--out", {str(out)!r}, "--no-cache"])
        loaded = sorted(m for m in sys.modules if m == "nlstudy.sweep" or m.startswith("nlstudy.sweep."))
        assert not loaded, loaded
        print("exit", code)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("exit 0") and "plan.json" not in proc.stderr
    table = pd.read_csv(out / "2a.csv")
    status = dict(zip(table[keys.PAIRWISE].fillna("-"), table["status"]))
    # the baseline ran (seeds 0, 1); gaussian's seed 1 runs now (its record), the other rows never started
    assert status == {"-": "ok", "gaussian": "running", "embedded_gaussian": "missing", "dot_product": "missing"}
    assert table["n_missing"].tolist() == [0, 1, 2, 2]


@pytest.mark.slow  # makes real offline runs, starts a Python subprocess
def test_a_root_from_before_plans_reports_as_one_with_them(reported_root, tmp_path, capsys):
    old = tmp_path / "old"
    shutil.copytree(reported_root, old)
    (old / "sweeps" / SWEEP / records.PLAN_FILE).unlink()
    # the report alone knows no plan, and says so
    assert report_cli.main(["--runs", str(old), "--out", str(tmp_path / "alone"), "--no-cache"]) == 0
    assert f"has no {records.PLAN_FILE}" in capsys.readouterr().err
    assert set(pd.read_csv(tmp_path / "alone" / "2a.csv")["status"]) <= {"ok", "running"}
    # `nlstudy report` writes the plan first: the same tables as the runs root that had it
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true")
    for root, dest in ((old, "old"), (reported_root, "new")):
        proc = subprocess.run([sys.executable, "-m", "nlstudy", "report", "--runs", str(root), "--out",
                               str(tmp_path / dest), "--no-cache"], capture_output=True, text=True, env=env,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
    assert (old / "sweeps" / SWEEP / records.PLAN_FILE).is_file()
    for name in ("2a.csv", "2a.md", "2a_runs.csv"):
        assert (tmp_path / "old" / name).read_text() == (tmp_path / "new" / name).read_text()
