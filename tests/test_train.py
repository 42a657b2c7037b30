"""The training slice: schedule, multi-view scoring, configs, and real `nlstudy fit` runs logged offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nlstudy import keys
from nlstudy.lit.module import VideoClassifier
from nlstudy.lit.optim import OptimSpec, lr_factor
from nlstudy.models import BackboneSpec
from nlstudy.report.offline import read_offline

ROOT = Path(__file__).resolve().parents[1]
TINY = [  # the demo config shrunk to seconds
    "--trainer.max_epochs=2", "--data.synthetic.train_samples=64", "--data.synthetic.val_samples=32",
    "--data.synthetic.test_samples=32", "--model.backbone.width=4",
]


def nlstudy(*args: str, runs: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    environ = {**os.environ, "WANDB_MODE": "offline", "NLSTUDY_RUNS_DIR": str(runs), "NLSTUDY_NUM_THREADS": "1",
               **(env or {})}
    return subprocess.run([sys.executable, "-m", "nlstudy", *args], cwd=ROOT, env=environ, capture_output=True,
                          text=True, timeout=timeout)


def check_verdicts(result: subprocess.CompletedProcess) -> list[dict]:
    """The JSON verdicts `nlstudy check` printed; a run that printed none (a crash exits 1 too) fails the
    test with its exit code and stderr rather than a JSON decode error."""
    try:
        return json.loads(result.stdout)
    except ValueError:
        pytest.fail(f"nlstudy check exited {result.returncode} without JSON verdicts on stdout; stdout: "
                    f"{result.stdout[-1000:]!r}\nstderr:\n{result.stderr[-3000:]}")


def test_step_schedule_divides_by_ten_at_the_milestones_after_warmup():
    spec = OptimSpec(schedule="step", milestones=(0.375, 0.75), gamma=0.1, warmup=0.1)
    assert lr_factor(spec, 0, 400) == 0.0
    assert lr_factor(spec, 20, 400) == pytest.approx(0.5)  # half-way through the warm-up
    assert lr_factor(spec, 100, 400) == 1.0
    assert lr_factor(spec, 150, 400) == pytest.approx(0.1)  # 150k of 400k
    assert lr_factor(spec, 300, 400) == pytest.approx(0.01)  # 300k of 400k
    cosine = OptimSpec(schedule="cosine")
    assert lr_factor(cosine, 0, 100) == 1.0 and lr_factor(cosine, 50, 100) == pytest.approx(0.5)
    assert lr_factor(cosine, 100, 100) == pytest.approx(0.0, abs=1e-12)


def test_bad_optimiser_settings_are_rejected():
    with pytest.raises(ValueError, match="model.optim.milestones"):
        VideoClassifier(optim=OptimSpec(milestones=(0.8, 0.2)))
    with pytest.raises(ValueError, match="model.optim.name"):
        VideoClassifier(optim=OptimSpec(name="lion"))


def test_multi_view_scores_average_the_views_probabilities():
    model = VideoClassifier(BackboneSpec(depth=18, width=4, num_classes=3, conv1_stride=(1, 2, 2),
                                         pool1=False, pool2=False)).eval()
    views = torch.randn(2, 5, 3, 2, 16, 16)  # (B, V, C, T, H, W)
    with torch.no_grad():
        got = model.scores(views).exp()
        want = torch.stack([model(views[:, v]).softmax(-1) for v in range(5)], 1).mean(1)
    torch.testing.assert_close(got, want)


@pytest.mark.slow  # starts the training CLI in a subprocess (torch + LightningCLI): seconds
def test_every_experiment_config_is_valid(tmp_path):
    configs = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "experiments").glob("*.yaml"))
    assert "experiments/demo.yaml" in configs
    candidates = tmp_path / "candidates.json"
    candidates.write_text(json.dumps([["fit", "--config", c] for c in configs]))
    # --config-only: the paper recipes ask for GPUs, which this machine may lack (checked below)
    result = nlstudy("check", "--config-only", str(candidates), runs=tmp_path)
    assert result.returncode == 0, f"{configs}\nverdicts: {result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    verdicts = check_verdicts(result)
    assert [v["ok"] for v in verdicts] == [True] * len(configs), dict(zip(configs, verdicts))
    # against this machine: a config is refused only for what the machine lacks, never for its settings
    verdicts = check_verdicts(nlstudy("check", str(candidates), runs=tmp_path))
    assert all(v["ok"] or v["machine"] for v in verdicts), dict(zip(configs, verdicts))
    assert verdicts[configs.index("experiments/demo.yaml")]["ok"]


@pytest.mark.parametrize("bad,message", [
    ("--model.backbone.arch=c3d", "model.backbone.arch"),
    ("--model.backbone.nonlocal_blocks=7-block", "model.backbone.nonlocal_blocks preset '7-block'; valid choices"),
    ("--model.backbone.depth=20", "model.backbone.depth"),
    ("--model.bogus=1", "model.bogus: unknown key; valid keys under model: backbone, channels_last"),
    ("--data.dataset=kinetix", "data.dataset 'kinetix'; valid choices"),
    ("--data.dataset=kinetics --data.video.root=/no/such/dir", "data.video.root: /no/such/dir does not exist"),
    ("--model.backbone.nl.subsample=[2,2]", "model.backbone.nl: subsample='[2,2]': expected true, false or a 3-d"),
])
@pytest.mark.slow  # starts the training CLI in a subprocess (torch + LightningCLI): seconds
def test_bad_keys_and_values_fail_in_one_line_before_any_run(tmp_path, bad, message):
    result = nlstudy("fit", "--config", "experiments/demo.yaml", *bad.split(), runs=tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("nlstudy fit: error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert not (tmp_path / "wandb").exists()  # nothing was logged


@pytest.mark.slow
def test_fit_logs_an_offline_wandb_run_with_the_whole_record(tmp_path):
    progress = tmp_path / "progress.jsonl"
    result = nlstudy("fit", "--config", "experiments/demo.yaml", *TINY, "--model.backbone.nonlocal_blocks=1-block",
                     "--table=demo-test", "--seed_everything=3", runs=tmp_path,
                     env={"NLSTUDY_PROGRESS_FILE": str(progress)})
    assert result.returncode == 0, result.stderr[-3000:]
    collection = read_offline(tmp_path)
    runs, history = collection.runs, collection.history
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["state"] == "finished" and run["table"] == "demo-test"
    # the whole resolved config under the CLI's dotted keys, plus the derived facts
    assert run[keys.NONLOCAL_BLOCKS] == "1-block" and run[keys.SEED] == 3 and run[keys.DEPTH] == 18
    assert run[keys.TASK] == "far" and run["model.optim.name"] == "adamw"
    assert list(run[keys.NL_POSITIONS]) == ["res4.0"] and list(run[keys.NL_THW]) == ["4x2x2"]
    assert run[keys.NL_COUNT] == 1 and run[keys.PARAMS] > 0 and run[keys.FLOPS] > 0
    assert run[keys.INPUT_SHAPE] == "3x4x16x16"
    # the summary: validation (final and best), test, wall time, throughput, memory
    for metric in (keys.VAL_TOP1, keys.VAL_TOP5, keys.VAL_TOP1_BEST, keys.VAL_TOP5_BEST, keys.TEST_TOP1,
                   keys.TEST_TOP5, keys.WALL_S, keys.TRAIN_CLIPS_PER_S, keys.PEAK_MEM_MB):
        assert run[metric] == run[metric], metric  # present, not NaN
    assert 0 <= run[keys.TEST_TOP1] <= 100 and run[keys.VAL_TOP1_BEST] >= run[keys.VAL_TOP1]
    assert run[keys.WALL_S] > 0 and run[keys.TRAIN_CLIPS_PER_S] > 0
    val_curve = history[history["metric"] == keys.VAL_TOP1]
    assert len(val_curve) == 2  # one point per epoch
    lines = [json.loads(line) for line in progress.read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [0, 1] and all(keys.VAL_TOP1 in line for line in lines)
    # the resolved YAML travels with the run
    assert list(Path(run["path"]).rglob("nlstudy_config.yaml"))


@pytest.mark.slow
def test_a_stop_request_ends_training_cleanly_after_the_epoch(tmp_path):
    stop = tmp_path / "stop"
    stop.touch()
    result = nlstudy("fit", "--config", "experiments/demo.yaml", *TINY, "--trainer.max_epochs=5", runs=tmp_path,
                     env={"NLSTUDY_STOP_FILE": str(stop)})
    assert result.returncode == 0, result.stderr[-3000:]
    collection = read_offline(tmp_path)
    runs, history = collection.runs, collection.history
    assert runs.iloc[0]["state"] == "finished" and bool(runs.iloc[0]["stopped_by_sweep"])
    assert len(history[history["metric"] == keys.VAL_TOP1]) == 1


@pytest.mark.slow  # starts the training CLI in a subprocess (torch + LightningCLI): seconds
def test_check_reports_each_bad_argument_list_in_one_line(tmp_path):
    values = tmp_path / "values.json"
    values.write_text(json.dumps({"table": 5}))  # what a sweep's ${args_json_file} could carry
    candidates = tmp_path / "candidates.json"
    candidates.write_text(json.dumps([
        ["fit", "--config", "experiments/demo.yaml", "--config", str(values)],
        ["fit", "--config", "experiments/demo.yaml", "--model.backbone.nonlocal_blocks=res4"],
    ]))
    result = nlstudy("check", str(candidates), runs=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    verdicts = check_verdicts(result)
    assert [v["ok"] for v in verdicts] == [False, True], verdicts
    assert verdicts[0]["error"] == 'Parser key "table": expected str or null; given value: 5'
