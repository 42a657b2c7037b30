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

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from nlstudy.data.layouts import (  # noqa: F401 (re-exported: nlstudy.data.video stays the import path)
    HMDB_FILE, HMDB_SPLIT_IDS, KINETICS_COLUMNS, LISTINGS, KineticsCsv, Listing, _checked, _class_dirs, _lines,
    _split_dir, dataset_root, index_files, kinetics_name, list_folders, list_hmdb51, list_ucf101, read_annotations,
    read_lines, regular_file,
)
from nlstudy.data.sampling import (  # noqa: F401 (re-exported: nlstudy.data.video stays the import path)
    clip_indices, eval_crops, eval_starts, resampled, resampled_count, scaled_size, train_crop,
)
from nlstudy.data.videospec import (  # noqa: F401 (re-exported: nlstudy.data.video stays the import path)
    IMAGE_EXTENSIONS, READERS, VideoSpec, _template_ok, check_spec,
)

MAX_FAILURES = 10  # consecutive unreadable items before __getitem__ gives up
TRUNCATED = 0.1  # a stream ending more than this share of its header's frame count early is truncated


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


# --- sources (built by nlstudy.data.DATASETS' records) ---------------------------------------------------------------------


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


def named(name: str, layout: str, num_classes: int):
    """The builder of a source whose class count is fixed (known without the disk); Kinetics listed by its
    annotation CSVs counts the train CSV's classes."""
    def build(dm) -> VideoSource:
        check_spec(dm.video, dm.frames, dm.size, name)
        if name == "kinetics" and dm.video.annotations:  # the class count is the train CSV's: reads that file
            listed = KineticsCsv(dm.video)
            return KineticsCsvSource(name, layout, dm.video, dm.frames, dm.size, len(listed.classes), listed)
        return VideoSource(name, layout, dm.video, dm.frames, dm.size, num_classes)
    return build


def counted(name: str, layout: str):
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

