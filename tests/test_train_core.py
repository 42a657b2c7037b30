"""The core of a run, `nlstudy.lit.train.run`, called with a resolved configuration (a plain nested dict, no
argument list), and `nlstudy.train`, which parses in memory and leaves the environment as it found it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

import nlstudy
from nlstudy import keys
from nlstudy.lit.train import TrainResult, run
from nlstudy.report.offline import read_offline

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "experiments" / "demo.yaml"
# what the libraries themselves set in this process: Lightning's seed_everything, wandb's service
# what the libraries set themselves: Lightning's seed and its WandbLogger (WANDB_MODE=dryrun when offline), wandb's
# service, scikit-learn's import (Intel OpenMP's KMP_* flags); nlstudy's own variables must stay as they were
LIBRARY_ENV = {"PL_GLOBAL_SEED", "PL_SEED_WORKERS", "WANDB_SERVICE", "WANDB_MODE", "KMP_DUPLICATE_LIB_OK",
               "KMP_INIT_AT_FORK"}


def tiny_demo() -> dict:
    """experiments/demo.yaml as a nested dict, shrunk to seconds."""
    config = yaml.safe_load(DEMO.read_text())
    config["seed_everything"] = 3
    config["trainer"].update(max_epochs=2)
    config["model"]["backbone"].update(width=4, nonlocal_blocks="1-block")
    config["data"].update(batch_size=8)
    config["data"]["synthetic"].update(train_samples=64, val_samples=32, test_samples=32)
    config["table"] = "core-test"
    return config


@pytest.mark.slow  # two short training runs in this process: seconds
def test_the_core_runs_a_resolved_config_dict_and_logs_the_run(tmp_path, monkeypatch):
    monkeypatch.delenv(keys.RUNS_ENV, raising=False)
    result = run(tiny_demo(), runs_dir=tmp_path)
    assert isinstance(result, TrainResult) and result.status == "finished"
    assert result.run_dir.parent.parent == tmp_path and result.run_id in result.run_dir.name
    assert {keys.VAL_TOP1_BEST, keys.TEST_TOP1, keys.WALL_S} <= set(result.summary)
    assert (result.run_dir / "files" / keys.CONFIG_FILE).is_file()
    for name in keys.WEIGHTS_FILES.values():
        assert (result.run_dir / "files" / keys.WEIGHTS_DIR / name).is_file()
    runs = read_offline(tmp_path).runs
    assert len(runs) == 1
    logged = runs.iloc[0]
    assert logged["state"] == "finished" and logged["table"] == "core-test" and logged[keys.SEED] == 3
    assert logged[keys.NONLOCAL_BLOCKS] == "1-block" and logged["model.backbone.width"] == 4
    assert logged[keys.NL_COUNT] == 1 and logged[keys.PARAMS] > 0
    assert logged[keys.TEST_TOP1] == pytest.approx(result.summary[keys.TEST_TOP1])


@pytest.mark.slow
def test_the_core_says_a_bad_key_in_one_line_before_anything_runs(tmp_path):
    from nlstudy.errors import UsageError

    config = tiny_demo()
    config["model"]["backbone"]["nonlocal_block"] = "1-block"
    with pytest.raises(UsageError, match="nonlocal_block"):
        run(config, runs_dir=tmp_path)
    assert not (tmp_path / "wandb").exists()


@pytest.mark.slow
def test_nlstudy_train_leaves_the_environment_as_it_was(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv(keys.RUNS_ENV, str(elsewhere))
    before = dict(os.environ)
    tiny = {"trainer.max_epochs": 1, "data.synthetic.train_samples": 64, "data.synthetic.val_samples": 32,
            "data.synthetic.test_samples": 32, "model.backbone.width": 4, "data.batch_size": 8}
    result = nlstudy.train(DEMO, tiny, runs_dir=tmp_path / "runs")
    after = dict(os.environ)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed <= LIBRARY_ENV, changed - LIBRARY_ENV
    assert result.run_dir.parent.parent == tmp_path / "runs" and not elsewhere.exists()
