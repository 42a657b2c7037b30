"""Frame folders (rawframes, mmaction2's layout) and CIFAR pickles: tiny real files written here, read back
through ClipDataModule. Frame i of a frame folder is flat grey 6 * i (JPEG keeps a flat grey within +-1), so
with mean 0 and std 1/255 a clip's pixels read back as frame numbers."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from nlstudy.data import ClipDataModule
from nlstudy.data.video import VideoSpec

STEP = 6
RAW = dict(mean=(0.0, 0.0, 0.0), std=(1 / 255,) * 3)


def frame_ids(clip: torch.Tensor) -> list[int]:
    """(..., 3, T, H, W) raw grey clip -> the frame number shown in each of the T frames (of the first view)."""
    while clip.dim() > 4:
        clip = clip[0]
    return (clip.mean(dim=(0, 2, 3)) / STEP).round().int().tolist()


# --- rawframes -------------------------------------------------------------------------------------------------


def frames_folder(folder: Path, count: int, template: str = "img_{:05d}.jpg", start: int = 1) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    for i in range(count):
        Image.new("RGB", (20, 16), (STEP * i,) * 3).save(folder / template.format(i + start), quality=95)


@pytest.fixture(scope="module")
def rawframes(tmp_path_factory) -> Path:
    """root/{train,val}/<video>/img_0000N.jpg (20x16, 12 frames each) and train_list.txt / val_list.txt."""
    root = tmp_path_factory.mktemp("rawframes")
    for name in ("train/a b", "train/c", "val/d"):
        frames_folder(root / name, 12)
    (root / "train_list.txt").write_text("train/a b 12 0\ntrain/c 12 2\n\n")  # a folder name with a space
    (root / "val_list.txt").write_text("val/d 12 1\n")
    return root


def rawframes_module(root: Path, frames: int = 4, **video) -> ClipDataModule:
    spec = dict(root=str(root), train_scale=(16, 20), test_scale=16, sampling_rate=2, **RAW)
    return ClipDataModule("rawframes", frames=frames, size=16, batch_size=2, video=VideoSpec(**{**spec, **video}))


def test_rawframes_sample_like_videos(rawframes):
    dm = rawframes_module(rawframes)
    assert dm.num_classes == 3  # the train list's largest label + 1
    dm.setup("fit")
    train, val = dm.split("train"), dm.split("val")
    assert train.listing.paths.tolist() == [str(rawframes / "train/a b"), str(rawframes / "train/c")]
    assert train.listing.labels.tolist() == [0, 2] and train.listing.frames.tolist() == [12, 12]
    torch.manual_seed(0)
    clips = [train[1] for _ in range(5)]
    for clip, label in clips:
        ids = frame_ids(clip)
        assert clip.shape == (3, 4, 16, 16) and label == 2
        assert ids == [ids[0] + 2 * k for k in range(4)] and 0 <= ids[0] <= 12 - 7
    clip, label = val[0]
    assert label == 1 and frame_ids(clip) == [2, 4, 6, 8]  # span 7, starts 0..5: the centre one
    dm.setup("test")  # no test_list.txt: test reads the val list
    clip, label = dm.split("test")[0]
    assert clip.shape == (30, 3, 4, 16, 16) and frame_ids(clip[27]) == [4, 6, 8, 10]  # the last of 10 views: 5 * 19 // 20


def test_rawframes_template_start_and_looping(tmp_path):
    frames_folder(tmp_path / "v", 3, template="{:03d}.png", start=0)
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "t.txt").write_text("v 3 0\n")
    dm = rawframes_module(tmp_path, frame_template="{:03d}.png", frame_start=0,
                          frame_lists=("lists/t.txt", str(tmp_path / "lists" / "t.txt"), "absent.txt"))
    dm.setup("validate")
    assert frame_ids(dm.split("val")[0][0]) == [0, 2, 1, 0]  # 3 frames: the clip loops


def test_rawframes_fail_in_one_line(rawframes, tmp_path):
    with pytest.raises(ValueError, match="^data.video.frame_template must be a str.format pattern"):
        rawframes_module(rawframes, frame_template="img.jpg").num_classes
    with pytest.raises(ValueError, match="^data.video.target_fps is read only by"):
        rawframes_module(rawframes, target_fps=30.0).num_classes
    with pytest.raises(ValueError, match=f"^data.video.frame_lists: {tmp_path / 'train_list.txt'} does not exist"):
        rawframes_module(tmp_path).num_classes
    (tmp_path / "train_list.txt").write_text("video_without_count 0\n")
    with pytest.raises(ValueError, match="train_list.txt line 1 is not '<folder> <num_frames> <label>'"):
        rawframes_module(tmp_path).num_classes
    (tmp_path / "train_list.txt").write_text("a 12 0\n")
    (tmp_path / "val_list.txt").write_text("a 12 5\n")
    with pytest.raises(ValueError, match="val_list.txt has label 5; the train list's labels are 0..0"):
        rawframes_module(tmp_path).split("val")
    with pytest.raises(ValueError, match=f"^data.video.root: {tmp_path / 'a'} .listed in .*train_list.txt. does not exist"):
        rawframes_module(tmp_path).split("train")


def test_a_missing_frame_is_skipped_with_a_warning(tmp_path):
    frames_folder(tmp_path / "good", 12)
    frames_folder(tmp_path / "short", 3)
    (tmp_path / "train_list.txt").write_text("good 12 0\n")
    (tmp_path / "val_list.txt").write_text("short 12 0\ngood 12 0\n")  # the list claims frames the folder lacks
    val = rawframes_module(tmp_path).split("val")
    with pytest.warns(RuntimeWarning, match="skipping unreadable .*short .FileNotFoundError"):
        clip, _ = val[0]
    assert frame_ids(clip) == [2, 4, 6, 8] and len(val.skipped) == 1


# --- CIFAR -----------------------------------------------------------------------------------------------------


def cifar_images(n: int, seed: int) -> np.ndarray:
    """(n, 3072) uint8 rows as the official files hold them: the R plane, then G, then B, each 32x32 row-major."""
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


def dump(path: Path, data: dict, byte_keys: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:  # protocol 2, as the official (Python 2) files
        pickle.dump({k.encode() if byte_keys else k: v for k, v in data.items()}, f, protocol=2)


@pytest.fixture(scope="module")
def cifar(tmp_path_factory) -> Path:
    """parent/cifar-10-batches-py/ (5 train batches of 2 images, a test batch of 3) and parent/cifar-100-python/."""
    parent = tmp_path_factory.mktemp("cifar")
    ten = parent / "cifar-10-batches-py"
    for i in range(1, 6):
        dump(ten / f"data_batch_{i}", {"batch_label": f"training batch {i} of 5", "labels": [i - 1, 9 - i],
                                       "data": cifar_images(2, i), "filenames": ["x.png", "y.png"]}, byte_keys=i == 1)
    dump(ten / "test_batch", {"labels": [3, 1, 4], "data": cifar_images(3, 0)})
    dump(ten / "batches.meta", {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                                "horse", "ship", "truck"], "num_vis": 3072})
    hundred = parent / "cifar-100-python"
    dump(hundred / "train", {"fine_labels": [99, 0, 42], "coarse_labels": [1, 2, 3], "data": cifar_images(3, 7)})
    dump(hundred / "test", {"fine_labels": [7], "coarse_labels": [0], "data": cifar_images(1, 8)})
    dump(hundred / "meta", {"fine_label_names": [f"c{i}" for i in range(100)], "coarse_label_names": ["x"] * 20})
    return parent


def cifar_module(root: Path, name: str = "cifar10", size: int = 32, frames: int = 1, **video) -> ClipDataModule:
    return ClipDataModule(name, frames=frames, size=size, batch_size=4, video=VideoSpec(root=str(root), **{**RAW, **video}))


def test_cifar10_reads_the_official_pickles(cifar):
    dm = cifar_module(cifar)  # the folder holding cifar-10-batches-py
    assert dm.num_classes == 10
    dm.setup("fit")
    train, val = dm.split("train"), dm.split("val")
    assert len(train) == 10 and train.listing.labels.tolist() == [0, 8, 1, 7, 2, 6, 3, 5, 4, 4]
    assert train.listing.classes[3] == "cat" and val.listing.labels.tolist() == [3, 1, 4]
    clip, label = val[2]
    assert clip.shape == (3, 1, 32, 32) and label == 4
    planes = cifar_images(3, 0)[2].reshape(3, 32, 32)  # eval: the image itself, channel by channel
    torch.testing.assert_close(clip[:, 0], torch.from_numpy(planes).float(), atol=1e-3, rtol=0)
    torch.manual_seed(0)
    crops = [train[0][0] for _ in range(20)]
    assert all(c.shape == (3, 1, 32, 32) for c in crops)
    assert any(bool((c[:, 0, :4] == 0).all() or (c[:, 0, -4:] == 0).all()) for c in crops)  # padded rows show
    assert len({c.sum().item() for c in crops}) > 5  # random crops and flips
    dm.setup("test")
    batch, labels = next(iter(dm.test_dataloader()))
    assert batch.shape == (3, 3, 1, 32, 32) and labels.tolist() == [3, 1, 4]


def test_cifar100_fine_labels_from_the_extracted_folder_and_crops(cifar):
    dm = cifar_module(cifar / "cifar-100-python", name="cifar100", size=24, crop_padding=0, flip=False)
    assert dm.num_classes == 100
    train = dm.split("train")
    assert train.listing.labels.tolist() == [99, 0, 42] and train.listing.classes[99] == "c99"
    clip, label = dm.split("test")[0]
    planes = cifar_images(1, 8)[0].reshape(3, 32, 32)[:, 4:28, 4:28]  # the centre 24x24
    assert clip.shape == (3, 1, 24, 24) and label == 7
    torch.testing.assert_close(clip[:, 0], torch.from_numpy(planes.copy()).float(), atol=1e-3, rtol=0)
    crops = {tuple(train[0][0].flatten()[:8].tolist()) for _ in range(10)}
    assert len(crops) > 1  # no padding, no flip: still a random 24x24 crop of the 32x32 image


def test_cifar_fails_in_one_line(cifar, tmp_path):
    with pytest.raises(ValueError, match="^data.frames must be 1 for data.dataset: cifar10"):
        cifar_module(cifar, frames=4).num_classes
    with pytest.raises(ValueError, match="^data.size must be at most 32 for data.dataset: cifar100"):
        cifar_module(cifar, name="cifar100", size=64, train_scale=(64, 64), test_scale=64).num_classes
    with pytest.raises(ValueError, match="^data.video.crop_padding must be >= 0"):
        cifar_module(cifar, crop_padding=-1).num_classes
    with pytest.raises(ValueError, match=f"^data.video.root: neither {tmp_path} nor {tmp_path / 'cifar-10-batches-py'} holds batches.meta"):
        cifar_module(tmp_path).split("train")
    (tmp_path / "batches.meta").write_bytes(pickle.dumps({"label_names": __import__("os").getcwd}))  # code, not data
    with pytest.raises(ValueError, match="batches.meta is not a CIFAR pickle .UnpicklingError: refusing posix.getcwd"):
        cifar_module(tmp_path).split("train")
