"""The embedded task: deterministic, balanced, and laid out as its docstring says."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from nlstudy.data import ClipDataModule
from nlstudy.data.synthetic import DIGIT_LEVEL, PALETTE, SyntheticSpec, check, digit_pools, make_clips

CLEAN = SyntheticSpec(noise=0.0, distractors=0, train_samples=200, val_samples=50, test_samples=50)


def patches(clip: np.ndarray) -> list[tuple[int, int, int, tuple]]:
    """(frame, row, col, colour) of the top-left pixel of each patch in a clean clip."""
    found = []
    _, frames, size, _ = clip.shape
    for t in range(frames):
        lit = clip[:, t].max(0) > DIGIT_LEVEL + 1e-6
        for y, x in zip(*np.nonzero(lit)):
            above = y > 0 and lit[y - 1, x] and tuple(clip[:, t, y - 1, x]) == tuple(clip[:, t, y, x])
            left = x > 0 and lit[y, x - 1] and tuple(clip[:, t, y, x - 1]) == tuple(clip[:, t, y, x])
            if not above and not left:
                found.append((t, int(y), int(x), tuple(clip[:, t, y, x])))
    return found


def test_same_arguments_same_clips_and_splits_differ():
    a, la = make_clips(CLEAN, "train", 4, 16)
    b, lb = make_clips(CLEAN, "train", 4, 16)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    c, _ = make_clips(CLEAN, "val", 4, 16)
    assert not np.array_equal(a[:50], c)
    assert a.shape == (200, 3, 4, 16, 16) and a.dtype == np.float32 and la.dtype == np.int64


@pytest.mark.parametrize("task", ["far", "near"])
def test_two_patches_whose_colours_give_the_label(task):
    spec = replace(CLEAN, task=task, patch=3, colours=6)
    clips, labels = make_clips(spec, "train", 4, 16)
    assert labels.mean() == 0.5  # balanced
    palette = {tuple(c) for c in PALETTE[:6]}
    for clip, label in zip(clips, labels):
        found = patches(clip)
        if task == "near" and len(found) == 1:  # two touching patches of one colour read as one block
            (t, y, x, colour), = found
            assert label == 1 and colour in palette
            continue
        (ta, ya, xa, ca), (tb, yb, xb, cb) = sorted(found)
        assert {ca, cb} <= palette and (ca == cb) == bool(label)
        if task == "far":
            assert ta < 2 <= tb  # first half, second half
            assert max(abs(ya - yb), abs(xa - xb)) >= spec.distance
        else:
            assert ta == tb
            assert sorted([abs(ya - yb), abs(xa - xb)]) == [0, spec.patch]  # touching along one side


def test_distractor_digits_are_split_by_image():
    pools = digit_pools(0)
    flat = {split: {img.tobytes() for img in images} for split, images in pools.items()}
    assert sum(len(v) for v in flat.values()) <= 1797
    assert not flat["train"] & flat["val"] and not flat["train"] & flat["test"] and not flat["val"] & flat["test"]
    clips, _ = make_clips(replace(CLEAN, distractors=3), "train", 4, 16)
    grey = (clips[:, 0] == clips[:, 1]) & (clips[:, 1] == clips[:, 2]) & (clips[:, 0] > 0) & (clips[:, 0] <= DIGIT_LEVEL)
    assert grey.any()  # grey strokes are there, under the patches


@pytest.mark.parametrize("change,frames,size,message", [
    (dict(task="middle"), 4, 16, "data.synthetic.task"),
    (dict(colours=11), 4, 16, r"data.synthetic.colours=11: must be in \[2, 10\]"),
    (dict(distance=20), 4, 16, r"data.synthetic.distance=20: must be in \[0, 12\]"),
    (dict(), 1, 16, "data.frames=1: task 'far' puts the patches in different frames"),
    (dict(patch=9), 4, 16, r"data.synthetic.patch=9: must be in \[1, 8\]"),
    (dict(noise=-1.0), 4, 16, "data.synthetic.noise"),
])
def test_bad_knobs_name_the_key(change, frames, size, message):
    with pytest.raises(ValueError, match=message):
        check(replace(SyntheticSpec(), **change), frames, size)


def test_data_module_serves_batches_and_checks_knobs_when_built():
    dm = ClipDataModule(frames=4, size=16, batch_size=8, synthetic=replace(CLEAN, train_samples=20))
    assert dm.num_classes == 2 and dm.clip_shape == (3, 4, 16, 16)
    dm.setup("fit")
    clips, labels = next(iter(dm.train_dataloader()))
    assert clips.shape == (8, 3, 4, 16, 16) and labels.dtype == torch.int64
    assert len(dm.train_dataloader()) == 2  # drop_last: 20 clips in batches of 8
    with pytest.raises(ValueError, match="data.synthetic.distance"):
        ClipDataModule(frames=4, size=16, synthetic=SyntheticSpec(distance=99)).num_classes
