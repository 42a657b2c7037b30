"""Faults people cause with signals (issue 22), injected into the real commands: Ctrl-C (SIGINT to the
terminal's process group), SIGTERM (`kill`, SLURM's preemption), SIGHUP (the terminal closed), at each phase
of a sweep (the file check, the runs, the report), then the same command again and `nlstudy report`. A
retried or resumed run must come out of the report as an uninterrupted run does: one run, finished, its
table row whole.

The runs are `nlstudy fit` on experiments/demo.yaml shrunk to seconds (tests/test_sweep_resume.py's size)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nlstudy import keys
from nlstudy.report import cli as report_cli
from nlstudy.report.offline import find_run_files, read_offline, read_offline_run
from nlstudy.sweep.spec import load
from nlstudy.sweep.state import SweepState
from test_sweep_resume import wait_for  # a bound on waiting, not on speed

pytestmark = pytest.mark.slow  # every test starts real processes; most train

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "table": "faults", "data.synthetic.train_samples": 128, "data.synthetic.val_samples": 32,
    "data.synthetic.test_samples": 32, "model.backbone.width": 4, "data.batch_size": 8, "trainer.max_epochs": 4,
}


def sweep_file(path: Path, seeds=(0,), checkpoints=False, **more) -> Path:
    params = {**TINY, "trainer.enable_checkpointing": checkpoints, **more}
    path.write_text(json.dumps({  # JSON is YAML
        "method": "grid", "metric": {"name": keys.VAL_TOP1_BEST, "goal": "maximize"},
        "command": ["nlstudy", "fit", "--config", "experiments/demo.yaml", "--config", "${args_json_file}"],
        "parameters": {**{k: {"value": v} for k, v in params.items()}, "seed_everything": {"values": list(seeds)}},
    }))
    return path


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in (keys.RUNS_ENV, "WANDB_RUN_ID", "WANDB_SWEEP_ID")}


def sweep(path: Path, root: Path, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nlstudy", "sweep", str(path), "--runs-root", str(root), *args],
                            cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)




def records(root: Path, path: Path) -> list[dict]:
    state = SweepState(root, load(path).default_id)
    return state.records() if state.exists() else []


def children(pid: int) -> list[int]:
    """Every live descendant of `pid` (from /proc)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        frontier = [p for p, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def report(root: Path, out: Path) -> str:
    """`nlstudy report --runs ROOT --out OUT`; its README."""
    assert report_cli.main(["--runs", str(root), "--out", str(out), "--no-cache"]) == 0
    return (out / "README.md").read_text()


def parts_configs(root: Path, run_id: str) -> list[dict]:
    """The config each part (wandb directory) of run `run_id` logged, provenance left out."""
    return [{k: v for k, v in read_offline_run(f).config.items() if not k.startswith(keys.PROVENANCE)}
            for f in find_run_files(root) if f.parent.name.endswith(run_id)]


def test_ctrl_c_during_a_run_then_the_same_command_reports_one_finished_run(tmp_path):
    """Case 1: the interrupted run is logged as killed, with the reason; the retry logs under its wandb id;
    the report reads one finished run, and its table is byte for byte that of a sweep never interrupted."""
    path, root = sweep_file(tmp_path / "ctrl_c.yaml"), tmp_path / "runs"
    agent = sweep(path, root, start_new_session=True)
    running = wait_for(lambda: next((r for r in records(root, path) if r.get("pid")), None), "the run to start")
    progress = SweepState(root, load(path).default_id).run_dir(running["id"]) / "progress.jsonl"
    wait_for(lambda: progress.is_file() and progress.read_text().strip(), "the run's first validation")
    os.killpg(agent.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the foreground process group
    out, err = agent.communicate(timeout=120)
    assert agent.returncode == 130, out + err
    assert "Traceback" not in out + err and "interrupted: run the same command again to resume" in out
    [killed] = records(root, path)
    assert killed["state"] == "killed" and killed["retry"]
    [run] = read_offline(root).runs.to_dict("records")
    assert run["state"] == "killed" and run["note"] == "interrupted by SIGINT (Ctrl-C)"  # its wandb run says so

    again = sweep(path, root)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, out + err
    retry = next(r for r in records(root, path) if r.get("retry_of") == killed["id"])
    assert retry["state"] == "finished" and retry["wandb_id"] == killed["id"] and not retry["resumes"]

    readme = report(root, tmp_path / "report")
    assert "From 1 runs (1 finished)" in readme and "Failed runs" not in readme, readme
    [merged] = read_offline(root).runs.to_dict("records")
    assert merged["run_id"] == killed["id"] and merged["state"] == "finished" and merged["note"] is None
    first, last = parts_configs(root, killed["id"])
    assert first == last  # the restart logs the configuration the interrupted start logged
    history = read_offline(root).history
    epochs = history[history["metric"] == keys.VAL_TOP1]["epoch"].tolist()
    assert epochs == list(range(TINY["trainer.max_epochs"]))  # each epoch once: the interrupted start's are gone

    whole = sweep(path, tmp_path / "whole")
    out, err = whole.communicate(timeout=300)
    assert whole.returncode == 0, out + err
    report(tmp_path / "whole", tmp_path / "report-whole")
    for name in ("faults.md", "faults.csv"):
        assert (tmp_path / "report" / name).read_text() == (tmp_path / "report-whole" / name).read_text(), name


def test_sigterm_to_the_run_itself_is_a_killed_run_retried_by_the_next_session(tmp_path):
    """SIGTERM to the run, not its agent (SLURM signals every process of a job; `kill PID`). Before, Lightning
    stopped at the next step and the run exited 0: recorded finished, half trained. Now the run is logged as
    killed with the reason, exits 143, and is retried (not by this session, which the signal was not meant to
    stop) when the sweep is run again. SIGHUP takes the same way (interrupts.raising)."""
    signum = signal.SIGTERM
    path, root = sweep_file(tmp_path / "term.yaml"), tmp_path / "runs"
    agent = sweep(path, root)
    running = wait_for(lambda: next((r for r in records(root, path) if r.get("pid")), None), "the run to start")
    progress = SweepState(root, load(path).default_id).run_dir(running["id"]) / "progress.jsonl"
    wait_for(lambda: progress.is_file() and progress.read_text().strip(), "the run's first validation")
    os.kill(running["pid"], signum)
    out, err = agent.communicate(timeout=120)
    assert agent.returncode == 1, out + err  # a run this command started did not finish
    [rec] = records(root, path)
    assert rec["state"] == "killed" and rec["exitcode"] == 128 + signum and rec["retry"], rec
    assert rec["not_retried_by"] and f"by {signal.Signals(signum).name}" in rec["note"]
    [run] = read_offline(root).runs.to_dict("records")
    assert run["state"] == "killed" and run["note"].startswith(f"interrupted by {signal.Signals(signum).name}")
    again = sweep(path, root)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, out + err
    assert "From 1 runs (1 finished)" in report(root, tmp_path / "report")
