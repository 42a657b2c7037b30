"""Video (and image) datasets read from local disk, decoded with PyAV (`data.dataset`: kinetics, ucf101,
hmdb51, video_folder, images; knobs under `data.video.*`). Frame folders (rawframes) are in
`nlstudy.data.rawframes`, CIFAR in `nlstudy.data.cifar`; both reuse the clip sampling and crops here.

Layouts (`data.video.root`):
- kinetics, video_folder: root/{train,val}/<class>/<video>.{mp4,avi,webm,mkv}; test reads root/test when
  it exists, else root/val. Labels are the class folders of root/train in sorted order (root/val when
  there is no root/train), so every run of a study numbers the classes the same way.
- kinetics with `annotations` set: the official annotation CSVs (label,youtube_id,time_start,time_end,split;
  `annotation_files`, default train.csv, validate.csv, test.csv) list the clips, found anywhere under root
  by their file name <youtube_id>_<time_start:06d>_<time_end:06d>.<ext> (the downloaders' names; flat
  split folders or <label>/ sub-folders alike). Classes: the sorted labels of the train CSV, so
  Kinetics-400/600/700 follow from the files. Clips not on disk are left out with one warning per split
  (their count and an example); a split with none on disk fails. Test reads the test CSV when it exists
  and has labels (Kinetics-600/700 publish it without), else the validation CSV.
- ucf101: root/<class>/<video>.avi (the extracted UCF-101 folder) and the official split files
  classInd.txt, trainlist0N.txt, testlist0N.txt in `split_dir` (default root/ucfTrainTestlist).
- hmdb51: root/<class>/<video>.avi and the official `<class>_test_split<N>.txt` files (1 = train,
  2 = test, 0 = unused) in `split_dir` (default root/testTrainMulti_7030_splits).
  UCF101 and HMDB51 have no validation split: val reads the official test list.
- images: root/{train,val}/<class>/*.{jpg,jpeg,png} as 1-frame clips (3, 1, H, W); needs data.frames 1.

Clips (the paper, after Wang et al. 2018 section 4): `frames` T frames `sampling_rate` apart, counted
in the video's own frames (32 x 2 = 64 consecutive frames of a 30 fps Kinetics video), or, with
`target_fps` set, in frames of the video resampled to that rate (frame k at time k / target_fps shows the
video's frame floor(k * fps / target_fps), fps being the stream's average rate).
- train: one clip per video at a random start; short side resized to a random integer in
  `train_scale`, a random size x size crop, a random horizontal flip -> (3, T, size, size).
- val / test: `views` clips at uniformly spaced starts (the centres of `views` equal parts of the
  possible starts), short side resized to `test_scale`, `crops` crops (1: centre; 3: left, centre,
  right along the long side) -> (views * crops, 3, T, size, size), view-major; a single view is
  returned as (3, T, size, size).
- A video shorter than the clip's span loops: frame k of the clip is frame (start + k * rate) mod n.
- Pixels: RGB in [0, 1], then (x - mean) / std per channel (ImageNet statistics by default).

Decoding seeks to the keyframe before the clip and decodes only up to its last frame, resizing in
FFmpeg's swscale; containers are opened in `__getitem__` (DataLoader workers each open their own).

Faults on disk (the files are not probed when listed: opening Kinetics' 240k videos would take longer
than an epoch of a small run):
- a file that cannot be read (corrupt, truncated: its stream ends well before the frames its header
  promises, not a regular file: a folder, a dangling link, a pipe, which is never opened) is skipped when
  read: train draws another random video, val/test take the next one. The first in a split warns (per
  process); all are counted across DataLoader workers (`skipped_count`) and `ClipDataModule.teardown`
  warns once per split with the count and an example. Every file tried in a row unreadable (10 at most)
  raises one line.
- entries named like videos that are not regular files, and class folders without videos, are found
  when a split is listed: one warning per split each (an empty class keeps its label, so that all splits
  and runs number the classes alike); a split with no videos, a missing root: one-line ValueError.

Nothing here touches the disk before `dataset()` (called by `ClipDataModule.setup`), except the class
count of video_folder / images, which counts the class folders of root/train, and of kinetics with
`annotations`, which reads the train CSV (so checking such a config needs the CSVs, not the videos).
"""

from __future__ import annotations

import csv
import math
import os
import re
import stat
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from nlstudy import files as text_files
from nlstudy.choices import SPLIT_INDEX

MAX_FAILURES = 10  # consecutive unreadable items before __getitem__ gives up
TRUNCATED = 0.1  # a stream ending more than this share of its header's frame count early is truncated
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


# --- listing the videos of a split -----------------------------------------------------------------------


@dataclass(frozen=True)
class Listing:
    """The items of one split: paths and labels (numpy arrays: DataLoader workers share them without
    the copy-on-read that lists of Python objects cause) and the class names."""

    paths: np.ndarray  # (n,) str
    labels: np.ndarray  # (n,) int64
    classes: tuple[str, ...]
    frames: np.ndarray | None = None  # (n,) int64 frame counts, where the listing gives them (rawframes)


def dataset_root(spec: VideoSpec, layout: str) -> Path:
    if not spec.root:
        raise ValueError(f"data.video.root is not set (the {layout} dataset folder)")
    root = Path(spec.root).expanduser()
    if not root.is_dir():
        raise ValueError(f"data.video.root: {root} {'is not a folder' if root.exists() else 'does not exist'}")
    return root


def read_lines(path: Path, key: str) -> list[str]:
    """The lines of a text file listing the data (split files, frame lists): UTF-8, a BOM and CRLF line ends
    allowed; missing or not UTF-8 (binary, Latin-1): one line naming the key, the file and the byte."""
    if not path.is_file():
        raise ValueError(f"{key}: {path} does not exist")
    try:
        return text_files.read_text(path).splitlines()
    except text_files.FileProblem as error:
        raise ValueError(f"{key}: {path} is not a text file ({error.problem})") from None


def regular_file(path: str) -> str:
    """`path`, checked to be a regular file before a decoder opens it: opening a pipe would block for good
    (a folder or a dangling link fail here too, in words)."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise ValueError(f"{path} is not a regular file")
    return path


def _class_dirs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir())


def list_folders(spec: VideoSpec, split: str, extensions: tuple[str, ...]) -> Listing:
    """root/<split>/<class>/<file>; test falls back to val; classes from root/train (else this split)."""
    root = dataset_root(spec, "root/{train,val}/<class>/<file>")
    folder = root / ("test" if split == "test" and (root / "test").is_dir() else "val" if split != "train" else "train")
    if not folder.is_dir():
        raise ValueError(f"data.video.root: {folder} does not exist (expected root/{{train,val}}/<class>/<file>)")
    class_root = root / "train" if (root / "train").is_dir() else folder
    classes = _class_dirs(class_root)
    if not classes:
        raise ValueError(f"data.video.root: {class_root} has no class folders "
                         f"(expected root/{{train,val}}/<class>/<file>)")
    index = {name: i for i, name in enumerate(classes)}
    suffixes = {"." + e.lower().lstrip(".") for e in extensions}
    ending = ", ".join(sorted(suffixes))
    paths, labels, odd, empty = [], [], [], []
    split_classes = _class_dirs(folder)
    for name in split_classes:
        if name not in index:
            raise ValueError(f"data.video.root: {folder / name} is not a class folder of {class_root}")
        with os.scandir(folder / name) as entries:  # no stat per regular file (d_type): Kinetics has 240k of them
            named = [e for e in entries if os.path.splitext(e.name)[1].lower() in suffixes]
        files = sorted(e.path for e in named if e.is_file())
        odd += sorted(e.path for e in named if not e.is_file())  # a folder, a dangling link, a pipe
        if not files:
            empty.append(folder / name)
        paths += files
        labels += [index[name]] * len(files)
    if not paths:
        raise ValueError(f"data.video.root: no files ending in {ending} under {folder}/<class>/")
    if odd:
        warnings.warn(f"{split}: {len(odd)} of {len(odd) + len(paths)} entries under {folder} ending in {ending} are "
                      f"not regular files (e.g. {odd[0]}: a folder, a dangling link or a pipe); left out",
                      RuntimeWarning, stacklevel=2)
    if empty:
        warnings.warn(f"{split}: {len(empty)} of {len(split_classes)} class folders "
                      f"{'has' if len(empty) == 1 else 'have'} no files ending in {ending} (e.g. {empty[0]}); "
                      f"kept as {'a class' if len(empty) == 1 else 'classes'}, so labels stay those of {class_root}",
                      RuntimeWarning, stacklevel=2)
    return Listing(np.array(paths), np.array(labels, dtype=np.int64), tuple(classes))


def _split_dir(spec: VideoSpec, root: Path, default: str) -> Path:
    folder = Path(spec.split_dir).expanduser() if spec.split_dir else root / default
    if not folder.is_dir():
        raise ValueError(f"data.video.split_dir: {folder} does not exist (the official split files)")
    return folder


def _lines(path: Path, key: str) -> list[list[str]]:
    return [line.split() for line in read_lines(path, key) if line.strip()]


def _checked(listing: Listing, source: Path) -> Listing:
    if not len(listing.paths):
        raise ValueError(f"data.video.split_dir: {source} lists no videos")
    if not Path(listing.paths[0]).is_file():  # one cheap probe catches a wrong root
        raise ValueError(f"data.video.root: {listing.paths[0]} (listed in {source}) does not exist")
    return listing


def list_ucf101(spec: VideoSpec, split: str) -> Listing:
    """UCF101: classInd.txt ("1 ApplyEyeMakeup"), trainlist0N.txt ("ApplyEyeMakeup/v_..._g08_c01.avi 1"),
    testlist0N.txt ("ApplyEyeMakeup/v_..._g01_c01.avi"); labels from classInd (0-based here)."""
    root = dataset_root(spec, "UCF-101")
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
    root = dataset_root(spec, "HMDB51")
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


# --- kinetics from the official annotation CSVs ------------------------------------------------------------

KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end")


def kinetics_name(youtube_id: str, start: str, end: str) -> str:
    """The file name (without extension) the common downloaders give a trimmed clip."""
    return f"{youtube_id}_{int(float(start)):06d}_{int(float(end)):06d}"


def read_annotations(path: Path) -> Iterator[tuple[int, str | None, str]]:
    """(line number, label or None, clip file name) for each row of one official Kinetics CSV, read as it
    goes (Kinetics-700's train CSV has 545k rows); label is None without a label column (the 600/700 test
    CSVs have none)."""
    if not path.is_file():
        raise ValueError(f"data.video.annotations: {path} does not exist")
    # utf-8-sig: a spreadsheet's "CSV UTF-8" starts with a BOM, which would otherwise be part of the first column's name
    with open(path, newline="", encoding="utf-8-sig") as f:
        try:
            reader = csv.DictReader(f)
            missing = [c for c in KINETICS_COLUMNS[1:] if c not in (reader.fieldnames or ())]
            if missing:
                raise ValueError(f"data.video.annotations: {path} has no column {missing[0]!r} "
                                 f"(expected {','.join(KINETICS_COLUMNS)},split)")
            for row in reader:
                try:
                    name = kinetics_name(row["youtube_id"], row["time_start"], row["time_end"])
                except (TypeError, ValueError):
                    raise ValueError(f"data.video.annotations: {path} line {reader.line_num} has no numeric "
                                     f"time_start and time_end: {row}") from None
                yield reader.line_num, row.get("label"), name
        except UnicodeDecodeError:  # read as it goes: the byte may come late (a spreadsheet's cp1252 "é")
            raise ValueError(f"data.video.annotations: {path} is {text_files.decode_problem(path.read_bytes())}") \
                from None


def index_files(root: Path, extensions: tuple[str, ...]) -> dict[str, str]:
    """{file name without extension: path} of every file with one of the extensions anywhere under root
    (sorted walk; the first of two same-named files wins). Symbolic links to folders are followed (clips kept
    on another disk, linked in), each real folder once."""
    suffixes = {"." + e.lower().lstrip(".") for e in extensions}
    index: dict[str, str] = {}
    for folder, subfolders, files in text_files.walk(root):
        subfolders.sort()
        for name in sorted(files):
            stem, suffix = os.path.splitext(name)
            if suffix.lower() in suffixes:
                index.setdefault(stem, os.path.join(folder, name))
    return index


@dataclass
class KineticsCsv:
    """Kinetics listed by its annotation CSVs; reads each CSV and walks root at most once."""

    spec: VideoSpec
    _classes: tuple[str, ...] | None = None
    _index: dict[str, str] | None = None

    def csv(self, split: str) -> Path:
        return Path(self.spec.annotations).expanduser() / self.spec.annotation_files[SPLIT_INDEX[split]]

    @property
    def classes(self) -> tuple[str, ...]:
        if self._classes is None:
            folder = Path(self.spec.annotations).expanduser()
            if not folder.is_dir():
                raise ValueError(f"data.video.annotations: {folder} does not exist (the Kinetics CSV folder)")
            labels = {label for _, label, _ in read_annotations(self.csv("train"))}
            if not labels or None in labels:
                raise ValueError(f"data.video.annotations: {self.csv('train')} has no labelled rows")
            self._classes = tuple(sorted(labels))
        return self._classes

    def test_csv(self) -> Path:
        """The test CSV when it exists and has labels, else the val CSV (with a warning when unlabelled)."""
        path = self.csv("test")
        if not path.is_file():
            return self.csv("val")
        try:
            with open(path, newline="", encoding="utf-8-sig") as f:
                if "label" in (csv.DictReader(f).fieldnames or ()):
                    return path
        except UnicodeDecodeError:
            raise ValueError(f"data.video.annotations: {path} is {text_files.decode_problem(path.read_bytes())}") \
                from None
        warnings.warn(f"kinetics test: {path} has no labels; test reads {self.csv('val')}", RuntimeWarning,
                      stacklevel=3)
        return self.csv("val")

    def listing(self, split: str) -> Listing:
        classes = self.classes
        path = self.test_csv() if split == "test" else self.csv(split)
        root = dataset_root(self.spec, "folder of the Kinetics clips")
        if self._index is None:
            self._index = index_files(root, self.spec.extensions)
        index = {name: i for i, name in enumerate(classes)}
        paths, labels, missing = [], [], []
        for _, label, name in read_annotations(path):
            if label not in index:
                raise ValueError(f"data.video.annotations: {path} has label {label!r}, not in {self.csv('train')}")
            if name in self._index:
                paths.append(self._index[name])
                labels.append(index[label])
            else:
                missing.append(name)
        listed = len(paths) + len(missing)
        if not paths:
            example = f"{missing[0]}.{self.spec.extensions[0]}" if missing else "?"
            raise ValueError(f"data.video.root: none of the {listed} clips of {path} is under {root} "
                             f"(files named <youtube_id>_<start:06d>_<end:06d>.<ext>, e.g. {example})")
        if missing:
            warnings.warn(f"kinetics {split}: {len(missing)} of {listed} clips of {path} are not under {root} "
                          f"(e.g. {missing[0]}); left out", RuntimeWarning, stacklevel=2)
        return Listing(np.array(paths), np.array(labels, dtype=np.int64), classes)


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


def resampled(indices: np.ndarray, fps: float, target_fps: float, n: int) -> np.ndarray:
    """Frame indices at `target_fps` -> the video's frames at `fps`: frame k (time k / target_fps) shows
    the video's frame floor(k * fps / target_fps), at most n - 1."""
    return np.minimum(np.floor(indices * (fps / target_fps) + 1e-6).astype(np.int64), max(n, 1) - 1)


def resampled_count(n: int, fps: float, target_fps: float) -> int:
    """Frames of a video of n frames at `fps` once resampled to `target_fps` (those before its end)."""
    return max(1, math.ceil(n * target_fps / fps - 1e-6))


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
        # which items were found unreadable, seen by every DataLoader worker and the main process (shared memory)
        self._unreadable = torch.zeros(len(listing.paths), dtype=torch.bool).share_memory_()
        self._reported = 0  # skipped_count when skip_report last spoke (main process)

    def __len__(self) -> int:
        return len(self.listing.paths)

    def read(self, index: int) -> list[torch.Tensor]:
        """The views of item `index`, each (T, H', W', 3) uint8 with the short side already resized."""
        raise NotImplementedError

    def short_side(self) -> int:
        lo, hi = self.spec.train_scale
        return int(torch.randint(lo, hi + 1, ())) if self.train else self.spec.test_scale

    def frame_indices(self, n: int) -> list[np.ndarray]:
        """The frame indices of each view of a video of n frames: train one clip at a random start, val/test
        `views` clips at uniformly spaced starts (`frames` frames `sampling_rate` apart, looping)."""
        rate, t = self.spec.sampling_rate, self.frames
        span = (t - 1) * rate + 1
        if self.train:
            starts = [int(torch.randint(0, max(n - span, 0) + 1, ()))]
        else:
            starts = eval_starts(n, span, self.views)
        return [clip_indices(n, t, rate, s) for s in starts]

    def clip(self, index: int) -> torch.Tensor:
        return self.finish(self.read(index))

    def finish(self, views: list[torch.Tensor]) -> torch.Tensor:
        """Views (T, H', W', 3) uint8 -> the normalised clip: train a random crop (and flip), val/test the
        `crops` crops of each view -> (3, T, S, S), or (V, 3, T, S, S) for several."""
        if self.train:
            crops = [train_crop(views[0], self.size, self.spec.flip)]
        else:
            crops = [c for v in views for c in eval_crops(v, self.size, self.crops)]
        x = torch.stack(crops).permute(0, 4, 1, 2, 3).float()  # (V, T, S, S, 3) -> (V, 3, T, S, S)
        x = (x - self.mean) / self.std
        return x[0] if len(crops) == 1 else x

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        tries = MAX_FAILURES if self.train else min(MAX_FAILURES, len(self))  # train draws at random
        for _ in range(tries):
            path = str(self.listing.paths[index])
            try:
                return self.clip(index), int(self.listing.labels[index])
            except Exception as error:  # noqa: BLE001 - any unreadable file: skip it, count it
                reason = f"{type(error).__name__}: {error}".replace("\n", " ")
                self.skip(index, reason)
                index = int(torch.randint(len(self), ())) if self.train else (index + 1) % len(self)
        raise RuntimeError(f"{self.split}: {tries} files read in a row were all unreadable (last: {path}: "
                           f"{reason}); is data.video.root the dataset?")

    def skip(self, index: int, reason: str) -> None:
        """Count an unreadable file; the first of this split in this process warns."""
        path = str(self.listing.paths[index])
        self.skipped.append(path)
        self._unreadable[index] = True
        if len(self.skipped) == 1:
            warnings.warn(f"{self.split}: skipping unreadable {path} ({reason}); the split's further unreadable "
                          f"files are counted and reported at the end of the stage", RuntimeWarning, stacklevel=3)

    @property
    def skipped_count(self) -> int:
        """Files found unreadable so far, by this process and its DataLoader workers."""
        return int(self._unreadable.sum())

    def skip_report(self) -> str | None:
        """One line on the files skipped since the last report (None: none)."""
        count = self.skipped_count
        if count == self._reported:
            return None
        self._reported = count
        example = self.listing.paths[int(self._unreadable.nonzero()[0, 0])]
        return f"{self.split}: {count} of {len(self)} files unreadable and skipped (e.g. {example})"


class VideoClips(ClipFiles):
    """Clips decoded with PyAV: seek to the keyframe before the first needed frame, decode up to the last."""

    def read(self, index: int) -> list[torch.Tensor]:
        import av

        with av.open(regular_file(str(self.listing.paths[index])), metadata_errors="ignore") as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            n = frame_count(container, stream)
            target = self.spec.target_fps
            if target:
                fps = stream_fps(stream)
                clips = [resampled(c, fps, target, n) for c in self.frame_indices(resampled_count(n, fps, target))]
            else:
                clips = self.frame_indices(n)
            decoded = decode_frames(container, stream, set(np.concatenate(clips).tolist()), self.short_side(), n)
        return [torch.from_numpy(np.stack([decoded[int(i)] for i in idx])) for idx in clips]


def stream_fps(stream) -> float:
    """The stream's frame rate: its average rate, else FFmpeg's guess, else 30."""
    return float(stream.average_rate or stream.guessed_rate or 30)


def frame_count(container, stream) -> int:
    """Frames in the stream: the header's count, else duration x frame rate (webm/mkv carry no count)."""
    if stream.frames > 0:
        return int(stream.frames)
    fps = stream_fps(stream)
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
    fps = stream_fps(stream)
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


def decode_frames(container, stream, wanted: set[int], short: int, count: int = 0) -> dict[int, np.ndarray]:
    """{index: (H', W', 3) uint8 RGB} for each wanted frame index, short side resized to `short`.
    An index past the last decodable frame (the header over-counted) gets the nearest earlier frame; a stream
    that ends more than 10% (at least 3 frames) short of the `count` frames its header promises is truncated:
    ValueError."""
    first, last = min(wanted), max(wanted)
    got: dict[int, np.ndarray] = {}
    previous = None
    size = None
    end = -1  # the last index decoded
    for index, frame in _indexed(container, stream, first):
        if index > last:
            break
        end = index
        if index in wanted and index not in got:
            size = size or scaled_size(frame.width, frame.height, short)
            got[index] = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
    else:  # the stream ended before the clip's last frame
        if count and count - (end + 1) > max(2, TRUNCATED * count):
            raise ValueError(f"truncated: the stream ends after frame {end + 1} of the {count} its header counts")
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

    def read(self, index: int) -> list[torch.Tensor]:
        from PIL import Image

        with Image.open(regular_file(str(self.listing.paths[index]))) as image:
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

    def listing(self, split: str) -> Listing:
        return LISTINGS[self.layout](self.spec, split)

    def clips(self) -> type[ClipFiles]:
        return ImageClips if self.layout == "images" else VideoClips

    def dataset(self, split: str) -> Dataset:
        listing = self.listing(split)
        if len(listing.classes) != self.num_classes:
            raise ValueError(f"data.video.root: {self.spec.root} has {len(listing.classes)} classes; "
                             f"{self.name} has {self.num_classes} (data.dataset: video_folder takes any number)")
        return self.clips()(listing, self.spec, self.frames, self.size, split)


@dataclass
class KineticsCsvSource(VideoSource):
    """Kinetics listed by its annotation CSVs (data.video.annotations); the classes come from the train CSV."""

    csv: KineticsCsv | None = None

    def listing(self, split: str) -> Listing:
        return self.csv.listing(split)


def _named(name: str, layout: str, num_classes: int):
    def build(dm) -> VideoSource:
        check_spec(dm.video, dm.frames, dm.size, name)
        if name == "kinetics" and dm.video.annotations:  # the class count is the train CSV's: reads that file
            listed = KineticsCsv(dm.video)
            return KineticsCsvSource(name, layout, dm.video, dm.frames, dm.size, len(listed.classes), listed)
        return VideoSource(name, layout, dm.video, dm.frames, dm.size, num_classes)
    return build


def _counted(name: str, layout: str):
    """A source whose classes are the sub-folders of root/train: counting them reads the disk."""
    def build(dm) -> VideoSource:
        check_spec(dm.video, dm.frames, dm.size, name)
        if layout == "images" and dm.frames != 1:
            raise ValueError(f"data.frames must be 1 for data.dataset: images (1-frame clips), got {dm.frames}")
        root = Path(dm.video.root).expanduser()
        if dm.video.root and root.exists():
            dataset_root(dm.video, name)  # a file: "is not a folder"
        train = root / "train"
        if not dm.video.root or not train.is_dir():
            raise ValueError(f"data.video.root: {train if dm.video.root else '(not set)'} does not exist "
                             f"({name} counts its class folders in root/train)")
        classes = _class_dirs(train)
        if not classes:
            raise ValueError(f"data.video.root: {train} has no class folders ({name} reads root/train/<class>/<file>)")
        return VideoSource(name, layout, dm.video, dm.frames, dm.size, len(classes))
    return build


# data.dataset -> builder of the source from the DataModule's settings
VIDEO_DATASETS = {
    "kinetics": _named("kinetics", "folders", 400),
    "ucf101": _named("ucf101", "ucf101", 101),
    "hmdb51": _named("hmdb51", "hmdb51", 51),
    "video_folder": _counted("video_folder", "folders"),
    "images": _counted("images", "images"),
}
