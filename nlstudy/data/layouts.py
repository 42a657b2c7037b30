"""Listing the videos of a split in the five folder layouts (folders, ucf101, hmdb51, kinetics CSVs; LISTINGS); see nlstudy.data.video."""

from __future__ import annotations

import csv
import os
import re
import stat
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nlstudy import files as text_files
from nlstudy.choices import SPLIT_INDEX
from nlstudy.data.videospec import IMAGE_EXTENSIONS, VideoSpec


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
