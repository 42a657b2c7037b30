"""benchmarks/training.py (issue 11, training overhead): its measurement code on tiny sizes. No timing is
asserted; what is: every side runs and is timed, and the Lightning run and the plain loop end with the same
weights, bit for bit (the same model, batches, optimiser and schedule)."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from nlstudy import keys

ROOT = Path(__file__).resolve().parents[1]
TINY = ("--data.synthetic.train_samples=32", "--data.synthetic.val_samples=8", "--data.synthetic.test_samples=8",
        "--data.batch_size=4", "--model.backbone.width=2")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_training", ROOT / "benchmarks" / "training.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_per_step_and_weight_check(bench):
    starts = [(0.0, 0.0), (1.0, 0.5), (3.0, 1.5), (6.0, 2.0)]
    assert bench.per_step(starts, warmup=1, steps=2) == (2.5, 0.75)
    with pytest.raises(RuntimeError, match="needs 4"):
        bench.per_step(starts[:3], warmup=1, steps=2)
    weights = {"w": torch.ones(3)}
    assert bench.equal_weights(weights, {"w": torch.ones(3)})
    assert not bench.equal_weights(weights, {"w": torch.ones(3).nextafter(torch.tensor(2.0))})  # one bit
    assert not bench.equal_weights(weights, {"v": torch.ones(3)})


@pytest.mark.slow
def test_measurement_on_tiny_sizes(bench, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(keys.RUNS_ENV, str(tmp_path))
    threads = torch.get_num_threads()
    bench.main(["--steps=2", "--warmup=1", "--repeats=1", *TINY])  # the exit status is the timing targets'
    assert torch.get_num_threads() == threads
    out = capsys.readouterr().out
    rows = {line.split()[1]: line.split() for line in out.splitlines() if line.split()[:1] == ["1"]}
    assert set(rows) == {"wall", "cpu"}, out
    for clock, row in rows.items():
        lightning_s, plain_s, load_s = float(row[2]), float(row[3]), float(row[6])
        assert lightning_s > 0 and plain_s > 0 and load_s > 0, row
        assert row[-1] == "yes", f"{clock}: the Lightning run and the plain loop ended with different weights"
    assert "logger: wandb" in out
