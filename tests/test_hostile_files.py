"""Hostile files (issue 10): a weights file or checkpoint crafted to run code when unpickled is refused by
every entry point that reads one, in one line naming the file, and runs nothing; a sweep file's command
runs only the program it names, its elements passed literally (no shell)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import nlstudy
from nlstudy import keys
from nlstudy.analysis import load_run
from nlstudy.data import cifar
from nlstudy.errors import UsageError
from nlstudy.lit.check import CheckCLI
from nlstudy.lit.module import VideoClassifier
from nlstudy.models import BackboneSpec, build_model

pytestmark = pytest.mark.filterwarnings("ignore:LightningCLI's args parameter:UserWarning")
ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "experiments" / "demo.yaml"
REFUSED = "refused by torch.load(weights_only=True): it names posix.system, which unpickling would call"


class RunsCode:
    """What a crafted file holds: unpickling it calls os.system, which creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "the crafted file ran its code"


def crafted(path: Path, marker: Path, legacy: bool = False) -> Path:
    """A weights file / checkpoint holding real tensors beside the payload, in torch.save's zip format or
    its legacy one (which cannot be memory-mapped)."""
    payload = {"state_dict": {"fc.weight": torch.zeros(2, 2)}, "backbone": {}, "extra": RunsCode(marker)}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path, _use_new_zipfile_serialization=not legacy)
    return path


def crafted_run(root: Path, marker: Path, legacy: bool = False) -> Path:
    """A run directory as nlstudy writes one, whose weights and checkpoint are crafted files."""
    run = root / "wandb" / "offline-run-20260101_000000-hostile1"
    crafted(keys.weights_file(run, "final"), marker, legacy)
    crafted(run / "files" / keys.CHECKPOINTS_DIR / keys.LAST_CHECKPOINT, marker, legacy)
    shutil.copyfile(DEMO, keys.config_file(run))
    return run


def refusal(error: pytest.ExceptionInfo, what: str, path: Path) -> str:
    text = str(error.value)
    assert "\n" not in text and text.startswith(what) and f"{path}: {REFUSED}" in text, text
    return text


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_imagenet_weights_that_run_code_are_refused(tmp_path, marker, legacy):  # model.backbone.pretrained
    evil = crafted(tmp_path / "resnet18.pth", marker, legacy)
    with pytest.raises(ValueError) as error, torch.device("meta"):
        build_model(depth=18, num_classes=3, pretrained=str(evil))
    refusal(error, f"{keys.PRETRAINED}: ", evil)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_a_runs_weights_that_run_code_are_refused_by_init_from(tmp_path, marker, legacy):  # model.init_from
    run = crafted_run(tmp_path / "runs", marker, legacy)
    with pytest.raises(ValueError) as error:
        VideoClassifier(BackboneSpec(width=4, num_classes=2), init_from=str(run))
    refusal(error, f"{keys.INIT_FROM}: ", keys.weights_file(run, "final"))


def test_a_runs_weights_that_run_code_are_refused_by_the_analysis(tmp_path, marker):  # nlstudy.analysis.load_run
    run = crafted_run(tmp_path / "runs", marker)
    with pytest.raises(ValueError) as error:
        load_run(run)
    refusal(error, f"run {run.name}: ", keys.weights_file(run, "final"))


def test_a_cifar_pickle_that_runs_code_is_refused(tmp_path, marker):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": RunsCode(marker)}, protocol=2))
    with pytest.raises(ValueError, match=r"batches.meta is not a CIFAR pickle \(UnpicklingError: refusing posix.sys"):
        cifar.load(folder / "batches.meta")


@pytest.fixture
def hostile_run(tmp_path, marker, monkeypatch):
    """(runs root, a run whose checkpoint runs code) with wandb offline."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    runs = tmp_path / "runs"
    run = crafted_run(runs, marker)
    yield runs, run
    assert [p.name for p in runs.iterdir()] == ["wandb"]  # nothing was logged: no new run directory
    assert [p.name for p in (runs / "wandb").iterdir()] == [run.name]


@pytest.mark.slow  # builds the training CLI in this process (no training): a second or two
@pytest.mark.parametrize("torch_force_no_weights_only", [False, True])
def test_resuming_from_a_checkpoint_that_runs_code_is_refused_before_anything_runs(hostile_run, monkeypatch,
                                                                                   torch_force_no_weights_only):
    runs, run = hostile_run
    if torch_force_no_weights_only:  # torch's switch back to full unpickling: nlstudy asks for weights_only itself
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(ValueError) as error:  # nlstudy fit --resume RUN
        nlstudy.train(resume=run, runs_dir=runs)
    refusal(error, "nlstudy.train: ckpt_path: ", run / "files" / keys.CHECKPOINTS_DIR / keys.LAST_CHECKPOINT)


@pytest.mark.slow  # builds the training CLI in this process (no training): a second or two
def test_loading_a_checkpoint_with_weights_only_false_is_refused(hostile_run):
    runs, run = hostile_run
    checkpoint = run / "files" / keys.CHECKPOINTS_DIR / keys.LAST_CHECKPOINT
    with pytest.raises(ValueError, match=r"^nlstudy.train: weights_only=false: refused; nlstudy loads checkpoints "):
        nlstudy.train(DEMO, {"ckpt_path": str(checkpoint), "weights_only": False}, runs_dir=runs)


@pytest.mark.slow  # builds the training CLI in this process (no training): a second or two
def test_validating_a_checkpoint_that_runs_code_is_refused(hostile_run):  # nlstudy validate / test --ckpt_path
    _, run = hostile_run
    checkpoint = run / "files" / keys.CHECKPOINTS_DIR / keys.LAST_CHECKPOINT
    with pytest.raises(UsageError) as error:  # as `nlstudy check` (and so `nlstudy sweep`) sees it
        CheckCLI(["validate", "--config", str(DEMO), "--ckpt_path", str(checkpoint)])
    refusal(error, "ckpt_path: ", checkpoint)


@pytest.mark.slow  # `nlstudy sweep` in a subprocess: seconds
def test_a_sweep_command_runs_only_the_program_it_names_with_its_arguments_literal(tmp_path):
    markers = [tmp_path / f"m{i}" for i in range(7)]
    shell = ["; touch {}", "&& touch {}", "$(touch {})", "`touch {}`", "| touch {}"]
    out = tmp_path / "argv.json"
    table = f"x; touch {markers[5]} && $(touch {markers[6]}) `touch {markers[6]}`"
    command = [sys.executable, "-c", f"import json, sys; open({str(out)!r}, 'w').write(json.dumps(sys.argv[1:]))",
               *(s.format(m) for s, m in zip(shell, markers)), "${args}"]
    sweep = tmp_path / "hostile.yaml"
    sweep.write_text(yaml.safe_dump({"method": "grid", "command": command,
                                     "parameters": {"table": {"value": table}}}))
    result = subprocess.run([sys.executable, "-m", "nlstudy", "sweep", str(sweep), "--runs-root",
                             str(tmp_path / "runs")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(out.read_text()) == [*command[3:-1], f"--table={table}"]
    assert not [m for m in markers if m.exists()]
