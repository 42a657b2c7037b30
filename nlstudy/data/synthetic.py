"""The embedded task: "which digit does the cue point at?", with the cue far from the digits or beside them.

Each clip (3, T, S, S) shows, in one frame, two real handwritten digits side by side, one red and one
green (scikit-learn's 1,797 8x8 digit images, shipped inside the package: nothing is downloaded), and
a small square cue, red or green. The label (10 classes) is the digit whose colour matches the cue.
Blue distractor digits and Gaussian noise fill the rest.

- task="far" (long-range evidence): the cue sits in a later frame than the digits, in the half of the
  frame away from them (at least `distance` pixels from both). C2D (every temporal kernel 1, no
  temporal pooling) sees one frame at a time and ends in a global average pool and a linear
  classifier, so its logits are additive over positions: f(red X) + f(green Y) + f(cue). No additive
  function can pick X for a red cue and Y for a green one for every pair (swap X and Y to get
  contradicting inequalities), so the plain baseline can at best name one of the two digits: about
  half of its digit accuracy. Something that relates frames (a non-local block, 3-d convolutions, a
  global-context block) can read the cue and answer fully.
- task="near" (local evidence, the control): the cue sits in the same frame, next to the digits, inside
  the receptive field of the plain CNN, so the block should not be needed.

Handwriting is split between train / val / test (60 / 20 / 20 % of the images), so validation
measures generalisation to new writers' digits, not memorised images. Everything is generated from
`seed` and the split name: the same arguments give the same clips, on any machine.

An earlier design ("are the two digits the same?", binary) did not train in a CPU minute: a ResNet-18
at width 8 stayed at chance after 20 epochs even with the evidence side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from nlstudy.registry import lookup

SPLITS = {"train": 0, "val": 1, "test": 2}
TASKS = ("far", "near")
DIGIT = 8  # side of a digit image, pixels
CUE = 4  # side of the cue square, pixels
NUM_CLASSES = 10


@dataclass
class SyntheticSpec:
    """Knobs of the embedded task (`data.synthetic.*`)."""

    task: Literal["far", "near"] = "far"  # far: cue in a later frame, away from the digits; near: cue beside them
    distance: int = 3  # far: minimum distance (pixels, Chebyshev, between boxes) of the cue from the digits
    distractors: int = 1  # blue distractor digits per clip, in random frames and places
    noise: float = 0.1  # std of the Gaussian noise added to every pixel (digits lie in [0, 1])
    train_samples: int = 2048
    val_samples: int = 512
    test_samples: int = 512
    seed: int = 0  # data seed: the same clips for every run of a study, whatever seed_everything is


def digit_pools(seed: int) -> dict[str, list[np.ndarray]]:
    """Per split, per class, the (n, 8, 8) float images in [0, 1]; disjoint images between splits."""
    from sklearn.datasets import load_digits  # the images ship inside scikit-learn: no download

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(images))
    bounds = {"train": (0.0, 0.6), "val": (0.6, 0.8), "test": (0.8, 1.0)}
    pools = {}
    for split, (lo, hi) in bounds.items():
        chosen = order[int(lo * len(order)) : int(hi * len(order))]
        pools[split] = [images[chosen][digits.target[chosen] == c] for c in range(NUM_CLASSES)]
    return pools


def _gap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    """Chebyshev gap between two boxes (y, x, height, width); 0 when they touch or overlap."""
    dy = max(b[0] - (a[0] + a[2]), a[0] - (b[0] + b[2]), 0)
    dx = max(b[1] - (a[1] + a[3]), a[1] - (b[1] + b[3]), 0)
    return max(dy, dx)


def make_clips(spec: SyntheticSpec, split: str, frames: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3, T, S, S) float32 clips and (n,) int64 labels of `split`; deterministic in (spec, split)."""
    split_id = lookup(SPLITS, split, "split")
    lookup(dict.fromkeys(TASKS), spec.task, "data.synthetic.task")
    n = {"train": spec.train_samples, "val": spec.val_samples, "test": spec.test_samples}[split]
    if size < 2 * DIGIT:
        raise ValueError(f"data.size={size}: the embedded task needs frames of at least {2 * DIGIT} pixels")
    if spec.task == "far" and frames < 2:
        raise ValueError(f"data.frames={frames}: task 'far' puts the cue in a later frame; use 2 or more")
    if spec.task == "far" and spec.distance > size - CUE - DIGIT:
        raise ValueError(f"data.synthetic.distance={spec.distance} does not fit {size}x{size} frames "
                         f"(at most {size - CUE - DIGIT})")
    pool = digit_pools(spec.seed)[split]
    rng = np.random.default_rng([spec.seed, split_id, TASKS.index(spec.task)])
    clips = np.zeros((n, 3, frames, size, size), dtype=np.float32)
    labels = np.zeros(n, dtype=np.int64)

    def draw(cls: int) -> np.ndarray:
        return pool[cls][rng.integers(len(pool[cls]))]

    def place_cue(pair: tuple[int, int, int, int], min_gap: int) -> tuple[int, int] | None:
        spots = [(y, x) for y in range(size - CUE + 1) for x in range(size - CUE + 1)
                 if _gap(pair, (y, x, CUE, CUE)) >= min_gap]
        return spots[rng.integers(len(spots))] if spots else None

    for i in range(n):
        red, green = rng.choice(NUM_CLASSES, size=2, replace=False)
        cue = int(rng.integers(2))  # 0: red cue -> the red digit; 1: green -> the green one
        labels[i] = (red, green)[cue]
        # the digit pair: 16x8 side by side or 8x16 stacked, somewhere the cue can keep its distance
        cue_spot = None
        while cue_spot is None:
            vertical = bool(rng.integers(2))
            h, w = (2 * DIGIT, DIGIT) if vertical else (DIGIT, 2 * DIGIT)
            y, x = int(rng.integers(size - h + 1)), int(rng.integers(size - w + 1))
            cue_spot = place_cue((y, x, h, w), spec.distance if spec.task == "far" else 0)
        (ry, rx), (gy, gx) = ((y, x), (y + DIGIT, x)) if vertical else ((y, x), (y, x + DIGIT))
        if rng.integers(2):
            (ry, rx), (gy, gx) = (gy, gx), (ry, rx)
        cy, cx = cue_spot
        if spec.task == "far":
            t_digits, t_cue = int(rng.integers(0, frames // 2)), int(rng.integers(frames // 2, frames))
        else:
            t_digits = t_cue = int(rng.integers(frames))
        clips[i, 0, t_digits, ry : ry + DIGIT, rx : rx + DIGIT] = draw(red)
        clips[i, 1, t_digits, gy : gy + DIGIT, gx : gx + DIGIT] = draw(green)
        clips[i, cue, t_cue, cy : cy + CUE, cx : cx + CUE] = 1.0
        for _ in range(spec.distractors):
            t, dy, dx = int(rng.integers(frames)), int(rng.integers(size - DIGIT + 1)), int(rng.integers(size - DIGIT + 1))
            patch = clips[i, 2, t, dy : dy + DIGIT, dx : dx + DIGIT]
            np.maximum(patch, draw(int(rng.integers(NUM_CLASSES))), out=patch)
    if spec.noise > 0:
        clips += rng.normal(0.0, spec.noise, clips.shape).astype(np.float32)
    return clips, labels
