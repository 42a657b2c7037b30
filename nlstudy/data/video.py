"""Video datasets read from local disk, decoded with PyAV (`data.dataset`: kinetics, ucf101, hmdb51,
video_folder; `data.video.*` keys).

Work in progress: the keys and class counts are final; decoding follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch.utils.data import Dataset


@dataclass(frozen=True)
class VideoSpec:
    """Where the videos are and how clips are cut from them (`data.video.*`). The defaults are the paper's."""

    root: str = ""  # dataset folder (kinetics / video_folder: root/{train,val[,test]}/<class>/<video>)
    split: int = 1  # ucf101 / hmdb51: which official train/test split (1, 2 or 3)
    split_dir: str = ""  # ucf101 / hmdb51 split files; "": root/ucfTrainTestlist, root/testTrainMulti_7030_splits
    extensions: tuple[str, ...] = ("mp4", "avi", "webm", "mkv")  # video files to list (case-insensitive)
    sampling_rate: int = 2  # frames between two sampled frames: 32 frames x 2 span 64 consecutive frames
    train_scale: tuple[int, int] = (256, 320)  # train: short side resized to a uniform integer in [min, max]
    flip: bool = True  # train: random horizontal flip
    test_scale: int = 256  # val/test: short side resized to this before cropping
    test_views: int = 10  # test: temporal clips per video, uniformly spaced
    test_crops: Literal[1, 3] = 3  # test: spatial crops per clip (3: left/centre/right along the long side)
    val_views: int = 1  # val: temporal clips per video
    val_crops: Literal[1, 3] = 1  # val: spatial crops per clip
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # per-channel RGB mean in [0, 1] (ImageNet)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)  # per-channel RGB std (ImageNet)


@dataclass
class VideoSource:
    """A video dataset on disk; `num_classes` is known without the disk for the named datasets."""

    layout: str
    spec: VideoSpec
    frames: int
    size: int
    num_classes: int

    def dataset(self, split: str) -> Dataset:
        raise NotImplementedError("video decoding is not implemented yet")


def _named(layout: str, num_classes: int):
    return lambda dm: VideoSource(layout, dm.video, dm.frames, dm.size, num_classes)


def _video_folder(dm) -> VideoSource:
    from pathlib import Path

    train = Path(dm.video.root) / "train"
    if not train.is_dir():
        raise ValueError(f"data.video.root: {train} does not exist (video_folder counts its class folders there)")
    return VideoSource("folders", dm.video, dm.frames, dm.size, sum(p.is_dir() for p in train.iterdir()))


# data.dataset -> builder of the source from the DataModule's settings
VIDEO_DATASETS = {
    "kinetics": _named("folders", 400),
    "ucf101": _named("ucf101", 101),
    "hmdb51": _named("hmdb51", 51),
    "video_folder": _video_folder,
}
