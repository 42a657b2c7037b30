"""The embedded task: "do the two coloured patches have the same colour?", evidence far apart or side by side.

Each clip (3, T, S, S) holds two small coloured squares ("patches") among grey distractor digits
(scikit-learn's 1,797 real 8x8 handwritten digits, shipped inside the package: nothing is downloaded)
and Gaussian noise. The label is 1 when the two patches have the same colour, else 0 (balanced).

- task="far" (long-range evidence): the patches sit in different frames, one in the first half of the
  clip and one in the second, at least `distance` pixels apart. A C2D network (every temporal kernel 1,
  no temporal stride or pooling) sees one frame at a time and ends in a global average pool and a
  linear classifier, so its logit difference is additive over positions: s(colour A) + s(colour B).
  "Same" would need s(a) + s(a) > 0 for every colour and s(a) + s(b) < 0 for every pair a != b, which
  no function s satisfies (add the first for a and for b, compare with twice the second): the plain
  baseline stays at chance. A block that relates positions across frames (non-local, global context,
  squeeze-excitation) or 3-d convolutions that span the frames (I3D) can answer.
- task="near" (local evidence, the control): the patches touch, in one frame, inside the receptive field
  of the plain CNN, so C2D can answer and the block should not be needed.
- task="within" (evidence in one frame at a set distance, the receptive-field experiment): both patches
  in one frame, exactly `distance` pixels apart (Chebyshev distance between their corners: `patch` is
  touching, `size - patch` is opposite corners). A C2D network can answer once its receptive field
  spans the distance, so sweeping the distance shows where a non-local block adds a wider view and
  where the plain CNN already sees enough. On a small frame the largest distances force the patches into
  opposite corners, so position changes with distance; "reach" does not.
- task="reach" (the receptive-field family, positions independent of distance): both patches in one frame,
  exactly `distance` pixels apart (Chebyshev, corner to corner), the pair placed around an anchor drawn
  uniformly from the middle third of the frame's corner positions, the same window at every distance; the
  offset from patch A to patch B is uniform over the 8 * distance offsets at that distance. Every distance
  from `patch` (touching) to `reach_limit(size, patch)` (about two thirds of the frame) fits from every
  anchor, so a sweep over distances changes nothing but the distance: where the evidence sits, in the frame
  and against the network's stride grid, has the same distribution at each. C2D (global average pool,
  linear classifier) can answer only where one position of its last stage sees both patches, i.e. where
  the distance is within its receptive field; set the distances against its measured ERF.

Why colours and not the digits themselves: a "same digit?" version (the first design) did not train
in the demo's CPU budget; a ResNet-18 at width 8-16 stayed at chance for 20 epochs even with the two
digits side by side, because it must learn handwriting from a 1-bit label before it can compare.
Colour is recognised by the first convolution, so the budget goes to the relation, which is what the
non-local block is about. The digits stay as clutter the network must learn to ignore.

Everything is generated from `seed` and the split name (the distractor digits are split 60/20/20 by
image between train/val/test): the same arguments give the same clips on any machine. `make_evidence`
gives where the patches of those clips are (for the analysis: queries on the evidence or the background),
`evidence_mask` the same as a per-pixel mask, `make_colours` their colours; all three replay the generator,
so they describe exactly the clips `make_clips` returns. The clips of every task are bit-identical to those
of earlier versions of this file (tests/test_data_synthetic.py keeps their digests).
"""

from __future__ import annotations

import functools

from dataclasses import dataclass
import numpy as np

from nlstudy.choices import SPLIT_INDEX, TASKS, Task
from nlstudy.registry import lookup

NUM_CLASSES = 2  # different, same
DIGIT = 8  # side of a distractor digit, pixels
DIGIT_LEVEL = 0.5  # grey level of the distractor digits
PALETTE = np.array([  # saturated colours first: `colours` takes the first n
    [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 0.5, 0], [0.5, 0, 1], [0, 1, 0.5], [1, 1, 1],
], dtype=np.float32)


@dataclass(frozen=True)
class SyntheticSpec:
    """Knobs of the embedded task (`data.synthetic.*`)."""

    # far: patches in different frames, far apart; near: touching, one frame; within: one frame, `distance` apart;
    # reach: one frame, `distance` apart, placed independently of the distance (the receptive-field family)
    task: Task = "far"
    # far: minimum, within / reach: exact distance between the patches (pixels, Chebyshev, corner to corner)
    distance: int = 6
    patch: int = 4  # side of the coloured patches, pixels
    colours: int = 4  # palette size (2-10); "different" pairs are drawn uniformly among the others
    distractors: int = 2  # grey handwritten digits per clip, in random frames and places
    noise: float = 0.1  # std of the Gaussian noise added to every pixel (patches lie in [0, 1])
    train_samples: int = 2048
    val_samples: int = 512
    test_samples: int = 512
    seed: int = 0  # data seed: the same clips for every run of a study, whatever seed_everything is


@functools.cache
def digit_images() -> np.ndarray:
    """scikit-learn's 1797 (8, 8) digit images as float32 in [0, 1], read once per process (read-only)."""
    from sklearn.datasets import load_digits  # the images ship inside scikit-learn: no download

    images = (load_digits().images / 16.0).astype(np.float32)
    images.flags.writeable = False
    return images


def digit_pools(seed: int) -> dict[str, np.ndarray]:
    """Per split, (n, 8, 8) float digit images in [0, 1]; disjoint images between splits."""
    images = digit_images()
    order = np.random.default_rng(seed).permutation(len(images))
    cut = [0, int(0.6 * len(images)), int(0.8 * len(images)), len(images)]
    return {split: images[order[cut[i] : cut[i + 1]]] for split, i in SPLIT_INDEX.items()}


def check(spec: SyntheticSpec, frames: int, size: int) -> None:
    """One-line errors naming the key and the valid range, before anything is generated."""
    lookup(dict.fromkeys(TASKS), spec.task, "data.synthetic.task")
    if not 2 <= spec.colours <= len(PALETTE):
        raise ValueError(f"data.synthetic.colours={spec.colours}: must be in [2, {len(PALETTE)}]")
    if not 1 <= spec.patch <= size // 2:
        raise ValueError(f"data.synthetic.patch={spec.patch}: must be in [1, {size // 2}] for data.size={size}")
    if spec.task == "far" and frames < 2:
        raise ValueError(f"data.frames={frames}: task 'far' puts the patches in different frames; use 2 or more")
    if spec.task == "far" and not 0 <= spec.distance <= size - spec.patch:
        raise ValueError(f"data.synthetic.distance={spec.distance}: must be in [0, {size - spec.patch}] "
                         f"for data.size={size} and data.synthetic.patch={spec.patch}")
    if spec.task == "within" and not spec.patch <= spec.distance <= size - spec.patch:
        raise ValueError(f"data.synthetic.distance={spec.distance}: task 'within' needs it in "
                         f"[{spec.patch}, {size - spec.patch}] (touching to opposite corners) for data.size={size} "
                         f"and data.synthetic.patch={spec.patch}")
    if spec.task == "reach" and not spec.patch <= spec.distance <= reach_limit(size, spec.patch):
        raise ValueError(f"data.synthetic.distance={spec.distance}: task 'reach' needs it in "
                         f"[{spec.patch}, {reach_limit(size, spec.patch)}] (touching to the largest distance that fits "
                         f"from every anchor) for data.size={size} and data.synthetic.patch={spec.patch}")
    if size < DIGIT and spec.distractors:
        raise ValueError(f"data.size={size}: distractor digits need frames of at least {DIGIT} pixels "
                         "(or data.synthetic.distractors=0)")
    for name in ("distractors", "train_samples", "val_samples", "test_samples"):
        if getattr(spec, name) < 0:
            raise ValueError(f"data.synthetic.{name}={getattr(spec, name)}: must be >= 0")
    if spec.noise < 0:
        raise ValueError(f"data.synthetic.noise={spec.noise}: must be >= 0")


def reach_limit(size: int, patch: int) -> int:
    """The largest distance task "reach" offers on frames of `size`: the pair's anchor lies in the middle third
    of the span of corner positions, [lo, span - 1 - lo] with lo = (span - 1) // 3, and every distance up to
    2 lo fits from every anchor of it."""
    return 2 * ((size - patch) // 3)


def make_clips(spec: SyntheticSpec, split: str, frames: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3, T, S, S) float32 clips and (n,) int64 labels of `split`; deterministic in (spec, split)."""
    clips, labels, _, _ = _generate(spec, split, frames, size)
    return clips, labels


def make_evidence(spec: SyntheticSpec, split: str, frames: int, size: int) -> np.ndarray:
    """Where the two patches of `make_clips(spec, split, frames, size)` are: an (n, 2, 3) int64 array of the
    (t, y, x) top-left corner of patch A and of patch B (each `spec.patch` pixels square), clip by clip."""
    return _generate(spec, split, frames, size)[2]


def make_colours(spec: SyntheticSpec, split: str, frames: int, size: int) -> np.ndarray:
    """The palette indices (n, 2) int64 of patch A and patch B of each clip of `make_clips(spec, split, ...)`
    (the label is 1 where they are equal): what a classifier's errors can be broken down by."""
    return _generate(spec, split, frames, size)[3]


def evidence_mask(spec: SyntheticSpec, split: str, frames: int, size: int) -> np.ndarray:
    """(n, T, S, S) bool: True on the pixels of the two patches of each clip of `make_clips` (the evidence)."""
    corners = make_evidence(spec, split, frames, size)
    mask = np.zeros((len(corners), frames, size, size), dtype=bool)
    for i, pair in enumerate(corners):
        for t, y, x in pair:
            mask[i, t, y : y + spec.patch, x : x + spec.patch] = True
    return mask


def _generate(spec: SyntheticSpec, split: str, frames: int,
              size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The clips, labels, patch corners (n, 2, 3) and patch colours (n, 2) of `split`: one random stream per
    (seed, split, task)."""
    split_id = lookup(SPLIT_INDEX, split, "split")
    check(spec, frames, size)
    n = {"train": spec.train_samples, "val": spec.val_samples, "test": spec.test_samples}[split]
    digits = digit_pools(spec.seed)[split]
    rng = np.random.default_rng([spec.seed, split_id, TASKS.index(spec.task)])
    clips = np.zeros((n, 3, frames, size, size), dtype=np.float32)
    corners = np.zeros((n, 2, 3), dtype=np.int64)
    colours = np.zeros((n, 2), dtype=np.int64)
    labels = (np.arange(n) % 2).astype(np.int64)
    rng.shuffle(labels)
    p, span = spec.patch, size - spec.patch + 1

    for i in range(n):
        for _ in range(spec.distractors):  # clutter first: the patches are drawn over it
            t, y, x = rng.integers(frames), rng.integers(size - DIGIT + 1), rng.integers(size - DIGIT + 1)
            clips[i, :, t, y : y + DIGIT, x : x + DIGIT] = DIGIT_LEVEL * digits[rng.integers(len(digits))]
        colour_a = int(rng.integers(spec.colours))
        colour_b = colour_a if labels[i] else int((colour_a + rng.integers(1, spec.colours)) % spec.colours)
        if spec.task == "far":
            t_a, t_b = int(rng.integers(frames // 2)), int(rng.integers(frames // 2, frames))
            while True:
                (ya, xa), (yb, xb) = rng.integers(span, size=2), rng.integers(span, size=2)
                if max(abs(ya - yb), abs(xa - xb)) >= spec.distance:
                    break
        elif spec.task == "within":  # one frame, exactly `distance` apart
            t_a = t_b = int(rng.integers(frames))
            (ya, xa), (yb, xb) = _pair_at_distance(rng, span, spec.distance)
        elif spec.task == "reach":  # one frame, exactly `distance` apart, around an anchor that ignores it
            t_a = t_b = int(rng.integers(frames))
            (ya, xa), (yb, xb) = _pair_around_anchor(rng, span, spec.distance)
        else:  # touching, in one frame: b to the right of or below a (then maybe mirrored)
            t_a = t_b = int(rng.integers(frames))
            ya, xa = rng.integers(size - 2 * p + 1), rng.integers(span)
            yb, xb = ya + p, xa
            if rng.integers(2):
                (ya, xa), (yb, xb) = (xa, ya), (xb, yb)  # side by side instead of stacked
            if rng.integers(2):
                (ya, xa), (yb, xb) = (yb, xb), (ya, xa)
        clips[i, :, t_a, ya : ya + p, xa : xa + p] = PALETTE[colour_a][:, None, None]
        clips[i, :, t_b, yb : yb + p, xb : xb + p] = PALETTE[colour_b][:, None, None]
        corners[i] = ((t_a, ya, xa), (t_b, yb, xb))
        colours[i] = (colour_a, colour_b)
    if spec.noise > 0:
        clips += rng.normal(0.0, spec.noise, clips.shape).astype(np.float32)
    return clips, labels, corners, colours


def _pair_around_anchor(rng: np.random.Generator, span: int, distance: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Two corners in [0, span)^2 exactly `distance` apart (Chebyshev): an anchor c uniform in the middle third
    [lo, span - 1 - lo]^2 whatever the distance, an offset o uniform over the 8 d offsets at distance d, and
    the corners c - floor(o / 2) and c + ceil(o / 2) (inside for every d <= 2 lo: `reach_limit`)."""
    lo = (span - 1) // 3
    cy, cx = (int(v) for v in rng.integers(lo, span - lo, size=2))
    k = int(rng.integers(8 * distance))  # one of the ring's 8 d offsets, walked clockwise from its top-left corner
    side, along = divmod(k, 2 * distance)
    along -= distance  # in [-d, d): each side's last offset is the next side's first
    dy, dx = ((-distance, along), (along, distance), (distance, -along), (-along, -distance))[side]
    return (cy - dy // 2, cx - dx // 2), (cy - dy // 2 + dy, cx - dx // 2 + dx)


def _pair_at_distance(rng: np.random.Generator, span: int, distance: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Two corners in [0, span)^2 whose Chebyshev distance is exactly `distance` (< span): one offset
    coordinate is +-distance, the other anything that keeps the second corner inside."""
    while True:
        ya, xa = (int(v) for v in rng.integers(span, size=2))
        along, other = rng.choice([-distance, distance]), int(rng.integers(-distance, distance + 1))
        dy, dx = (along, other) if rng.integers(2) else (other, along)
        yb, xb = ya + dy, xa + dx
        if 0 <= yb < span and 0 <= xb < span:
            return (ya, xa), (yb, xb)
