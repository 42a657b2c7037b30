"""Checkpoints, `nlstudy fit --resume RUN` and `model.init_from: RUN`.

A resumed run continues from the run's files/checkpoints/last.ckpt under the same wandb id and logs what
the run would have logged without the interruption (weights, optimiser, lr schedule, loop counters, the
best top-1 so far and the RNG states come back). `model.init_from` starts a network from another run's
files/weights/final.pt: tensors of equal name and shape are copied, inserted blocks keep their identity init.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml

import nlstudy
from nlstudy import keys
from nlstudy.errors import UsageError
from nlstudy.lit.resume import resume_arguments
from nlstudy.lit.module import VideoClassifier
from nlstudy.models import BackboneSpec, asdict

pytestmark = pytest.mark.filterwarnings("ignore:LightningCLI's args parameter:UserWarning",
                                        "ignore:.*does not have many workers.*", "ignore:.*GPU available.*")
ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "experiments" / "demo.yaml")
# the demo shrunk to seconds (tests/test_train.py's TINY), 8 steps an epoch so that top-1 moves, with the
# run's checkpoint on (experiments/demo.yaml turns Lightning's checkpointing off)
TINY = {
    "data.synthetic.train_samples": 64, "data.synthetic.val_samples": 32, "data.synthetic.test_samples": 32,
    "model.backbone.width": 4, "data.batch_size": 8, "model.optim.lr": 0.02, "seed_everything": 0,
    "model.backbone.nonlocal_blocks": "1-block", "trainer.enable_checkpointing": True, "trainer.max_epochs": 4,
}
COMPARED = (keys.VAL_LOSS, keys.VAL_TOP1, keys.VAL_TOP5, keys.VAL_TOP1_BEST, keys.VAL_TOP5_BEST, keys.TEST_TOP1,
            keys.TEST_TOP5, "test/loss", "trainer/global_step", "epoch")


class StopAfter(pl.Callback):
    """Stops training cleanly at the end of epoch `epochs` (an interruption, as the sweep's stop file
    does, without changing max_epochs and so the lr schedule)."""

    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch + 1 == self.epochs:
            trainer.should_stop = True


STOP_AFTER_2 = {"trainer.callbacks": [{"class_path": f"{__name__}.StopAfter", "init_args": {"epochs": 2}}]}


@pytest.fixture(scope="module")
def offline():
    """wandb offline and one torch thread (two threads on two shared cores made these runs 5x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANDB_MODE", "offline")
        patch.setenv("WANDB_SILENT", "true")
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, offline):
    """An uninterrupted 4-epoch run, and the same run stopped after 2 epochs then resumed."""
    root = tmp_path_factory.mktemp("resume")
    full = nlstudy.train(DEMO, TINY, runs_dir=root)
    stopped = nlstudy.train(DEMO, {**TINY, **STOP_AFTER_2}, runs_dir=root)
    resumed = nlstudy.train(resume=stopped.run_id, overrides={"trainer.callbacks": []}, runs_dir=root)
    return root, full, stopped, resumed


@pytest.mark.slow  # three short training runs in this process: seconds
def test_a_resumed_run_ends_where_the_uninterrupted_run_ends(runs):
    root, full, stopped, resumed = runs
    assert stopped.summary["epoch"] == 2 and full.summary["epoch"] == resumed.summary["epoch"] == 4
    # the best top-1 came in the first two epochs and is not the last one: a best reset on resume would show
    assert stopped.summary[keys.VAL_TOP1_BEST] == full.summary[keys.VAL_TOP1_BEST] > full.summary[keys.VAL_TOP1]
    # bit for bit: the last two epochs drew the same batches and dropout, at the same learning rates
    assert {k: resumed.summary[k] for k in COMPARED} == {k: full.summary[k] for k in COMPARED}
    # the same wandb run, continued (offline: a second directory under the same id)
    assert resumed.run_id == stopped.run_id and resumed.run_dir != stopped.run_dir
    assert keys.find_run(stopped.run_id, root) == resumed.run_dir
    # the report reads the two directories as one run, with the resumed part's results
    from nlstudy.report.offline import read_offline

    runs = read_offline(root).runs.set_index("run_id")
    assert runs.index.is_unique and runs.loc[stopped.run_id, keys.TEST_TOP1] == full.summary[keys.TEST_TOP1]
    # the resumed directory has its own checkpoint, config and weights; best.pt came along from the first
    files = resumed.run_dir / "files"
    assert (files / keys.CHECKPOINTS_DIR / keys.LAST_CHECKPOINT).is_file() and (files / keys.CONFIG_FILE).is_file()
    best = torch.load(files / keys.WEIGHTS_DIR / "best.pt", weights_only=True)
    assert best[keys.VAL_TOP1] == full.summary[keys.VAL_TOP1_BEST] and best["epochs"] <= 2
    assert sorted(p.name for p in (full.run_dir / "files" / keys.CHECKPOINTS_DIR).iterdir()) == [keys.LAST_CHECKPOINT]
    # its YAML runs the experiment again as a new run: what --resume added is left out
    config = yaml.safe_load((files / keys.CONFIG_FILE).read_text())
    assert config["ckpt_path"] is None and config["trainer"]["logger"]["init_args"]["id"] is None
    assert config["trainer"]["max_epochs"] == 4 and config["seed_everything"] == TINY["seed_everything"]


@pytest.mark.slow  # the module's runs
@pytest.mark.parametrize("cut", ["first bytes", "at a line", "mid line"])
def test_resuming_a_run_copied_halfway_is_refused_in_one_line_naming_its_config(runs, tmp_path, capsys, monkeypatch,
                                                                               cut):
    """Case 10 of issue 22: `nlstudy fit --resume` on a copy of a run whose config was cut short (the copy stopped
    halfway): one line naming the file, exit 2, before anything runs (the YAML alone may still parse)."""
    from nlstudy.lit.entry import train_main
    from nlstudy.lit.record import CONFIG_END

    _, _, stopped, _ = runs
    copy = tmp_path / "copied" / "wandb" / stopped.run_dir.name
    shutil.copytree(stopped.run_dir, copy)
    config = keys.config_file(copy)
    text = config.read_text()
    assert text.rstrip().endswith(CONFIG_END)
    lines = text.splitlines(keepends=True)
    middle = text.index("[", len(text) // 2) + 1 if "[" in text[len(text) // 2:] else len(text) // 2
    config.write_text({"first bytes": text[:3], "at a line": "".join(lines[:len(lines) // 2]),
                       "mid line": text[:middle]}[cut])
    monkeypatch.setenv(keys.RUNS_ENV, str(tmp_path / "resumed"))
    assert train_main(["fit", "--resume", str(copy)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"nlstudy fit: error: --resume: {config}"), err
    assert "Copy it again" in err[0]
    assert not (tmp_path / "resumed").exists()  # nothing ran, nothing was logged


@pytest.mark.slow  # one short training run in this process
def test_init_from_a_run_is_logged_and_a_missing_run_fails_before_training(runs):
    from nlstudy.report.offline import read_runs

    root, full, _, _ = runs
    with pytest.raises(ValueError, match=r"^nlstudy.train: model.init_from: no run 'nosuchrun'") as err:
        nlstudy.train(DEMO, {**TINY, "model.init_from": "nosuchrun"}, runs_dir=root / "failed")
    assert "\n" not in str(err.value) and not (root / "failed").exists()
    result = nlstudy.train(DEMO, {**TINY, "trainer.max_epochs": 1, "model.init_from": full.run_id}, runs_dir=root)
    run = read_runs([result.run_dir]).runs.iloc[0]
    assert run[keys.INIT_FROM] == full.run_id and run[keys.INIT_FROM_RUN] == full.run_id
    assert run[keys.INIT_FROM_COPIED] == len(torch.load(full.run_dir / "files" / keys.WEIGHTS_DIR / "final.pt",
                                                        weights_only=True)["state_dict"])


# --- fast ------------------------------------------------------------------------------------------------------

SPEC = dict(depth=18, width=4, num_classes=3, conv1_stride=(1, 2, 2), pool1=False, pool2=False, dropout=0.0)


def fake_run(root: Path, model: VideoClassifier, run_id: str = "c2drun01") -> Path:
    """A run directory holding final.pt as SaveWeights writes it."""
    run_dir = root / "wandb" / f"offline-run-20260101_000000-{run_id}"
    weights = run_dir / "files" / keys.WEIGHTS_DIR
    weights.mkdir(parents=True)
    torch.save({"backbone": asdict(model.backbone_spec), "state_dict": model.net.state_dict(), "epochs": 1,
                "step": 1, keys.VAL_TOP1: 50.0}, weights / keys.WEIGHTS_FILES["final"])
    return run_dir


def test_init_from_copies_the_c2d_weights_into_the_nonlocal_model(tmp_path, monkeypatch):
    torch.manual_seed(0)
    c2d = VideoClassifier(BackboneSpec(**SPEC)).eval()
    with torch.no_grad():  # a trained-looking source: BN statistics away from their init
        for m in c2d.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.uniform_(-0.1, 0.1), m.running_var.uniform_(0.5, 1.5), m.weight.uniform_(0.5, 1.5)
    run_dir = fake_run(tmp_path, c2d)
    monkeypatch.setenv(keys.RUNS_ENV, str(tmp_path))
    torch.manual_seed(1)
    nl = VideoClassifier(BackboneSpec(**SPEC, nonlocal_blocks="1-block"), init_from="c2drun01").eval()  # by id
    source, target = c2d.net.state_dict(), nl.net.state_dict()
    assert nl.init_facts == {keys.INIT_FROM_RUN: "c2drun01", keys.INIT_FROM_COPIED: len(source)}
    assert all(torch.equal(target[k], v) for k, v in source.items())
    inserted = [k for k in target if k not in source]
    assert inserted and all(k.startswith("res4.nonlocal") for k in inserted)
    [(_, block)] = nl.net.inserted_blocks()
    seen = []
    block.register_forward_hook(lambda module, args, out: seen.append((args[0], out)))
    clips = torch.randn(2, 3, 4, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(nl(clips), c2d(clips), rtol=0, atol=0)  # the networks agree at the start
    torch.testing.assert_close(seen[0][1], seen[0][0], rtol=0, atol=0)  # as the inserted block is the identity
    # a classifier of another size is left fresh; the rest still comes (by directory this time)
    other = VideoClassifier(BackboneSpec(**{**SPEC, "num_classes": 5}), init_from=str(run_dir))
    assert other.init_facts[keys.INIT_FROM_COPIED] == len(source) - 2  # fc.weight, fc.bias
    assert not torch.equal(other.net.fc.weight[:3], c2d.net.fc.weight)


def test_init_from_names_the_key_when_the_run_or_its_weights_are_missing(tmp_path, monkeypatch):
    monkeypatch.setenv(keys.RUNS_ENV, str(tmp_path))
    with pytest.raises(ValueError, match=r"^model.init_from: no run 'nope'"):
        VideoClassifier(BackboneSpec(**SPEC), init_from="nope")
    run_dir = fake_run(tmp_path, VideoClassifier(BackboneSpec(**SPEC)))
    (run_dir / "files" / keys.WEIGHTS_DIR / "final.pt").unlink()
    with pytest.raises(ValueError, match=r"^model.init_from: run offline-run-\S+ has no files/weights/final.pt"):
        VideoClassifier(BackboneSpec(**SPEC), init_from="c2drun01")


def test_the_module_keeps_its_best_so_far_and_the_rng_in_the_checkpoint():
    model = VideoClassifier(BackboneSpec(**SPEC))
    model.best = {"top1": 62.5, "top5": 100.0}
    checkpoint: dict = {}
    model.on_save_checkpoint(checkpoint)
    expected = torch.rand(3)
    again = VideoClassifier(BackboneSpec(**SPEC))
    again.on_load_checkpoint(checkpoint)
    assert again.best == {"top1": 62.5, "top5": 100.0}
    assert torch.equal(torch.rand(3), expected)  # the generator is back where the checkpoint was written


def test_resume_arguments_read_the_runs_config_checkpoint_and_id(tmp_path, monkeypatch):
    monkeypatch.setenv(keys.RUNS_ENV, str(tmp_path))
    run_dir = tmp_path / "wandb" / "offline-run-20260101_000000-abc123"
    (run_dir / "files" / keys.CHECKPOINTS_DIR).mkdir(parents=True)
    assert resume_arguments(["fit", "--config", "a.yaml"]) == ["fit", "--config", "a.yaml"]  # no --resume
    with pytest.raises(UsageError, match=r"^--resume: no run 'zzz'"):
        resume_arguments(["fit", "--resume", "zzz"])
    with pytest.raises(UsageError, match="nlstudy_config.yaml is missing"):
        resume_arguments(["fit", "--resume", "abc123"])
    config = run_dir / "files" / keys.CONFIG_FILE
    config.write_text("trainer:\n  logger:\n    class_path: pytorch_lightning.loggers.WandbLogger\n")
    with pytest.raises(UsageError, match="has no checkpoint .*save_checkpoints=false"):
        resume_arguments(["fit", "--resume=abc123"])
    checkpoint = run_dir / "files" / keys.CHECKPOINTS_DIR / keys.LAST_CHECKPOINT
    checkpoint.touch()
    assert resume_arguments(["fit", "--resume", "abc123", "--trainer.max_epochs=9"]) == [
        "fit", "--config", str(config), "--trainer.max_epochs=9", "--ckpt_path", str(checkpoint),
        "--trainer.logger.init_args.id", "abc123"]
    assert resume_arguments(["fit", "--resume", str(run_dir), "--ckpt_path=x.ckpt"]) == [  # the user's wins
        "fit", "--config", str(config), "--ckpt_path=x.ckpt", "--trainer.logger.init_args.id", "abc123"]
    with pytest.raises(UsageError, match="only `nlstudy fit` resumes"):
        resume_arguments(["test", "--resume", "abc123"])


def test_channels_last_keeps_the_numbers_and_stores_convolutions_channels_last():
    from nlstudy.lit.module import VideoClassifier

    torch.manual_seed(0)
    plain = VideoClassifier(BackboneSpec(**SPEC, nonlocal_blocks="res4"))
    fast = VideoClassifier(BackboneSpec(**SPEC, nonlocal_blocks="res4"), channels_last=True)
    fast.load_state_dict(plain.state_dict())
    conv = fast.net.stem[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last_3d) and not conv.is_contiguous()
    clips, labels = torch.randn(2, 3, 4, 16, 16), torch.tensor([0, 2])
    moved, _ = fast.on_after_batch_transfer((clips, labels), 0)
    assert moved.is_contiguous(memory_format=torch.channels_last_3d) and torch.equal(moved, clips)
    plain.eval(), fast.eval()
    torch.testing.assert_close(fast(moved), plain(clips), rtol=1e-5, atol=1e-6)
