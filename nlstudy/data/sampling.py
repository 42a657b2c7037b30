"""Which frames a clip takes and which crops it cuts (train and eval); see nlstudy.data.video."""

from __future__ import annotations

import math

import numpy as np
import torch



# --- which frames, which crops ---------------------------------------------------------------------------


def clip_indices(n: int, frames: int, rate: int, start: int) -> np.ndarray:
    """Frame indices of a clip starting at `start`; beyond the video's end they loop back to 0."""
    return (start + rate * np.arange(frames)) % max(n, 1)


def resampled(indices: np.ndarray, fps: float, target_fps: float, n: int) -> np.ndarray:
    """Frame indices at `target_fps` -> the video's frames at `fps`: frame k (time k / target_fps) shows
    the video's frame floor(k * fps / target_fps), at most n - 1."""
    return np.minimum(np.floor(indices * (fps / target_fps) + 1e-6).astype(np.int64), max(n, 1) - 1)


def resampled_count(n: int, fps: float, target_fps: float) -> int:
    """Frames of a video of n frames at `fps` once resampled to `target_fps` (those before its end)."""
    return max(1, math.ceil(n * target_fps / fps - 1e-6))


def eval_starts(n: int, span: int, views: int) -> list[int]:
    """`views` starts, the centres of `views` equal parts of [0, n - span] (one view: the middle clip)."""
    delta = max(n - span, 0)
    return [int(delta * (2 * i + 1) // (2 * views)) for i in range(views)]


def scaled_size(width: int, height: int, short: int) -> tuple[int, int]:
    """(width, height) with the short side resized to `short`, aspect ratio kept."""
    if width <= height:
        return short, max(short, round(height * short / width))
    return max(short, round(width * short / height)), short


def eval_crops(frames: torch.Tensor, size: int, crops: int) -> list[torch.Tensor]:
    """(T, H, W, 3) -> `crops` (T, size, size, 3) crops: centre, or left/centre/right along the long side."""
    h, w = frames.shape[1:3]
    y, x = (h - size) // 2, (w - size) // 2
    if crops == 1:
        return [frames[:, y : y + size, x : x + size]]
    if w >= h:
        return [frames[:, y : y + size, x0 : x0 + size] for x0 in (0, x, w - size)]
    return [frames[:, y0 : y0 + size, x : x + size] for y0 in (0, y, h - size)]


def train_crop(frames: torch.Tensor, size: int, flip: bool) -> torch.Tensor:
    """(T, H, W, 3) -> a random (T, size, size, 3) crop, flipped left-right with probability 1/2."""
    h, w = frames.shape[1:3]
    y, x = (int(torch.randint(0, d - size + 1, ())) for d in (h, w))
    crop = frames[:, y : y + size, x : x + size]
    return crop.flip(2) if flip and torch.rand(()) < 0.5 else crop
