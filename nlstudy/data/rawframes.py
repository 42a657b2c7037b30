"""Pre-extracted frame folders, mmaction2's "rawframes" layout (`data.dataset: rawframes`).

    root/<video folder>/img_00001.jpg, img_00002.jpg, ...      (`data.video.frame_template`, `frame_start`)
    list files (`data.video.frame_lists`: train, val, test), one line per video:
        <video folder relative to root> <number of frames> <label>

Labels are the integers of the lists (0-based, as mmaction2 writes them); the class count is the largest
label of the train list + 1 (reading that list when the classes are counted). A missing test list: test
reads the val list. Frames are decoded with Pillow (JPEG draft mode when the short side shrinks by 2x or
more); clips are sampled and cropped exactly as for videos (`ClipFiles` in nlstudy.data.video): `frames`
frames `sampling_rate` apart in the folder's frames, train/val/test views and crops. The folders carry no
frame rate, so `data.video.target_fps` is not offered here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nlstudy.choices import SPLIT_INDEX
from nlstudy.data.video import (
    ClipFiles,
    Listing,
    VideoSource,
    VideoSpec,
    check_spec,
    dataset_root,
    read_lines,
    regular_file,
    scaled_size,
)



def list_file(spec: VideoSpec, split: str) -> Path:
    """The list file of a split: relative to root unless absolute; test falls back to val's."""
    root = Path(spec.root).expanduser()
    path = root / Path(spec.frame_lists[SPLIT_INDEX[split]]).expanduser()
    if split == "test" and not path.is_file():
        return list_file(spec, "val")
    return path


def read_list(spec: VideoSpec, split: str) -> tuple[Path, list[tuple[str, int, int]]]:
    """(the list file, its (folder, frame count, label) lines)."""
    path = list_file(spec, split)
    if not path.is_file():
        raise ValueError(f"data.video.frame_lists: {path} does not exist (lines: <folder> <num_frames> <label>)")
    items = []
    for number, line in enumerate(read_lines(path, "data.video.frame_lists"), 1):
        if not line.strip():
            continue
        fields = line.rsplit(maxsplit=2)  # the folder may hold spaces
        try:
            folder, count, label = fields[0], int(fields[1]), int(fields[2])
        except (IndexError, ValueError):
            raise ValueError(f"data.video.frame_lists: {path} line {number} is not '<folder> <num_frames> "
                             f"<label>': {line.strip()!r}") from None
        if count < 1 or label < 0:
            raise ValueError(f"data.video.frame_lists: {path} line {number} needs num_frames >= 1 and label >= 0: "
                             f"{line.strip()!r}")
        items.append((folder, count, label))
    if not items:
        raise ValueError(f"data.video.frame_lists: {path} lists no videos")
    return path, items


def list_rawframes(spec: VideoSpec, split: str, num_classes: int) -> Listing:
    root = dataset_root(spec, "rawframes")
    path, items = read_list(spec, split)
    folders, counts, labels = zip(*items)
    if max(labels) >= num_classes:
        raise ValueError(f"data.video.frame_lists: {path} has label {max(labels)}; the train list's labels "
                         f"are 0..{num_classes - 1}")
    first = root / folders[0]
    if not first.is_dir():  # one cheap probe catches a wrong root
        raise ValueError(f"data.video.root: {first} (listed in {path}) does not exist")
    return Listing(np.array([str(root / f) for f in folders]), np.array(labels, dtype=np.int64),
                   tuple(str(i) for i in range(num_classes)), np.array(counts, dtype=np.int64))


class RawFrames(ClipFiles):
    """Clips read from a folder of frame images, one Pillow decode per needed frame."""

    def read(self, index: int) -> list[torch.Tensor]:
        from PIL import Image

        folder = Path(str(self.listing.paths[index]))
        clips = self.frame_indices(int(self.listing.frames[index]))
        short, size, images = self.short_side(), None, {}
        for i in sorted(set(np.concatenate(clips).tolist())):
            path = regular_file(str(folder / self.spec.frame_template.format(i + self.spec.frame_start)))
            with Image.open(path) as image:
                size = size or scaled_size(*image.size, short)
                image.draft("RGB", size)  # JPEG: decode at a reduced scale no smaller than the target
                images[i] = np.asarray(image.convert("RGB").resize(size, Image.Resampling.BILINEAR))
        return [torch.from_numpy(np.stack([images[int(i)] for i in idx])) for idx in clips]


@dataclass
class RawFramesSource(VideoSource):
    def listing(self, split: str) -> Listing:
        return list_rawframes(self.spec, split, self.num_classes)

    def clips(self) -> type[ClipFiles]:
        return RawFrames


def build(dm) -> RawFramesSource:
    """The rawframes source; its class count reads the train list."""
    check_spec(dm.video, dm.frames, dm.size, "rawframes")
    dataset_root(dm.video, "rawframes")
    _, items = read_list(dm.video, "train")
    num_classes = max(label for _, _, label in items) + 1
    return RawFramesSource("rawframes", "rawframes", dm.video, dm.frames, dm.size, num_classes)
