"""Every recipe in experiments/ (alone, or an overlay on kinetics.yaml as its header says) parses and builds,
and trains two steps on tiny generated data of its own format: Kinetics-style class folders of mp4 clips,
UCF101 and HMDB51 with their split files, CIFAR-10 pickles, the embedded task."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from nlstudy.lit.check import CheckCLI
from test_data_video import encode

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
KINETICS = EXPERIMENTS / "kinetics.yaml"
OVERLAYS = sorted(EXPERIMENTS.glob("paper/*.yaml")) + [EXPERIMENTS / "finetune_ucf101.yaml",
                                                        EXPERIMENTS / "finetune_hmdb51.yaml"]
ALONE = [EXPERIMENTS / "demo.yaml", KINETICS, EXPERIMENTS / "finetune_cifar10.yaml"]
RECIPES = [[p] for p in ALONE] + [[KINETICS, p] for p in OVERLAYS]
IDS = ["+".join(p.relative_to(EXPERIMENTS).with_suffix("").as_posix() for p in r) for r in RECIPES]


def test_the_recipes_listed_here_are_every_file():
    assert {p for r in RECIPES for p in r} == set(EXPERIMENTS.rglob("*.yaml"))


def make_data(root: Path, dataset: str) -> tuple[Path, list[str]]:
    """Two classes of tiny clips (12 frames, 40x40) in the layout `dataset` reads, at its real class count
    (Kinetics through its official CSVs, which set the class count themselves); the data root and any extra
    arguments the layout needs."""
    clip = dict(frames=12, height=40, width=40)
    if dataset == "kinetics":
        (root / "annotations").mkdir(parents=True)
        for split, csv in (("train", "train.csv"), ("validate", "validate.csv")):
            rows = ["label,youtube_id,time_start,time_end,split"]
            for label in ("left", "right"):
                yid = f"{split[:2]}{label}"
                rows.append(f"{label},{yid},0,10,{split}")
                encode(root / "clips" / f"{yid}_000000_000010.mp4", **clip)
            (root / "annotations" / csv).write_text("\n".join(rows) + "\n")
        return root / "clips", [f"--data.video.annotations={root / 'annotations'}"]
    if dataset == "ucf101":
        lists = root / "ucfTrainTestlist"
        lists.mkdir(parents=True)
        (lists / "classInd.txt").write_text("".join(f"{i + 1} Class{i:03d}\n" for i in range(101)))
        (lists / "trainlist01.txt").write_text("Class000/v_a.avi 1\nClass001/v_b.avi 2\n")
        (lists / "testlist01.txt").write_text("Class000/v_c.avi\nClass001/v_d.avi\n")
        for name in ("Class000/v_a", "Class001/v_b", "Class000/v_c", "Class001/v_d"):
            encode(root / f"{name}.avi", **clip)
        return root, []
    if dataset == "hmdb51":
        lists = root / "testTrainMulti_7030_splits"
        lists.mkdir(parents=True)
        for i in range(51):  # every class has its split file; two classes have clips (1: train, 2: test)
            lines = f"c{i}_0.avi 1 \nc{i}_1.avi 2 \n" if i < 2 else f"c{i}_0.avi 0 \n"
            (lists / f"c{i}_test_split1.txt").write_text(lines)
        for i in range(2):
            for j in range(2):
                encode(root / f"c{i}" / f"c{i}_{j}.avi", **clip)
        return root, []
    if dataset == "cifar10":
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        rng = np.random.default_rng(0)
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            with open(folder / name, "wb") as f:
                pickle.dump({"labels": [0, 1], "data": rng.integers(0, 256, (2, 3072), dtype=np.uint8)}, f, protocol=2)
        with open(folder / "batches.meta", "wb") as f:
            pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f, protocol=2)
        return folder, []
    raise AssertionError(f"no tiny data for {dataset}")


# tiny everything: the recipe's network and clip sampling, at a width and size that train in a second
SHRINK = ["--model.backbone.width=2", "--data.batch_size=2", "--data.num_workers=0"]
SHRINK_VIDEO = ["--data.frames=4", "--data.size=16", "--data.video.train_scale=[16, 20]", "--data.video.test_scale=16",
                "--data.video.test_views=1", "--data.video.test_crops=1"]


def shrunk(recipe: list[Path], dataset: str, data: tuple[Path, list[str]] | None) -> list[str]:
    args = ["fit", *(a for p in recipe for a in ("--config", str(p))), *SHRINK]
    if dataset == "synthetic":
        args += ["--data.synthetic.train_samples=8", "--data.synthetic.val_samples=4", "--data.synthetic.test_samples=4"]
    elif dataset != "cifar10":
        args += SHRINK_VIDEO
    if data is not None:
        args += [f"--data.video.root={data[0]}", *data[1]]
    return args


def two_steps(cli: CheckCLI) -> float:
    """Build the parsed recipe for real and train two steps with one validation batch; the first loss."""
    config = cli.parser.instantiate(cli.config).fit
    model, data = config.model, config.data
    losses = []

    class Loss(pl.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))

    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=2, limit_val_batches=1, num_sanity_val_steps=0,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[Loss()])
    trainer.fit(model, datamodule=data)
    assert trainer.global_step == 2 and len(losses) == 2
    return losses[0]


@pytest.fixture(scope="module")
def check(tmp_path_factory):
    """One CheckCLI (its parser is the slow part), re-used for every recipe."""
    cli = CheckCLI(["fit", "--config", str(EXPERIMENTS / "demo.yaml")], machine=False)  # GPU recipes, as written
    return cli


@pytest.mark.slow  # trains: two steps per recipe
@pytest.mark.parametrize("recipe", RECIPES, ids=IDS)
def test_each_recipe_builds_and_trains_two_steps_on_data_of_its_format(recipe, check, tmp_path):
    check.check(["fit", *(a for p in recipe for a in ("--config", str(p)))])  # as written, placeholders and all
    dataset = check.config.fit.data.dataset
    data = None if dataset == "synthetic" else make_data(tmp_path / "data", dataset)
    check.check(shrunk(recipe, dataset, data))
    torch.manual_seed(0)
    loss = two_steps(check)
    assert np.isfinite(loss)
