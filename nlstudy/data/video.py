"""Video (and image) datasets read from local disk, decoded with PyAV (`data.dataset`: kinetics, ucf101,
hmdb51, video_folder, images; knobs under `data.video.*`).

Layouts (`data.video.root`):
- kinetics, video_folder: root/{train,val}/<class>/<video>.{mp4,avi,webm,mkv}; test reads root/test when
  it exists, else root/val. Labels are the class folders of root/train in sorted order (root/val when
  there is no root/train), so every run of a study numbers the classes the same way.
- ucf101: root/<class>/<video>.avi (the extracted UCF-101 folder) and the official split files
  classInd.txt, trainlist0N.txt, testlist0N.txt in `split_dir` (default root/ucfTrainTestlist).
- hmdb51: root/<class>/<video>.avi and the official `<class>_test_split<N>.txt` files (1 = train,
  2 = test, 0 = unused) in `split_dir` (default root/testTrainMulti_7030_splits).
  UCF101 and HMDB51 have no validation split: val reads the official test list.
- images: root/{train,val}/<class>/*.{jpg,jpeg,png} as 1-frame clips (3, 1, H, W); needs data.frames 1.

Clips (the paper, after Wang et al. 2018 section 4): `frames` T frames `sampling_rate` apart, counted
in the video's own frames (32 x 2 = 64 consecutive frames of a 30 fps Kinetics video).
- train: one clip per video at a random start; short side resized to a random integer in
  `train_scale`, a random size x size crop, a random horizontal flip -> (3, T, size, size).
- val / test: `views` clips at uniformly spaced starts (the centres of `views` equal parts of the
  possible starts), short side resized to `test_scale`, `crops` crops (1: centre; 3: left, centre,
  right along the long side) -> (views * crops, 3, T, size, size), view-major; a single view is
  returned as (3, T, size, size).
- A video shorter than the clip's span loops: frame k of the clip is frame (start + k * rate) mod n.
- Pixels: RGB in [0, 1], then (x - mean) / std per channel (ImageNet statistics by default).

Decoding seeks to the keyframe before the clip and decodes only up to its last frame, resizing in
FFmpeg's swscale; containers are opened in `__getitem__` (DataLoader workers each open their own). A
video that cannot be read is skipped with a warning (train: another random video; val/test: the next
one) and counted in the dataset's `skipped` list (per worker process); 10 failures in a row raise.

Nothing here touches the disk before `dataset()` (called by `ClipDataModule.setup`), except the class
count of video_folder / images, which counts the class folders of root/train.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

MAX_FAILURES = 10  # consecutive unreadable items before __getitem__ gives up
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png")


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


def check_spec(spec: VideoSpec, frames: int, size: int) -> None:
    """Bad values fail in one line naming the key; reads no disk (runs when a config is checked)."""
    lo, hi = spec.train_scale
    problems = [
        (spec.sampling_rate < 1, "sampling_rate", "must be a positive integer"),
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


# --- listing the videos of a split -----------------------------------------------------------------------


@dataclass(frozen=True)
class Listing:
    """The items of one split: paths and labels (numpy arrays: DataLoader workers share them without
    the copy-on-read that lists of Python objects cause) and the class names."""

    paths: np.ndarray  # (n,) str
    labels: np.ndarray  # (n,) int64
    classes: tuple[str, ...]


def _root(spec: VideoSpec, layout: str) -> Path:
    if not spec.root:
        raise ValueError(f"data.video.root is not set (the {layout} dataset folder)")
    root = Path(spec.root).expanduser()
    if not root.is_dir():
        raise ValueError(f"data.video.root: {root} does not exist")
    return root


def _class_dirs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir())


def list_folders(spec: VideoSpec, split: str, extensions: tuple[str, ...]) -> Listing:
    """root/<split>/<class>/<file>; test falls back to val; classes from root/train (else this split)."""
    root = _root(spec, "root/{train,val}/<class>/<file>")
    folder = root / ("test" if split == "test" and (root / "test").is_dir() else "val" if split != "train" else "train")
    if not folder.is_dir():
        raise ValueError(f"data.video.root: {folder} does not exist (expected root/{{train,val}}/<class>/<file>)")
    class_root = root / "train" if (root / "train").is_dir() else folder
    classes = _class_dirs(class_root)
    index = {name: i for i, name in enumerate(classes)}
    suffixes = {"." + e.lower().lstrip(".") for e in extensions}
    paths, labels = [], []
    for name in _class_dirs(folder):
        if name not in index:
            raise ValueError(f"data.video.root: {folder / name} is not a class folder of {class_root}")
        with os.scandir(folder / name) as entries:  # no stat per file: Kinetics has 240k of them
            files = sorted(e.path for e in entries if os.path.splitext(e.name)[1].lower() in suffixes and e.is_file())
        paths += files
        labels += [index[name]] * len(files)
    if not paths:
        raise ValueError(f"data.video.root: no files ending in {', '.join(sorted(suffixes))} under {folder}/<class>/")
    return Listing(np.array(paths), np.array(labels, dtype=np.int64), tuple(classes))


def _split_dir(spec: VideoSpec, root: Path, default: str) -> Path:
    folder = Path(spec.split_dir).expanduser() if spec.split_dir else root / default
    if not folder.is_dir():
        raise ValueError(f"data.video.split_dir: {folder} does not exist (the official split files)")
    return folder


def _lines(path: Path, key: str) -> list[list[str]]:
    if not path.is_file():
        raise ValueError(f"{key}: {path} does not exist")
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def _checked(listing: Listing, source: Path) -> Listing:
    if not len(listing.paths):
        raise ValueError(f"data.video.split_dir: {source} lists no videos")
    if not Path(listing.paths[0]).is_file():  # one cheap probe catches a wrong root
        raise ValueError(f"data.video.root: {listing.paths[0]} (listed in {source}) does not exist")
    return listing


def list_ucf101(spec: VideoSpec, split: str) -> Listing:
    """UCF101: classInd.txt ("1 ApplyEyeMakeup"), trainlist0N.txt ("ApplyEyeMakeup/v_..._g08_c01.avi 1"),
    testlist0N.txt ("ApplyEyeMakeup/v_..._g01_c01.avi"); labels from classInd (0-based here)."""
    root = _root(spec, "UCF-101")
    folder = _split_dir(spec, root, "ucfTrainTestlist")
    class_file = folder / "classInd.txt"
    numbered = sorted((int(number), name) for number, name in _lines(class_file, "data.video.split_dir"))
    classes = tuple(name for _, name in numbered)
    index = {name.lower(): i for i, name in enumerate(classes)}  # the files disagree on case (HandstandPushups)
    source = folder / f"{'trainlist' if split == 'train' else 'testlist'}{spec.split:02d}.txt"
    paths, labels = [], []
    for fields in _lines(source, "data.video.split_dir"):
        relative = fields[0]
        name = relative.split("/")[0].lower()
        if name not in index:
            raise ValueError(f"data.video.split_dir: {source} names class {relative.split('/')[0]!r}, not in {class_file}")
        paths.append(str(root / relative))
        labels.append(index[name])
    return _checked(Listing(np.array(paths), np.array(labels, dtype=np.int64), classes), source)


HMDB_FILE = re.compile(r"^(?P<name>.+)_test_split(?P<split>\d)\.txt$")
HMDB_SPLIT_IDS = {"train": "1", "val": "2", "test": "2"}  # in the files: 1 train, 2 test, 0 unused


def list_hmdb51(spec: VideoSpec, split: str) -> Listing:
    """HMDB51: one `<class>_test_split<N>.txt` per class, lines "<video>.avi <0|1|2>"; classes sorted."""
    root = _root(spec, "HMDB51")
    folder = _split_dir(spec, root, "testTrainMulti_7030_splits")
    files = {}
    for path in folder.iterdir():
        match = HMDB_FILE.match(path.name)
        if match and int(match["split"]) == spec.split:
            files[match["name"]] = path
    if not files:
        raise ValueError(f"data.video.split_dir: no <class>_test_split{spec.split}.txt files in {folder}")
    classes = tuple(sorted(files))
    paths, labels = [], []
    for label, name in enumerate(classes):
        for fields in _lines(files[name], "data.video.split_dir"):
            if len(fields) >= 2 and fields[1] == HMDB_SPLIT_IDS[split]:
                paths.append(str(root / name / fields[0]))
                labels.append(label)
    return _checked(Listing(np.array(paths), np.array(labels, dtype=np.int64), classes), folder)


LISTINGS = {
    "folders": lambda spec, split: list_folders(spec, split, spec.extensions),
    "ucf101": list_ucf101,
    "hmdb51": list_hmdb51,
    "images": lambda spec, split: list_folders(spec, split, IMAGE_EXTENSIONS),
}


# --- which frames, which crops ---------------------------------------------------------------------------


def clip_indices(n: int, frames: int, rate: int, start: int) -> np.ndarray:
    """Frame indices of a clip starting at `start`; beyond the video's end they loop back to 0."""
    return (start + rate * np.arange(frames)) % max(n, 1)


def eval_starts(n: int, span: int, views: int) -> list[int]:
    """`views` starts, the centres of `views` equal parts of [0, n - span] (one view: the middle clip)."""
    delta = max(n - span, 0)
    return [int(delta * (2 * i + 1) // (2 * views)) for i in range(views)]


def scaled_size(width: int, height: int, short: int) -> tuple[int, int]:
    """(width, height) with the short side resized to `short`, aspect ratio kept."""
    if width <= height:
        return short, max(short, round(height * short / width))
    return max(short, round(width * short / height)), short


def eval_crops(frames: torch.Tensor, size: int, crops: int) -> list[torch.Tensor]:
    """(T, H, W, 3) -> `crops` (T, size, size, 3) crops: centre, or left/centre/right along the long side."""
    h, w = frames.shape[1:3]
    y, x = (h - size) // 2, (w - size) // 2
    if crops == 1:
        return [frames[:, y : y + size, x : x + size]]
    if w >= h:
        return [frames[:, y : y + size, x0 : x0 + size] for x0 in (0, x, w - size)]
    return [frames[:, y0 : y0 + size, x : x + size] for y0 in (0, y, h - size)]


def train_crop(frames: torch.Tensor, size: int, flip: bool) -> torch.Tensor:
    """(T, H, W, 3) -> a random (T, size, size, 3) crop, flipped left-right with probability 1/2."""
    h, w = frames.shape[1:3]
    y, x = (int(torch.randint(0, d - size + 1, ())) for d in (h, w))
    crop = frames[:, y : y + size, x : x + size]
    return crop.flip(2) if flip and torch.rand(()) < 0.5 else crop


# --- datasets --------------------------------------------------------------------------------------------


class ClipFiles(Dataset):
    """(clip, label) from files on disk; subclasses read the frames. Unreadable files are skipped."""

    def __init__(self, listing: Listing, spec: VideoSpec, frames: int, size: int, split: str):
        self.listing, self.spec, self.frames, self.size, self.split = listing, spec, frames, size, split
        self.train = split == "train"
        self.views = 1 if self.train else spec.test_views if split == "test" else spec.val_views
        self.crops = 1 if self.train else spec.test_crops if split == "test" else spec.val_crops
        self.mean = torch.tensor(spec.mean).view(3, 1, 1, 1) * 255
        self.std = torch.tensor(spec.std).view(3, 1, 1, 1) * 255
        self.skipped: list[str] = []  # files skipped as unreadable, in this process

    def __len__(self) -> int:
        return len(self.listing.paths)

    def read(self, path: str) -> list[torch.Tensor]:
        """The views of one file, each (T, H', W', 3) uint8 with the short side already resized."""
        raise NotImplementedError

    def short_side(self) -> int:
        lo, hi = self.spec.train_scale
        return int(torch.randint(lo, hi + 1, ())) if self.train else self.spec.test_scale

    def clip(self, path: str) -> torch.Tensor:
        views = self.read(path)
        if self.train:
            crops = [train_crop(views[0], self.size, self.spec.flip)]
        else:
            crops = [c for v in views for c in eval_crops(v, self.size, self.crops)]
        x = torch.stack(crops).permute(0, 4, 1, 2, 3).float()  # (V, T, S, S, 3) -> (V, 3, T, S, S)
        x = (x - self.mean) / self.std
        return x[0] if len(crops) == 1 else x

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        for _ in range(MAX_FAILURES):
            path = str(self.listing.paths[index])
            try:
                return self.clip(path), int(self.listing.labels[index])
            except Exception as error:  # noqa: BLE001 - any unreadable file: skip it, loudly
                self.skipped.append(path)
                warnings.warn(f"skipping unreadable {path} ({type(error).__name__}: {error}); "
                              f"{len(self.skipped)} skipped in this process", RuntimeWarning, stacklevel=2)
                index = int(torch.randint(len(self), ())) if self.train else (index + 1) % len(self)
        raise RuntimeError(f"{MAX_FAILURES} unreadable files in a row (last: {path}); see the warnings above")


class VideoClips(ClipFiles):
    """Clips decoded with PyAV: seek to the keyframe before the first needed frame, decode up to the last."""

    def read(self, path: str) -> list[torch.Tensor]:
        import av

        rate, t = self.spec.sampling_rate, self.frames
        span = (t - 1) * rate + 1
        with av.open(path, metadata_errors="ignore") as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            n = frame_count(container, stream)
            if self.train:
                starts = [int(torch.randint(0, max(n - span, 0) + 1, ()))]
            else:
                starts = eval_starts(n, span, self.views)
            clips = [clip_indices(n, t, rate, s) for s in starts]
            decoded = decode_frames(container, stream, set(np.concatenate(clips).tolist()), self.short_side())
        return [torch.from_numpy(np.stack([decoded[int(i)] for i in idx])) for idx in clips]


def frame_count(container, stream) -> int:
    """Frames in the stream: the header's count, else duration x frame rate (webm/mkv carry no count)."""
    if stream.frames > 0:
        return int(stream.frames)
    fps = float(stream.average_rate or stream.guessed_rate or 30)
    if stream.duration is not None:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        seconds = container.duration / 1e6
    else:
        raise ValueError("the video has neither a frame count nor a duration")
    return max(1, round(seconds * fps))


def _indexed(container, stream, first: int):
    """(frame index, frame) from at or before frame `first` on. Indices come from timestamps after a seek;
    when timestamps are missing or the seek lands past `first`, decode from the start and count."""
    fps = float(stream.average_rate or stream.guessed_rate or 30)
    tb, t0 = stream.time_base, stream.start_time or 0
    if first > 0:
        container.seek(t0 + int(first / fps / tb), stream=stream)  # lands on a keyframe at or before
        frames = container.decode(stream)
        frame = next(frames, None)
        if frame is not None and frame.pts is not None and round(float((frame.pts - t0) * tb) * fps) <= first:
            index = round(float((frame.pts - t0) * tb) * fps)
            yield index, frame
            for frame in frames:
                index = index + 1 if frame.pts is None else round(float((frame.pts - t0) * tb) * fps)
                yield index, frame
            return
        container.seek(0)  # back to the start (container time base), then count
    yield from enumerate(container.decode(stream))


def decode_frames(container, stream, wanted: set[int], short: int) -> dict[int, np.ndarray]:
    """{index: (H', W', 3) uint8 RGB} for each wanted frame index, short side resized to `short`.
    An index past the last decodable frame (the header over-counted) gets the nearest earlier frame."""
    first, last = min(wanted), max(wanted)
    got: dict[int, np.ndarray] = {}
    previous = None
    size = None
    for index, frame in _indexed(container, stream, first):
        if index > last:
            break
        if index in wanted and index not in got:
            size = size or scaled_size(frame.width, frame.height, short)
            got[index] = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
    if not got:
        raise ValueError(f"no frame decoded in [{first}, {last}]")
    for index in sorted(wanted):  # missing frames: the nearest earlier decoded one (or the first)
        if index in got:
            previous = got[index]
        else:
            got[index] = previous if previous is not None else got[min(got)]
    return got


class ImageClips(ClipFiles):
    """Images as 1-frame clips (3, 1, size, size); the temporal views are one."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.views = 1

    def read(self, path: str) -> list[torch.Tensor]:
        from PIL import Image

        with Image.open(path) as image:
            image = image.convert("RGB")
            image = image.resize(scaled_size(*image.size, self.short_side()), Image.Resampling.BILINEAR)
            return [torch.from_numpy(np.asarray(image).copy())[None]]  # (1, H', W', 3)


# --- sources (the DATASETS entries) ---------------------------------------------------------------------


@dataclass
class VideoSource:
    """A dataset on disk. `num_classes` is fixed for the named datasets (known without the disk);
    `dataset()` lists the split, checks the class count against it and returns the clip dataset."""

    name: str  # the data.dataset value, for messages
    layout: str  # a LISTINGS key
    spec: VideoSpec
    frames: int
    size: int
    num_classes: int

    def dataset(self, split: str) -> Dataset:
        listing = LISTINGS[self.layout](self.spec, split)
        if len(listing.classes) != self.num_classes:
            raise ValueError(f"data.video.root: {self.spec.root} has {len(listing.classes)} classes; "
                             f"{self.name} has {self.num_classes} (data.dataset: video_folder takes any number)")
        kind = ImageClips if self.layout == "images" else VideoClips
        return kind(listing, self.spec, self.frames, self.size, split)


def _named(name: str, layout: str, num_classes: int):
    def build(dm) -> VideoSource:
        check_spec(dm.video, dm.frames, dm.size)
        return VideoSource(name, layout, dm.video, dm.frames, dm.size, num_classes)
    return build


def _counted(name: str, layout: str):
    """A source whose classes are the sub-folders of root/train: counting them reads the disk."""
    def build(dm) -> VideoSource:
        check_spec(dm.video, dm.frames, dm.size)
        if layout == "images" and dm.frames != 1:
            raise ValueError(f"data.frames must be 1 for data.dataset: images (1-frame clips), got {dm.frames}")
        train = Path(dm.video.root).expanduser() / "train"
        if not dm.video.root or not train.is_dir():
            raise ValueError(f"data.video.root: {train if dm.video.root else '(not set)'} does not exist "
                             f"({name} counts its class folders in root/train)")
        return VideoSource(name, layout, dm.video, dm.frames, dm.size, len(_class_dirs(train)))
    return build


# data.dataset -> builder of the source from the DataModule's settings
VIDEO_DATASETS = {
    "kinetics": _named("kinetics", "folders", 400),
    "ucf101": _named("ucf101", "ucf101", 101),
    "hmdb51": _named("hmdb51", "hmdb51", 51),
    "video_folder": _counted("video_folder", "folders"),
    "images": _counted("images", "images"),
}
