"""Data: one LightningDataModule over a registry of clip sources (`data.dataset`): the synthetic task
(nlstudy.data.synthetic), videos and image folders (nlstudy.data.video), frame folders
(nlstudy.data.rawframes), CIFAR pickles (nlstudy.data.cifar).

A source knows its class count and makes one torch Dataset per split ("train", "val", "test") yielding
(clip, label): clip (3, T, H, W) float, or (V, 3, T, H, W) for multi-view testing (the module averages
the views' predictions). `ClipDataModule.__init__` touches no disk and makes no data, so a config can
be checked on a machine without the dataset.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from nlstudy.data import cifar, rawframes, video
from nlstudy.data.synthetic import NUM_CLASSES as SYNTHETIC_CLASSES
from nlstudy.data import cache as clip_cache
from nlstudy.data.synthetic import SyntheticSpec
from nlstudy.data.synthetic import check as check_synthetic
from nlstudy.data.video import VideoSpec
from nlstudy.registry import Choice, lookup, records


class ClipSource(Protocol):
    num_classes: int

    def dataset(self, split: str) -> Dataset: ...


@dataclass
class SyntheticSource:
    """The embedded task (`nlstudy.data.synthetic`), generated in memory (or read from `nlstudy.data.cache`)."""

    spec: SyntheticSpec
    frames: int
    size: int
    num_classes: int = SYNTHETIC_CLASSES
    runs_dir: Path | None = None  # whose cache/clips to use (None: $NLSTUDY_RUNS_DIR's; nlstudy.data.cache.folder)

    def __post_init__(self) -> None:
        check_synthetic(self.spec, self.frames, self.size)  # bad knobs fail when the config is read

    def dataset(self, split: str) -> Dataset:
        root = clip_cache.folder(self.runs_dir) if self.runs_dir is not None else None
        clips, labels = clip_cache.clips(self.spec, split, self.frames, self.size, root)  # make_clips's, cached on disk
        return TensorDataset(torch.from_numpy(clips), torch.from_numpy(labels))


def _synthetic(dm: "ClipDataModule") -> ClipSource:
    return SyntheticSource(dm.synthetic, dm.frames, dm.size, runs_dir=dm.runs_dir)


# data.dataset (nlstudy.choices.DATASETS, in its order): each builds the source from the DataModule's settings
DATASETS: dict[str, Choice] = records(
    Choice("synthetic", _synthetic, "the embedded task (data.synthetic.*), made in memory"),
    Choice("kinetics", video.named("kinetics", "folders", 400),
           "Kinetics-400 videos: root/<split>/<class>/ folders, or data.video.annotations' CSVs"),
    Choice("ucf101", video.named("ucf101", "ucf101", 101), "UCF101 videos with its official split lists"),
    Choice("hmdb51", video.named("hmdb51", "hmdb51", 51), "HMDB51 videos with its official split files"),
    Choice("video_folder", video.counted("video_folder", "folders"),
           "videos in root/<split>/<class>/ folders, any number of classes"),
    Choice("rawframes", rawframes.build, "folders of extracted frames listed by data.video.frame_lists (mmaction2's)"),
    Choice("images", video.counted("images", "images"), "images in root/<split>/<class>/ folders, as 1-frame clips"),
    Choice("cifar10", cifar.source("cifar10"), "CIFAR-10 from its python pickles, as 1-frame clips"),
    Choice("cifar100", cifar.source("cifar100"), "CIFAR-100 (fine labels) from its python pickles, as 1-frame clips"),
)


class ClipDataModule(pl.LightningDataModule):
    """Clips and labels for fit / validate / test.

    Args:
        dataset: synthetic (the embedded task), kinetics, ucf101, hmdb51, video_folder, rawframes, images,
            cifar10 or cifar100 (nlstudy.choices.DATASETS).
        frames: frames per clip (T).
        size: frame side in pixels after cropping (H = W).
        batch_size: clips per batch (per device).
        test_batch_size: videos per test batch (per device); 0: batch_size. Each test video brings
            data.video.test_views x test_crops clips (30 by default) to one forward pass, so
            batch_size 32 would put 960 clips in it; set this to fit the memory. Val keeps batch_size
            (one view, one crop by default). 0 by default so that nothing changes unless asked.
        num_workers: DataLoader worker processes (0: load in the main process).
        synthetic: the embedded task's knobs (used when dataset is "synthetic").
        video: where the files are and how clips are cut (kinetics, ucf101, hmdb51, video_folder, rawframes,
            images, cifar10, cifar100).
    """

    def __init__(
        self,
        dataset: str = "synthetic",
        frames: int = 4,
        size: int = 16,
        batch_size: int = 32,
        test_batch_size: int = 0,
        num_workers: int = 0,
        synthetic: SyntheticSpec = SyntheticSpec(),  # frozen: sharing the default is safe
        video: VideoSpec = VideoSpec(),  # frozen
    ):
        super().__init__()
        self._build = lookup(DATASETS, dataset, "data.dataset").build
        for name, value in (("data.frames", frames), ("data.size", size), ("data.batch_size", batch_size)):
            if value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {num_workers!r}")
        if test_batch_size < 0:
            raise ValueError(f"data.test_batch_size must be 0 (batch_size) or a positive integer, "
                             f"got {test_batch_size!r}")
        self.dataset, self.frames, self.size = dataset, frames, size
        self.batch_size, self.num_workers, self.synthetic = batch_size, num_workers, synthetic
        self.test_batch_size = test_batch_size or batch_size
        self.video = video
        self._source: ClipSource | None = None
        self._runs_dir: Path | None = None
        self._splits: dict[str, Dataset] = {}

    @property
    def runs_dir(self) -> Path | None:
        """Not a setting: the runs dir nlstudy.train was given, whose cache/clips the embedded task uses (None:
        $NLSTUDY_RUNS_DIR's). Set after the source may exist (the model reads num_classes from it): passed on."""
        return self._runs_dir

    @runs_dir.setter
    def runs_dir(self, value: Path | None) -> None:
        self._runs_dir = value
        if isinstance(self._source, SyntheticSource):
            self._source.runs_dir = value

    @property
    def source(self) -> ClipSource:
        if self._source is None:
            self._source = self._build(self)
        return self._source

    @property
    def num_classes(self) -> int:
        return self.source.num_classes

    @property
    def clip_shape(self) -> tuple[int, int, int, int]:
        """(C, T, H, W) of one clip as the backbone sees it."""
        return (3, self.frames, self.size, self.size)

    def split(self, name: str) -> Dataset:
        if name not in self._splits:
            self._splits[name] = self.source.dataset(name)
        return self._splits[name]

    def setup(self, stage: str) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}[stage]
        for name in wanted:
            self.split(name)

    def teardown(self, stage: str) -> None:
        """At the end of a stage: one warning per split on the files found unreadable and skipped since the last."""
        for data in self._splits.values():
            line = data.skip_report() if hasattr(data, "skip_report") else None
            if line:
                warnings.warn(line, RuntimeWarning, stacklevel=2)

    def _loader(self, name: str, shuffle: bool, batch_size: int) -> DataLoader:
        return DataLoader(
            self.split(name), batch_size=batch_size, shuffle=shuffle, num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0, drop_last=shuffle and len(self.split(name)) > batch_size,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True, batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False, batch_size=self.batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False, batch_size=self.test_batch_size)
