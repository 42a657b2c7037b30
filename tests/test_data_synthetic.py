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


# --------------------------------------------------------------------------------------------------
# task "within": both patches in one frame, exactly `distance` apart
# --------------------------------------------------------------------------------------------------


def two_squares(clip: np.ndarray, patch: int) -> list[tuple[int, int, int, tuple]]:
    """(frame, row, col, colour) of the two patch x patch squares of a clip with noise=0 and distractors=0,
    found from the non-zero pixels alone: the first non-zero pixel (frame, row, col order) is the corner
    of one square (no square can have a corner above or left of it), the rest must be the other square."""
    lit = clip.max(0) > 0  # (T, H, W): every lit pixel belongs to a patch
    found = []
    for _ in range(2):
        t, y, x = (int(v) for v in np.argwhere(lit)[0])  # argwhere is in C order: the first pixel
        assert lit[t, y : y + patch, x : x + patch].all() and lit[t, y : y + patch, x : x + patch].shape == (patch,) * 2
        block = clip[:, t, y : y + patch, x : x + patch].reshape(3, -1)
        assert (block == block[:, :1]).all()  # one colour
        found.append((t, y, x, tuple(block[:, 0])))
        lit[t, y : y + patch, x : x + patch] = False
    assert not lit.any()  # nothing else lit
    return found


@pytest.mark.parametrize("distance", [4, 7, 12])  # touching, in between, opposite sides of the frame
def test_within_puts_both_patches_in_one_frame_exactly_distance_apart(distance):
    spec = replace(CLEAN, task="within", distance=distance, patch=4, colours=6)
    clips, labels = make_clips(spec, "train", 4, 16)
    assert labels.mean() == 0.5  # balanced
    palette = {tuple(c) for c in PALETTE[:6]}
    offsets = set()
    for clip, label in zip(clips, labels):
        (ta, ya, xa, ca), (tb, yb, xb, cb) = two_squares(clip, spec.patch)
        assert ta == tb  # one frame
        assert max(abs(ya - yb), abs(xa - xb)) == distance  # Chebyshev, corner to corner: exact
        assert {ca, cb} <= palette and (ca == cb) == bool(label)
        offsets.add((yb - ya, xb - xa))
    frames = {two_squares(clip, spec.patch)[0][0] for clip in clips}
    assert frames == {0, 1, 2, 3}  # any frame
    # the distance is taken along either axis (rows or columns), the other offset varies
    assert any(abs(dy) == distance for dy, _ in offsets) and any(abs(dx) == distance for _, dx in offsets)
    if distance < 12:
        assert any(abs(dy) < distance for dy, _ in offsets) and any(abs(dx) < distance for _, dx in offsets)
    if distance == 12:  # the farthest it can be on a 16-pixel frame: one corner on row/col 0, the other on 12
        for clip in clips[:20]:
            (_, ya, xa, _), (_, yb, xb, _) = two_squares(clip, 4)
            assert {ya, yb} == {0, 12} or {xa, xb} == {0, 12}


def test_within_is_deterministic_and_works_on_one_frame():
    spec = SyntheticSpec(task="within", distance=8, train_samples=64, val_samples=8, test_samples=8)
    a, la = make_clips(spec, "train", 4, 16)
    b, lb = make_clips(spec, "train", 4, 16)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    far, _ = make_clips(replace(spec, task="far"), "train", 4, 16)
    assert not np.array_equal(a, far)  # its own random stream
    one, _ = make_clips(replace(CLEAN, task="within", distance=5, train_samples=20), "train", 1, 16)
    for clip in one:
        (ta, ya, xa, _), (tb, yb, xb, _) = two_squares(clip, 4)
        assert ta == tb == 0 and max(abs(ya - yb), abs(xa - xb)) == 5


@pytest.mark.parametrize("distance,patch,size", [(3, 4, 16), (13, 4, 16), (0, 4, 16), (1, 2, 8), (7, 2, 8)])
def test_within_rejects_a_distance_outside_touching_to_opposite_corners(distance, patch, size):
    spec = SyntheticSpec(task="within", distance=distance, patch=patch, distractors=0)
    with pytest.raises(ValueError) as info:
        check(spec, 4, size)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"data.synthetic.distance={distance}:")
    assert f"[{patch}, {size - patch}]" in message and "'within'" in message
    for ok in (patch, size - patch):  # both ends of the range are valid
        check(replace(spec, distance=ok), 4, size)
    with pytest.raises(ValueError, match="data.synthetic.distance"):
        make_clips(spec, "train", 4, size)


# SHA-256 of the train and val clips and labels that nlstudy/data/synthetic.py gave for these specs as
# committed before task 'within' existed (abb4ed5): the new branch must not change the far and near streams
BEFORE_WITHIN = {
    0: "0152260ed3cbc39ff3202c87aa66024e0add8d828e78d812624dc0ae557d840d",
    1: "3b2d2e8c3e854ee6a5fbe772acc4e8240bca43dd56dd7b9b5cfa77f5c68f43e3",
    2: "450c50360077f8db4e7c4ec968600e135d8ba630515d7beea64248d3bc194f4d",
    3: "8da795773cad80520ad7611bc04296898856425ad72dc2f6127c6724b8f1f60b",
}


@pytest.mark.parametrize("case,change,frames,size", [
    (0, dict(task="far"), 4, 16),
    (1, dict(task="far", distance=10, patch=3, colours=7, distractors=3, noise=0.2, seed=5), 6, 20),
    (2, dict(task="near"), 4, 16),
    (3, dict(task="near", patch=2, colours=3, distractors=0, noise=0.0, seed=1), 1, 12),
])
def test_far_and_near_clips_are_the_same_as_before_task_within(case, change, frames, size):
    import hashlib

    knobs = dict(train_samples=40, val_samples=12, test_samples=12, **change)
    digest = hashlib.sha256()
    for split in ("train", "val"):
        clips, labels = make_clips(SyntheticSpec(**knobs), split, frames, size)
        digest.update(np.ascontiguousarray(clips).tobytes())
        digest.update(np.ascontiguousarray(labels).tobytes())
    assert digest.hexdigest() == BEFORE_WITHIN[case]
