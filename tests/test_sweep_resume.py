"""A sweep whose run is killed, twice, resumes it from its checkpoint under the same wandb id.

The run is SIGKILLed mid-training (the OOM killer's way), then, once resumed, its agent is SIGKILLed (the
run dies with it). Each time, running the sweep again continues the run from its last checkpoint: the report
reads one run whose metrics are bit-identical to those of the same configuration trained without a break."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nlstudy import keys
from nlstudy.report.offline import read_offline
from nlstudy.sweep import cli
from nlstudy.sweep.spec import load
from nlstudy.sweep.state import SweepState

ROOT = Path(__file__).resolve().parents[1]
# the demo shrunk (tests/test_resume.py's TINY) to 6 short epochs, with the run's checkpoint on
TINY = {
    "data.synthetic.train_samples": 64, "data.synthetic.val_samples": 32, "data.synthetic.test_samples": 32,
    "model.backbone.width": 4, "data.batch_size": 8, "model.optim.lr": 0.02, "seed_everything": 0,
    "model.backbone.nonlocal_blocks": "1-block", "trainer.enable_checkpointing": True, "trainer.max_epochs": 6,
}
SWEEP = {
    "method": "grid", "metric": {"name": keys.VAL_TOP1_BEST, "goal": "maximize"},
    "command": ["nlstudy", "fit", "--config", "experiments/demo.yaml", "--config", "${args_json_file}"],
    "parameters": {"table": {"value": "resume"}, **{k: {"value": v} for k, v in TINY.items()}},
}
COMPARED = (keys.VAL_LOSS, keys.VAL_TOP1, keys.VAL_TOP1_BEST, keys.TEST_TOP1, keys.TEST_TOP5, "epoch")


# a bound on waiting, not on speed: each wait ends as soon as its condition holds. A run and its agent start
# python, torch and Lightning first; with the other test worker and other users on the two cores the resumed
# run's first checkpoint took more than 120 s (make test -n 2 at load average 7)
def wait_for(condition, what: str, timeout: float = 300.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def checkpoint_in(root: Path, wandb_id: str, newer_than: float = 0.0) -> Path | None:
    """A checkpoint of the run written after `newer_than` (a part's own checkpoint, not one it inherited)."""
    for run_dir in keys.run_dirs(wandb_id, root):
        ckpt = keys.checkpoint_file(run_dir)
        if ckpt.is_file() and ckpt.stat().st_mtime > newer_than:
            return ckpt
    return None


@pytest.mark.slow  # four agent sessions of one short run each: about 40 s
def test_a_killed_run_resumes_from_its_checkpoint_and_counts_once(tmp_path):
    path, root = tmp_path / "resume.yaml", tmp_path / "runs"
    path.write_text(json.dumps(SWEEP))  # JSON is YAML
    state = SweepState(root, load(path).default_id)
    agent_cmd = [sys.executable, "-m", "nlstudy", "sweep", str(path), "--runs-root", str(root)]
    env = {k: v for k, v in os.environ.items() if k != keys.RUNS_ENV}

    # 1. the run is killed with SIGKILL once it has a checkpoint: crashed, kept for the next session
    agent = subprocess.Popen(agent_cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first = wait_for(lambda: next((r for r in state.records() if r.get("pid")), None) if state.exists() else None,
                     "the run to start")
    wait_for(lambda: checkpoint_in(root, first["id"]), "the run's first checkpoint")
    os.kill(first["pid"], signal.SIGKILL)
    out, _ = agent.communicate(timeout=60)
    assert agent.returncode == 1, out
    assert "crashed by signal 9" in out and "retried (resumed from its last checkpoint" in out
    [rec] = state.records()
    assert rec["state"] == "crashed" and rec["retry"] and not rec.get("retried_by")

    # 2. the next session resumes it under the same wandb id; its agent is SIGKILLed in turn
    started = time.time()
    agent = subprocess.Popen(agent_cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: checkpoint_in(root, first["id"], newer_than=started), "the resumed run's checkpoint")
        second = next(r for r in state.records() if r.get("retry_of") == first["id"])
        assert second["wandb_id"] == first["id"] and second["resumes"]
        agent.kill()
        agent.wait(timeout=30)
    finally:
        if agent.poll() is None:
            agent.kill()
    wait_for(lambda: not Path(f"/proc/{second['pid']}").exists(), "the run to die with its agent", timeout=30)

    # 3. this session reaps the dead agent's run and resumes it again, to the end
    assert cli.main([str(path), "--runs-root", str(root)]) == 0
    recs = {r["id"]: r for r in state.records()}
    third = next(r for r in recs.values() if r.get("retry_of") == second["id"])
    assert recs[second["id"]]["state"] == "crashed" and recs[second["id"]]["note"] == "its agent died while it ran"
    assert third["state"] == "finished" and third["wandb_id"] == first["id"]
    assert len(keys.run_dirs(first["id"], root)) == 3  # one wandb run, written in three parts

    # the report counts one run, with the metrics of the same run trained without a break
    runs = read_offline(root).runs
    assert list(runs["run_id"]) == [first["id"]] and runs["state"].iloc[0] == "finished"
    assert cli.main([str(path), "--runs-root", str(tmp_path / "full")]) == 0  # the same run, never stopped
    full = read_offline(tmp_path / "full").runs
    assert {k: runs[k].iloc[0] for k in COMPARED} == {k: full[k].iloc[0] for k in COMPARED}
    # the sweep's own record of the last part carries the whole validation history, each epoch once
    assert [row["epoch"] for row in third["history"]] == list(range(TINY["trainer.max_epochs"]))
