"""Two CPU processes (DDP over gloo) through the real CLI: the logged val/test metrics are those of the
whole split, gathered across the processes, not one process's half; only the first process writes the
run's files (progress rows, weights, checkpoint).

`nlstudy fit --trainer.strategy=ddp` starts the second process the way Lightning does (it re-runs the
command line with the process's rank in the environment), so this runs in a subprocess, with the
WandbLogger on (rank 0 logs; the others hold a dummy experiment)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from nlstudy import keys

ROOT = Path(__file__).resolve().parents[1]
DATA = {"train_samples": 64, "val_samples": 32, "test_samples": 32}  # 32: the two halves hold 16 clips each
ARGS = [
    "fit", "--config", "experiments/demo.yaml", "--trainer.max_epochs=2", "--model.backbone.width=4",
    "--data.batch_size=8", "--model.optim.lr=0.02", "--trainer.enable_checkpointing=true",
    *(f"--data.synthetic.{k}={v}" for k, v in DATA.items()),
    "--trainer.accelerator=cpu", "--trainer.strategy=ddp", "--trainer.devices=2",
]


def evaluate(model: torch.nn.Module, clips: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    with torch.no_grad():
        log_probs = model(clips).log_softmax(-1)
    return {"loss": F.nll_loss(log_probs, labels).item(),
            "top1": 100 * (log_probs.argmax(-1) == labels).float().mean().item()}


@pytest.mark.slow  # three processes (the CLI and its DDP worker, then wandb's reader): ~20 s on 2 cores
def test_ddp_on_two_cpu_processes_logs_the_whole_splits_metrics(tmp_path):
    from nlstudy.analysis import load_run
    from nlstudy.data import ClipDataModule
    from nlstudy.data.synthetic import SyntheticSpec
    from nlstudy.report.offline import read_runs

    progress = tmp_path / "progress.jsonl"
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", keys.RUNS_ENV: str(tmp_path / "runs"),
           keys.THREADS_ENV: "1", keys.PROGRESS_ENV: str(progress)}
    result = subprocess.run([sys.executable, "-m", "nlstudy", *ARGS], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Starting with 2 processes" in result.stderr + result.stdout
    assert "sync_dist=True" not in result.stderr  # the module logs gathered values and says so
    [run_dir] = (tmp_path / "runs" / "wandb").glob("offline-run-*")
    run = read_runs([run_dir]).runs.iloc[0]
    assert run["state"] == "finished"
    rows = [json.loads(line) for line in progress.read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [0, 1]  # one row per validation: the first process writes them
    assert (run_dir / "files" / keys.CHECKPOINTS_DIR / keys.LAST_CHECKPOINT).is_file()

    # the final weights (the last validation and the test ran with them), on each split computed here at once
    model, _ = load_run(run_dir)
    data = ClipDataModule(frames=4, size=16, synthetic=SyntheticSpec(**DATA))
    data.setup("fit")
    data.setup("test")
    for split in ("val", "test"):
        clips, labels = (torch.stack(t) for t in zip(*(data.split(split)[i] for i in range(len(data.split(split))))))
        whole = evaluate(model, clips, labels)
        halves = [evaluate(model, clips[rank::2], labels[rank::2]) for rank in (0, 1)]  # DistributedSampler's
        assert all(h["loss"] != pytest.approx(whole["loss"], rel=1e-4) for h in halves)  # the check can tell
        assert run[f"{split}/loss"] == pytest.approx(whole["loss"], rel=1e-5), (split, whole, halves)
        assert run[f"{split}/top1"] == pytest.approx(whole["top1"], abs=1e-4), (split, whole, halves)
