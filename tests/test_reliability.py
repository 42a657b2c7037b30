"""Reliability, end to end (issue 10): one tiny real sweep through the local agent, with credentials in its
environment, whose first run's loss turns NaN; a second copy of its other run in this process, recorded from
another host and commit; then the report.

- A non-finite loss stops its run at once, failed, with the reason in the run's record, the agent's record
  and the report's list of failed runs; the sweep goes on; no table holds a number of the run.
- The same seed on the CPU gives the same metrics, bit for bit, in another process; every run records
  its provenance (git commit and dirty flag, package versions, host) in its config, and runs that differ
  only in provenance are one row of the table.
- No credential from the environment is written anywhere under the runs root or the report.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import wandb
import yaml

import nlstudy
from nlstudy import keys, provenance
from nlstudy.processes import cores
from nlstudy.lit import record as lit_record
from nlstudy.lit.finite import LossWatch, NonFiniteLossError
from nlstudy.report import cli as report_cli
from nlstudy.report.offline import read_offline

pytestmark = pytest.mark.filterwarnings("ignore:LightningCLI's args parameter:UserWarning",
                                        "ignore:.*does not have many workers.*", "ignore:.*GPU available.*")
ROOT = Path(__file__).resolve().parents[1]
TABLE = "reliability"
SETTINGS = {  # the demo shrunk to seconds (tests/test_train.py's TINY)
    "table": TABLE, "trainer.max_epochs": 2, "data.synthetic.train_samples": 64, "data.synthetic.val_samples": 32,
    "data.synthetic.test_samples": 32, "model.backbone.width": 4,
}
HUGE_LR = 1.0e30  # the loss is NaN after the first step
LR = 0.005  # experiments/demo.yaml's
SWEEP = {
    "method": "grid",
    "command": ["nlstudy", "fit", "--config", "experiments/demo.yaml", "--config", "${args_json_file}"],
    "parameters": {**{k: {"value": v} for k, v in SETTINGS.items()}, "model.optim.lr": {"values": [HUGE_LR, LR]}},
}
# credentials as a user's shell holds them (any *_TOKEN, *_KEY, *_SECRET), each a unique random value
SECRETS = {name: f"{name.lower()}-{secrets.token_hex(12)}"
           for name in ("WANDB_API_KEY", "NLSTUDY_TEST_TOKEN", "NLSTUDY_TEST_KEY", "NLSTUDY_TEST_SECRET")}
ELSEWHERE = {"host": "another-host", "git_commit": "0" * 40, "git_dirty": False}
COMPARED = (keys.VAL_LOSS, keys.VAL_TOP1, keys.VAL_TOP1_BEST, keys.TEST_TOP1, "test/loss")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """(runs root, report folder, the agent's output, the runs frame): the sweep (the NaN run first), the
    twin of its good run in this process, then `nlstudy report`, all with SECRETS in the environment."""
    tmp = tmp_path_factory.mktemp("reliability")
    root, results, sweep_file = tmp / "runs", tmp / "results", tmp / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump(SWEEP))
    env = {**os.environ, **SECRETS, "WANDB_SILENT": "true"}
    agent = subprocess.run([sys.executable, "-m", "nlstudy", "sweep", str(sweep_file), "--runs-root", str(root),
                            "--project", "reliability"], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=600)
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**SECRETS, "WANDB_MODE": "offline", "WANDB_SILENT": "true",
                            keys.THREADS_ENV: str(cores())}.items():  # the threads the agent gave its run
            patch.setenv(name, value)
        # the same run elsewhere: only its provenance differs
        patch.setattr(lit_record, "provenance", lambda: {**provenance.provenance(), **ELSEWHERE}, raising=False)
        twin = nlstudy.train(ROOT / "experiments" / "demo.yaml", {**SETTINGS, "model.optim.lr": LR}, runs_dir=root)
        # this process's wandb service stops and its address ($WANDB_SERVICE) leaves the environment: the
        # processes later tests start (a run they kill, wandb's log reader) must not attach to it
        wandb.teardown()
        code = report_cli.main(["--runs", str(root), "--out", str(results)])
    torch.set_num_threads(threads)
    assert code == 0
    runs = read_offline(root).runs.set_index("run_id")
    return root, results, agent, runs, twin.run_id


def sweep_records(root: Path) -> dict[float, dict]:
    """The agent's run.json records, by learning rate."""
    records = [json.loads(p.read_text()) for p in (root / "sweeps").glob("*/runs/*/run.json")]
    return {r["config"]["model.optim.lr"]["value"]: r for r in records}


@pytest.mark.slow  # a sweep of two runs, a run in this process and the report: about 40 s on two busy cores
def test_a_nonfinite_loss_fails_its_run_at_once_with_the_reason_and_the_sweep_goes_on(study):
    root, results, agent, runs, _ = study
    assert agent.returncode == 1, agent.stdout + agent.stderr  # a run failed
    assert "2/2 runs done (1 failed)" in agent.stdout, agent.stdout
    records = sweep_records(root)
    bad, good = records[HUGE_LR], records[LR]
    assert good["state"] == "finished"  # the sweep went on after the failure
    # stopped at once: at its first non-finite loss, before any validation; the reason is its last line
    assert bad["state"] == "failed" and bad["exitcode"] == 1
    reason = re.fullmatch(r"nlstudy fit: failed: (NonFiniteLossError: train/loss became (nan|inf|-inf) "
                          r"at step (\d+) \(epoch 0\))", bad["note"])
    assert reason, bad["note"]
    assert bad["summary"] == {}  # no validation row in the agent's progress file
    # the wandb run: failed, with the reason; no validation or test metric logged
    run = runs.loc[bad["id"]]
    assert run["state"] == "failed" and run["note"] == reason.group(1)
    assert pd.isna(run[keys.VAL_TOP1]) and pd.isna(run[keys.TEST_TOP1]) and keys.FAILURE not in runs.columns
    assert runs.loc[good["id"], "state"] == "finished" and pd.isna(runs.loc[good["id"], "note"])
    # the report: the run is listed as failed with its reason, and its table row holds no number
    readme = (results / "README.md").read_text()
    assert f"| {bad['id']} | {TABLE} | failed | {reason.group(1)} |" in readme.split("## Failed runs")[1]
    table = pd.read_csv(results / f"{TABLE}.csv").set_index("model.optim.lr")
    assert table.loc[HUGE_LR, "status"] == "failed" and table.loc[HUGE_LR, "n"] == 0
    assert table.loc[HUGE_LR, ["mean", "val_top1_best", "delta"]].isna().all()
    assert table.loc[LR, "status"] == "ok" and table.loc[LR, "mean"] == runs.loc[good["id"], keys.TEST_TOP1]
    assert table.loc[LR, "val_top1_best"] == runs.loc[good["id"], keys.VAL_TOP1_BEST]


@pytest.mark.slow
def test_the_same_seed_gives_the_same_metrics_and_every_run_records_its_provenance(study):
    root, results, _, runs, twin = study
    good = sweep_records(root)[LR]["id"]
    # another process, the same numbers, bit for bit (and not trivially: losses, not only accuracies)
    assert runs.loc[twin, list(COMPARED)].tolist() == runs.loc[good, list(COMPARED)].tolist()
    # provenance: git commit and dirty flag of this checkout, the versions, the host, in the run's config
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    run = runs.loc[good]
    assert run["provenance.git_commit"] == commit and run["provenance.git_dirty"] in (True, False)
    assert run["provenance.host"] == socket.gethostname()
    for package in provenance.PACKAGES:
        assert run[f"provenance.versions.{package}"] == importlib.metadata.version(package), package
    assert runs.loc[twin, "provenance.host"] == "another-host"
    assert runs.loc[twin, "provenance.git_commit"] == "0" * 40
    # runs that differ only in provenance are one row (the twin counts as a duplicate of the seed)
    table = pd.read_csv(results / f"{TABLE}.csv")
    assert len(table) == 2 and not any(c.startswith("provenance") for c in table.columns)
    row = table.set_index("model.optim.lr").loc[LR]
    assert row["n"] == 1 and row["n_dup"] == 1


@pytest.mark.slow
def test_no_credential_from_the_environment_is_written(study):
    root, results, _, _, _ = study
    files = [p for folder in (root, results) for p in folder.rglob("*") if p.is_file()]
    assert len(files) > 20 and any(p.suffix == ".wandb" for p in files)
    leaks = [f"{p}: {name}" for p in files for name, value in SECRETS.items() if value.encode() in p.read_bytes()]
    assert not leaks


@pytest.mark.slow  # `nlstudy sweep` in a subprocess: a second or two
def test_a_sweep_command_cannot_put_a_credential_on_the_command_line(tmp_path):
    """${envvar:NAME} of a credential would be written into the run's records (run.json's command, wandb's
    args): refused in one line before anything runs."""
    marker = tmp_path / "ran"
    sweep = tmp_path / "leaky.yaml"
    sweep.write_text(json.dumps({
        "method": "grid", "parameters": {"x": {"value": 1}},
        "command": [sys.executable, "-c", f"open({str(marker)!r}, 'w')", "--token=${envvar:NLSTUDY_TEST_TOKEN}"],
    }))
    root = tmp_path / "runs"
    result = subprocess.run([sys.executable, "-m", "nlstudy", "sweep", str(sweep), "--runs-root", str(root)],
                            cwd=ROOT, env={**os.environ, **SECRETS}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "${envvar:NLSTUDY_TEST_TOKEN} would put a secret on the run's command line" in result.stderr
    assert str(sweep) in result.stderr
    assert not marker.exists()
    leaks = [p for p in tmp_path.rglob("*") if p.is_file() and SECRETS["NLSTUDY_TEST_TOKEN"].encode() in p.read_bytes()]
    assert not leaks


def test_the_loss_watch_names_the_step_of_the_first_nonfinite_loss():
    watch = LossWatch(keys.TRAIN_LOSS)
    for step, value in enumerate([2.3, 1.7, 0.9]):
        watch.check(torch.tensor(value, requires_grad=True) * 1, step, 0)
    for value, word in ((float("nan"), "nan"), (float("inf"), "inf"), (-float("inf"), "-inf")):
        with pytest.raises(NonFiniteLossError, match=rf"^train/loss became {word} at step 37 \(epoch 2\)$"):
            watch.check(torch.tensor(value), 37, 2)


def test_provenance_without_git_is_unknown_not_an_error(tmp_path, monkeypatch):
    assert provenance.git_state(tmp_path) == {"git_commit": "unknown", "git_dirty": "unknown"}  # not a checkout
    monkeypatch.setenv("PATH", str(tmp_path))  # no git program at all
    record = provenance.provenance()
    assert record["git_commit"] == record["git_dirty"] == "unknown"
    assert record["host"] == socket.gethostname()
    assert record["versions"]["torch"] == importlib.metadata.version("torch")


def test_credential_names():
    assert all(keys.is_secret(name) for name in [*SECRETS, "HF_TOKEN", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD"])
    assert not any(keys.is_secret(name)
                   for name in ("PATH", "HOME", keys.RUNS_ENV, "WANDB_MODE", "TOKENIZERS_PARALLELISM"))
