"""CIFAR-10 / CIFAR-100 from their official python pickles, as 1-frame clips (`data.dataset: cifar10, cifar100`).

`data.video.root` is the extracted folder (cifar-10-batches-py/ or cifar-100-python/) or the folder that holds
it. CIFAR-10: data_batch_1..5 (train), test_batch, batches.meta (label_names); CIFAR-100: train, test, meta
(fine_label_names; the 100 fine labels). Nothing is downloaded. The pickles are read with an unpickler that
only builds numpy arrays (a pickle can run code; these cannot).

Clips are (3, 1, size, size), needing data.frames 1 and data.size <= 32 (no resizing): train pads each side by
`data.video.crop_padding` zero pixels, takes a random size x size crop and flips it (`data.video.flip`), the
standard CIFAR augmentation; val and test take the centre crop (one view, one crop). CIFAR has no validation
split: val reads the test batch, as for UCF101 / HMDB51. Normalisation: data.video.mean / std (ImageNet's by
default; CIFAR's own in STATS).
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.functional import pad

from nlstudy.data.video import ClipFiles, Listing, VideoSpec, check_spec, dataset_root

SIDE = 32  # CIFAR images are 32 x 32


@dataclass(frozen=True)
class Layout:
    folder: str  # the extracted folder's name
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    names: str  # the class-name key of the meta file
    labels: str  # the label key of a batch
    num_classes: int


LAYOUTS = {
    "cifar10": Layout("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",),
                      "batches.meta", "label_names", "labels", 10),
    "cifar100": Layout("cifar-100-python", ("train",), ("test",), "meta", "fine_label_names", "fine_labels", 100),
}
# the datasets' own per-channel mean and std (data.video.mean / std), for those who want them over ImageNet's
STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
ALLOWED = {("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
           ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED:
            raise pickle.UnpicklingError(f"refusing {module}.{name} (a CIFAR pickle holds only arrays and lists)")
        return super().find_class(module, name)


def load(path: Path) -> dict[str, object]:
    """One official pickle (written by Python 2: latin1 strings), keys as str."""
    if not path.is_file():
        raise ValueError(f"data.video.root: {path} does not exist")
    try:
        data = ArraysOnly(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except Exception as error:  # noqa: BLE001 - any unreadable pickle: one line naming it
        raise ValueError(f"data.video.root: {path} is not a CIFAR pickle ({type(error).__name__}: {error})") from None
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


def folder(spec: VideoSpec, layout: Layout) -> Path:
    """root itself when it holds the files, else root/<the extracted folder>."""
    if not spec.root:
        raise ValueError(f"data.video.root is not set (the {layout.folder} folder or the folder holding it)")
    root = dataset_root(spec, layout.folder)
    for candidate in (root, root / layout.folder):
        if (candidate / layout.meta).is_file():
            return candidate
    raise ValueError(f"data.video.root: neither {root} nor {root / layout.folder} holds {layout.meta}")


def read_split(spec: VideoSpec, layout: Layout, split: str) -> tuple[np.ndarray, Listing]:
    """(images (n, 32, 32, 3) uint8, the listing: labels and class names; no paths)."""
    where = folder(spec, layout)
    names = load(where / layout.meta).get(layout.names)
    if not isinstance(names, list) or len(names) != layout.num_classes:
        raise ValueError(f"data.video.root: {where / layout.meta} has no {layout.num_classes} {layout.names}")
    images, labels = [], []
    for name in layout.train if split == "train" else layout.test:
        batch = load(where / name)
        if "data" not in batch or layout.labels not in batch:
            raise ValueError(f"data.video.root: {where / name} has no 'data' and {layout.labels!r}")
        data = np.asarray(batch["data"], dtype=np.uint8)
        images.append(data.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1))  # rows of R, G, B planes
        labels += list(batch[layout.labels])
    listing = Listing(np.empty(0, dtype=str), np.array(labels, dtype=np.int64), tuple(str(n) for n in names))
    return np.ascontiguousarray(np.concatenate(images)), listing


class CifarClips(ClipFiles):
    """In-memory images as 1-frame clips: train pad + random crop + flip, val/test the centre crop."""

    def __init__(self, images: np.ndarray, listing: Listing, spec: VideoSpec, frames: int, size: int, split: str):
        super().__init__(listing, spec, frames, size, split)
        self.images = images
        self.views = self.crops = 1

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = torch.from_numpy(self.images[index])[None]  # (1, 32, 32, 3)
        if self.train and self.spec.crop_padding:
            p = self.spec.crop_padding
            image = pad(image, (0, 0, p, p, p, p))  # zeros on every side of H and W
        return self.finish([image]), int(self.listing.labels[index])


@dataclass
class CifarSource:
    name: str
    spec: VideoSpec
    frames: int
    size: int
    num_classes: int

    def dataset(self, split: str) -> CifarClips:
        images, listing = read_split(self.spec, LAYOUTS[self.name], split)
        return CifarClips(images, listing, self.spec, self.frames, self.size, split)


def source(name: str):
    def build(dm) -> CifarSource:
        check_spec(dm.video, dm.frames, dm.size, name)
        if dm.frames != 1:
            raise ValueError(f"data.frames must be 1 for data.dataset: {name} (1-frame clips), got {dm.frames}")
        if dm.size > SIDE:
            raise ValueError(f"data.size must be at most {SIDE} for data.dataset: {name} (32x32 images, "
                             f"cropped, not resized), got {dm.size}")
        return CifarSource(name, dm.video, dm.frames, dm.size, LAYOUTS[name].num_classes)
    return build

