"""Issue 20: today's training step (the small-map convolutions, channels_last_3d, the fused AdamW step, the non-local
block's explicit paths, the clip cache) keeps a run's numbers deterministic: one seed of one configuration gives
the same metrics and final weights, bit for bit, in two processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nlstudy import keys
from nlstudy.report.offline import read_offline

ROOT = Path(__file__).resolve().parents[1]
# the demo's config (experiments/demo.yaml: width 16, channels_last, fused AdamW) shrunk to seconds, with the
# demo's 5-block map: every path of today's step runs (dense res4/res5 convs, pointwise shortcuts, the blocks)
RUN = ["fit", "--config", "experiments/demo.yaml", "--model.backbone.nonlocal_blocks={res3: [1], res4: [1]}",
       "--trainer.max_epochs=2", "--data.synthetic.train_samples=96", "--data.synthetic.val_samples=32",
       "--data.synthetic.test_samples=32", "--seed_everything=3", "--trainer.log_every_n_steps=1"]


def start(runs: Path) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", keys.RUNS_ENV: str(runs),
           keys.THREADS_ENV: "1"}
    env.pop("WANDB_SERVICE", None)
    return subprocess.Popen([sys.executable, "-m", "nlstudy", *RUN], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow  # two short training runs in subprocesses, side by side: about 30 s on two busy cores
def test_one_seed_gives_the_same_metrics_and_weights_bit_for_bit_in_two_processes(tmp_path):
    roots = [tmp_path / "a", tmp_path / "b"]
    procs = [start(root) for root in roots]
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-3000:]
    runs = [read_offline(root).runs.iloc[0] for root in roots]
    metrics = [k for k in runs[0].index if k.split("/")[0] in ("train", "val", "test") and not pd_isna(runs[0][k])]
    assert {keys.VAL_TOP1, keys.VAL_TOP1_BEST, keys.TEST_TOP1, keys.TRAIN_LOSS, keys.VAL_LOSS} <= set(metrics)
    assert [runs[0][k] for k in metrics] == [runs[1][k] for k in metrics]  # every logged metric, exactly
    weights = [torch.load(keys.weights_file(Path(r["path"]), "final"), weights_only=True)["state_dict"]
               for r in runs]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    # and not trivially: the weights moved
    assert any(not torch.equal(w, torch.zeros_like(w)) for k, w in weights[0].items() if "nonlocal" in k and "out_norm.weight" in k)


def pd_isna(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value)) if not isinstance(value, (list, dict)) else False
