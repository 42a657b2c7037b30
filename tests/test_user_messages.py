"""What a user reads: `nlstudy fit --help` (short, choices by value, a way to the full list), a misspelled
command or choice answered with the one meant, and a sweep's misspelled key blamed on that key."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlstudy import choices, cli
from nlstudy.lit.check import CheckCLI, check_all
from nlstudy.lit.messages import LITERAL_CHOICES
from nlstudy.registry import did_you_mean, lookup
from nlstudy.sweep.check import describe

pytestmark = pytest.mark.filterwarnings("ignore:LightningCLI's args parameter:UserWarning")
ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "experiments" / "demo.yaml")


@pytest.fixture(scope="module")
def checker():
    return CheckCLI(["fit", "--config", DEMO])


def test_fit_help_is_short_names_choices_by_value_and_points_to_the_full_list(capsys):
    assert cli.main(["fit", "--help"]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0].startswith("usage: nlstudy fit --config FILE") and len(lines) < 90
    assert max(map(len, lines)) <= cli.HELP_WIDTH
    assert "nlstudy fit --help-all lists every option" in text and "Runs the full optimization routine" not in text
    assert "DATASETS" not in text and "PLACEMENTS" not in text  # values, not Python constants
    assert f"a preset ({', '.join(choices.PLACEMENTS)})" in " ".join(text.split())
    assert cli.main(["validate", "-h"]) == 0 and capsys.readouterr().out.startswith("usage: nlstudy validate")


def test_every_key_of_the_short_help_is_a_key_of_the_cli_with_its_real_choices(checker):
    valid = set(checker.valid_keys("fit"))
    listed = {key: text for section in cli.HELP_SECTIONS.values() for key, text in section.items()}
    assert set(listed) <= valid, sorted(set(listed) - valid)
    for key, text in listed.items():
        for value in LITERAL_CHOICES.get(key, ()):
            assert str(value).removeprefix("torchvision:") in text, (key, value)
    assert all(d in listed["data.dataset"] for d in choices.DATASETS)


def test_the_full_help_lists_dataset_and_placement_choices_by_value(capsys):
    assert cli.main(["fit", "--help-all"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert len(text) > 20_000 and "one of DATASETS" not in text
    assert "synthetic (the embedded task), kinetics, ucf101, hmdb51, video_folder, rawframes, images, cifar10 or cifar100" in text
    assert "a preset (none, 1-block, 5-block, 10-block, res2, res3, res4, res5;" in text


def test_a_misspelled_command_is_named_with_the_one_meant(capsys):
    assert cli.main(["repot", "--runs", "runs"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == ("nlstudy: error: unknown command 'repot' (did you mean 'report'?); one of: fit, validate, test, "
                      "sweep, report, check")
    assert err[1].startswith("usage: nlstudy")
    assert cli.main([]) == 2 and "no command given" in capsys.readouterr().err


def test_a_misspelled_choice_gets_the_one_meant(checker):
    assert did_you_mean("gird", ["grid", "random", "bayes"]) == "; did you mean 'grid'?"
    assert did_you_mean("res9x", ["none", "res2"]) == "" and did_you_mean("7-block", choices.PLACEMENTS) == ""  # none, or two as close
    with pytest.raises(ValueError, match=r"unknown method 'gird'; valid choices: 'grid', 'random'; did you mean 'grid'\?$"):
        lookup({"grid": 1, "random": 2}, "gird", "method")
    pairwise, dataset, depth = check_all([
        ["fit", "--config", DEMO, "--model.backbone.nl.pairwise=embeded_gaussian"],
        ["fit", "--config", DEMO, "--data.dataset=kinetic"],
        ["fit", "--config", DEMO, "--model.backbone.depth=5"]], checker)
    assert pairwise["error"].startswith('Parser key "model.backbone.nl.pairwise"')
    assert pairwise["error"].endswith("Got value: embeded_gaussian; did you mean 'embedded_gaussian'?")
    assert dataset["error"].endswith("'cifar100'; did you mean 'kinetics'?")
    assert "did you mean" not in depth["error"]  # nothing close: no guess


def test_a_misspelled_sweep_key_is_blamed_on_that_key(checker):
    """The unknown-key message lists the valid keys (table among them): the blame goes to the key it starts with."""
    [result] = check_all([["fit", "--config", DEMO, "--seed_everyting=1", "--table=2a"]], checker)
    config = {"table": {"value": "2a"}, "seed_everyting": {"value": 1}}
    line = describe(config, result["error"])
    assert line.startswith("parameter seed_everyting: seed_everyting: unknown key (did you mean seed_everything?)")


def test_the_check_tells_a_run_this_machine_cannot_run_from_a_bad_one(checker, monkeypatch):
    """nlstudy check (and so the sweep's check) judges the settings against this machine too, unless asked not to
    (a login node): a GPU the machine lacks is a `machine` error."""
    from pytorch_lightning.accelerators import CUDAAccelerator, MPSAccelerator

    monkeypatch.setattr(CUDAAccelerator, "is_available", staticmethod(lambda: False))
    monkeypatch.setattr(MPSAccelerator, "is_available", staticmethod(lambda: False))
    gpu = ["fit", "--config", DEMO, "--trainer.accelerator=gpu"]
    [here] = check_all([gpu], checker)
    assert not here["ok"] and here["machine"] and here["error"].startswith(
        "trainer.accelerator: the config asks for 'gpu', but this machine has no GPU")
    [login] = check_all([gpu], machine=False)
    assert login["ok"] and not login["machine"] and login["key"]
    [bad] = check_all([[*gpu, "--model.backbone.depth=5"]], checker)
    assert not bad["ok"] and not bad["machine"]


# --- a run's output -------------------------------------------------------------------------------------------


class Stream(list):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> None:
        self.append(text)

    def flush(self) -> None:
        pass


def test_the_progress_is_a_bar_on_a_terminal_and_a_line_per_epoch_elsewhere():
    import types

    import torch

    from nlstudy.lit.callbacks import RunProgress, epoch_line

    assert RunProgress(Stream(tty=True)).is_enabled and not RunProgress(Stream(tty=True)).lines
    log = Stream(tty=False)
    progress = RunProgress(log)
    assert progress.lines and not progress.is_enabled  # no bar redrawn into a log file
    metrics = {"train/loss": torch.tensor(0.41234), "val/loss": torch.tensor(0.39), "val/top1": torch.tensor(81.25),
               "val/top5": torch.tensor(100.0), "val/top1_best": torch.tensor(81.25)}
    trainer = types.SimpleNamespace(callback_metrics=metrics, current_epoch=2, max_epochs=8, is_global_zero=True)
    assert epoch_line(trainer, 2.61) == ("epoch 3/8: train/loss 0.412, val/loss 0.39, val/top1 81.2, "
                                         "val/top1_best 81.2 (2.6 s)")
    progress.on_train_epoch_end(trainer, None)
    assert "".join(log).strip() == epoch_line(trainer, float("".join(log).rsplit("(", 1)[1].split()[0]))


@pytest.mark.slow  # trains a tiny run in a subprocess
def test_a_run_says_where_it_is_and_how_it_goes_and_nothing_a_user_cannot_act_on(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "WANDB_MODE": "offline", "NLSTUDY_NUM_THREADS": "1", "NLSTUDY_RUNS_DIR": str(tmp_path)}
    env.pop("WANDB_SILENT", None)  # nlstudy's default applies
    proc = subprocess.run([sys.executable, "-m", "nlstudy", "fit", "--config", DEMO, "--trainer.max_epochs=2",
                           "--data.synthetic.train_samples=64", "--data.synthetic.val_samples=32",
                           "--data.synthetic.test_samples=32", "--model.backbone.width=4", "--trainer.log_every_n_steps=1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout.splitlines()
    [run_dir] = (tmp_path / "wandb").glob("offline-run-*")
    run_id = run_dir.name.rsplit("-", 1)[1]
    assert out[0] == f"run {run_id}: wandb/{run_dir.name} (offline)"
    epochs = [line for line in out if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1/2", "epoch 2/2"]
    assert all("train/loss" in line and "val/top1_best" in line for line in epochs)
    assert out[-1].startswith(f"nlstudy fit: run {run_id} done: val/top1_best ")
    for noise in ("GPU available", "TPU available", "anonymous setting", "You have overridden", "Trainer.fit` stopped",
                  "estimate number of stepping batches", "litlogger"):
        assert noise not in proc.stdout + proc.stderr, noise
    assert not proc.stderr.strip(), proc.stderr
