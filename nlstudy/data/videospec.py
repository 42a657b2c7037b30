"""The knobs of a video dataset (`data.video.*`: VideoSpec) and their checks (check_spec, READERS); see nlstudy.data.video."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal




IMAGE_EXTENSIONS = ("jpg", "jpeg", "png")


@dataclass(frozen=True)
class VideoSpec:
    """Where the videos are and how clips are cut from them (`data.video.*`). The defaults are the paper's."""

    root: str = ""  # dataset folder (kinetics / video_folder: root/{train,val[,test]}/<class>/<video>)
    split: int = 1  # ucf101 / hmdb51: which official train/test split (1, 2 or 3)
    split_dir: str = ""  # ucf101 / hmdb51 split files; "": root/ucfTrainTestlist, root/testTrainMulti_7030_splits
    # kinetics: folder of the official annotation CSVs (label,youtube_id,time_start,time_end,split); when set,
    # the clips are listed from them and found under root by name (<youtube_id>_<start:06d>_<end:06d>.<ext>)
    # instead of root/{train,val}/<class>/ folders. "": the class folders.
    annotations: str = ""
    # kinetics with annotations: the train, val and test CSV file names in `annotations` (a missing or
    # unlabelled test CSV: test reads the val CSV)
    annotation_files: tuple[str, str, str] = ("train.csv", "validate.csv", "test.csv")
    # rawframes (mmaction2's layout): the train, val and test list files, lines "<folder> <num_frames> <label>"
    # (folder relative to root), relative to root or absolute (a missing test list: test reads the val list)
    frame_lists: tuple[str, str, str] = ("train_list.txt", "val_list.txt", "test_list.txt")
    frame_template: str = "img_{:05d}.jpg"  # rawframes: file name of frame number i in its folder (str.format)
    frame_start: int = 1  # rawframes: the number of a folder's first frame file (mmaction2's img_00001.jpg: 1)
    extensions: tuple[str, ...] = ("mp4", "avi", "webm", "mkv")  # video files to list (case-insensitive)
    sampling_rate: int = 2  # frames between two sampled frames: 32 frames x 2 span 64 consecutive frames
    # videos: resample to this frame rate before sampling (0: the video's own frames); sampling_rate then
    # counts frames at target_fps (the paper's Kinetics clips are 30 fps). Needs the container's frame rate.
    target_fps: float = 0
    train_scale: tuple[int, int] = (256, 320)  # train: short side resized to a uniform integer in [min, max]
    flip: bool = True  # train: random horizontal flip
    crop_padding: int = 4  # cifar10 / cifar100 train: zero pixels added on each side before the random crop
    test_scale: int = 256  # val/test: short side resized to this before cropping
    test_views: int = 10  # test: temporal clips per video, uniformly spaced
    test_crops: Literal[1, 3] = 3  # test: spatial crops per clip (3: left/centre/right along the long side)
    val_views: int = 1  # val: temporal clips per video
    val_crops: Literal[1, 3] = 1  # val: spatial crops per clip
    # per-channel RGB mean in [0, 1] and std: ImageNet's (the default) for every dataset, CIFAR included
    # (CIFAR-10's own: mean [0.4914, 0.4822, 0.4465], std [0.2470, 0.2435, 0.2616]; nlstudy.data.cifar.STATS)
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)


# which data.dataset values read the knobs that only some read (setting one for another dataset is an error)
READERS = {
    "target_fps": ("kinetics", "ucf101", "hmdb51", "video_folder"),
    "annotations": ("kinetics",),
}


def _template_ok(template: str) -> bool:
    try:
        return template.format(1) != template.format(2)
    except (IndexError, KeyError, ValueError):
        return False


def check_spec(spec: VideoSpec, frames: int, size: int, dataset: str = "") -> None:
    """Bad values fail in one line naming the key; reads no disk (runs when a config is checked)."""
    lo, hi = spec.train_scale
    problems = [
        (spec.sampling_rate < 1, "sampling_rate", "must be a positive integer"),
        (spec.target_fps < 0, "target_fps", "must be 0 (the video's own frames) or a positive frame rate"),
        (len(spec.annotation_files) != 3 or not all(spec.annotation_files), "annotation_files",
         "must name 3 files (train, val, test)"),
        (len(spec.frame_lists) != 3 or not all(spec.frame_lists), "frame_lists",
         "must name 3 files (train, val, test)"),
        (not _template_ok(spec.frame_template), "frame_template",
         "must be a str.format pattern of the frame number, like 'img_{:05d}.jpg'"),
        (spec.frame_start < 0, "frame_start", "must be >= 0"),
        (spec.crop_padding < 0, "crop_padding", "must be >= 0"),
        (spec.split not in (1, 2, 3), "split", "must be 1, 2 or 3"),
        (not spec.extensions, "extensions", "must name at least one file extension"),
        (lo > hi, "train_scale", "must be [min, max] with min <= max"),
        (lo < size, "train_scale", f"min must be at least data.size={size}"),
        (spec.test_scale < size, "test_scale", f"must be at least data.size={size}"),
        (spec.test_views < 1, "test_views", "must be a positive integer"),
        (spec.val_views < 1, "val_views", "must be a positive integer"),
        (spec.test_crops not in (1, 3), "test_crops", "must be 1 or 3"),
        (spec.val_crops not in (1, 3), "val_crops", "must be 1 or 3"),
        (len(spec.mean) != 3, "mean", "must have 3 values (R, G, B)"),
        (len(spec.std) != 3 or min(spec.std) <= 0, "std", "must have 3 positive values (R, G, B)"),
    ]
    for bad, key, what in problems:
        if bad:
            raise ValueError(f"data.video.{key} {what}, got {getattr(spec, key)!r}")
    for key, readers in READERS.items():
        if dataset and dataset not in readers and getattr(spec, key) != getattr(VideoSpec, key):
            raise ValueError(f"data.video.{key} is read only by data.dataset: {', '.join(readers)}; "
                             f"got {getattr(spec, key)!r} with data.dataset: {dataset}")
