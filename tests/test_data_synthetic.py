"""The embedded task: deterministic, balanced, and laid out as its docstring says."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from nlstudy.data import ClipDataModule
from nlstudy.data.synthetic import (
    DIGIT_LEVEL, PALETTE, SyntheticSpec, check, digit_pools, evidence_mask, make_clips, make_evidence, reach_limit,
)

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


# the clips every task gave before task 'reach' existed (main at bb76377), by SHA-256 of each case's splits: the
# demo's far task with its defaults and every split, the locality control's near task, the receptive-field
# study's 'within' at 4 and 12 pixels, and smaller settings of 'within' and 'far'
BEFORE_REACH = {
    "demo_far": "b7228473a7951197216781958f17dd1d10cfc33f93754067f36e4fef6891fdcc",
    "locality_near": "ed5104a90ad9aec838eea1bbd449d9db4134e6d8951c127f7da15b67aff7c71c",
    "within_4": "33aab9ed57bc8b9c5b069add8e08cdf43d60ba769561577d22693f0b1ff3280e",
    "within_12": "44a1bacb35184c683c8cd75688bc6ca8d8be4abc61d7bcefd5d0c735a1c35f1d",
    "within_small": "d6ddae43927db7fd06e6ed9a0d1217c3a8166cc7b272e28d71a452d7965ed90e",
    "far_24": "4f2b5667bc2819065eacb6ed49a983d922435885ece16c831e6b27dd26e64218",
}
BEFORE_REACH_CASES = {
    "demo_far": (dict(), 4, 16, ("train", "val", "test")),
    "locality_near": (dict(task="near"), 4, 16, ("val",)),
    "within_4": (dict(task="within", distance=4), 4, 16, ("val",)),
    "within_12": (dict(task="within", distance=12), 4, 16, ("val",)),
    "within_small": (dict(task="within", distance=7, patch=3, colours=5, distractors=1, noise=0.05, seed=2,
                          train_samples=40, val_samples=12, test_samples=12), 1, 20, ("train", "val", "test")),
    "far_24": (dict(train_samples=64, val_samples=16, test_samples=16), 4, 24, ("train", "val", "test")),
}


@pytest.mark.parametrize("case", list(BEFORE_REACH))
def test_every_existing_task_gives_the_clips_it_gave_before_task_reach(case):
    import hashlib

    knobs, frames, size, splits = BEFORE_REACH_CASES[case]
    digest = hashlib.sha256()
    for split in splits:
        clips, labels = make_clips(SyntheticSpec(**knobs), split, frames, size)
        digest.update(np.ascontiguousarray(clips).tobytes())
        digest.update(np.ascontiguousarray(labels).tobytes())
    assert digest.hexdigest() == BEFORE_REACH[case]


# --------------------------------------------------------------------------------------------------
# task "reach": one frame, exactly `distance` apart, placed independently of the distance
# --------------------------------------------------------------------------------------------------


def anchors(corners: np.ndarray) -> np.ndarray:
    """The anchor (y, x) each pair was placed around: corner A + floor(offset / 2)."""
    a, b = corners[:, 0, 1:], corners[:, 1, 1:]
    return a + (b - a) // 2


@pytest.mark.parametrize("distance", [4, 9, 20, 34])  # touching ... reach_limit(56, 4) = 34
def test_reach_puts_both_patches_in_one_frame_exactly_distance_apart(distance):
    spec = replace(CLEAN, task="reach", distance=distance, train_samples=200)
    clips, labels = make_clips(spec, "train", 2, 56)
    corners = make_evidence(spec, "train", 2, 56)
    assert labels.mean() == 0.5
    for clip, label, pair in zip(clips[:60], labels, corners):
        found = two_squares(clip, spec.patch)
        assert sorted((t, y, x) for t, y, x, _ in found) == sorted(map(tuple, pair.tolist()))
        (ta, ya, xa, ca), (tb, yb, xb, cb) = found
        assert ta == tb and max(abs(ya - yb), abs(xa - xb)) == distance and (ca == cb) == bool(label)
    assert (np.abs(corners[:, 0, 1:] - corners[:, 1, 1:]).max(1) == distance).all()
    assert set(corners[:, 0, 0]) == {0, 1}  # either frame
    # every direction occurs: the offset is uniform over the ring of radius `distance`
    offsets = corners[:, 1, 1:] - corners[:, 0, 1:]
    assert {tuple(np.sign(o)) for o in offsets} >= {(-1, -1), (-1, 1), (1, -1), (1, 1)}


def test_reach_places_pairs_the_same_way_at_every_distance():
    """The anchor is uniform on the same window at every distance: no corner forcing, positions carry no
    information about the distance."""
    lo, hi = (28 - 4) // 3, 28 - 4 - (28 - 4) // 3  # the middle third of the 25 corner positions: [8, 16]
    window = hi - lo + 1
    spread = {}
    for distance in (4, 10, 16):  # touching ... reach_limit(28, 4)
        spec = replace(CLEAN, task="reach", distance=distance, train_samples=1500)
        found = anchors(make_evidence(spec, "train", 1, 28))  # (n, 2)
        assert found.min() == lo and found.max() == hi  # the whole window, nothing outside it
        counts = np.stack([np.bincount(found[:, axis] - lo, minlength=window) for axis in (0, 1)])
        expected = len(found) / window
        assert np.abs(counts - expected).max() < 5 * np.sqrt(expected)  # uniform within sampling noise
        spread[distance] = found.mean(0)
    means = np.array(list(spread.values()))
    assert np.abs(means - (lo + hi) / 2).max() < 0.4  # the same centre at each distance (sd of a mean: 0.07)
    # "within" on a small frame, for contrast: the largest distance forces the pairs into the corners
    within = make_evidence(replace(CLEAN, task="within", distance=12, train_samples=200), "train", 1, 16)
    assert (np.isin(within[:, :, 1:], [0, 12]).any(axis=(1, 2))).all()


def test_reach_limit_and_its_one_line_error():
    assert reach_limit(56, 4) == 34 and reach_limit(16, 4) == 8 and reach_limit(112, 6) == 70
    for ok in (4, 34):
        check(replace(CLEAN, task="reach", distance=ok), 1, 56)
    for bad in (3, 35):
        with pytest.raises(ValueError) as info:
            check(replace(CLEAN, task="reach", distance=bad), 1, 56)
        message = str(info.value)
        assert "\n" not in message and message.startswith(f"data.synthetic.distance={bad}:")
        assert "'reach'" in message and "[4, 34]" in message


def test_evidence_mask_marks_the_patches_of_the_clips():
    spec = replace(CLEAN, task="reach", distance=10, patch=5, train_samples=30)
    clips, _ = make_clips(spec, "train", 2, 40)
    mask = evidence_mask(spec, "train", 2, 40)
    assert mask.shape == (30, 2, 40, 40) and mask.dtype == bool
    lit = clips.max(1) > 0  # noise 0, no digits: only the patches are lit
    assert np.array_equal(mask, lit)
    assert (mask.sum(axis=(1, 2, 3)) == 2 * 25).all()
    # the other tasks too, with noise and digits: the generator is replayed, not re-read from pixels
    for task, frames in (("far", 4), ("near", 4), ("within", 1)):
        noisy = SyntheticSpec(task=task, distance=6, train_samples=20)
        corners = make_evidence(noisy, "train", frames, 16)
        clean_clips, _ = make_clips(replace(noisy, noise=0.0), "train", frames, 16)
        for clip, pair in zip(clean_clips, corners):
            for t, y, x in pair:
                patch = clip[:, t, y : y + 4, x : x + 4].reshape(3, -1)
                assert (patch == patch[:, :1]).all() and patch.max() == 1.0  # a saturated, one-colour patch
