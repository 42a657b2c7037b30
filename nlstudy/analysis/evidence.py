"""Where the evidence sits in a clip of the embedded task (nlstudy.data.synthetic), and where the non-local blocks
look relative to it: the coloured patches found from a clip's pixels, their cells on a block's feature grid, the
paper's Fig. 3 query positions, and the share of attention one patch's query puts on the other patch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from nlstudy.analysis.attention import attention_maps, grid_to_input_box, query_map

SATURATION = 0.5  # a coloured patch pixel: max - min over RGB above this (grey digits and noise stay far below)


def patch_boxes(clip: torch.Tensor | np.ndarray, patch: int = 4) -> list[tuple[int, int, int, int, int]]:
    """The coloured `patch` x `patch` squares of one embedded-task clip (3, T, H, W), found from its pixels:
    a list of (t, y0, y1, x0, x1) half-open boxes in (t, y, x) order. Saturated pixels are grouped by
    colour (the RGB corner they are nearest to); a square is a corner where a whole patch of one colour
    fits (one pixel may miss, for the noise), taken in (y, x) order without overlapping an earlier one,
    so two patches of one colour that touch, even offset, come out as two boxes."""
    clip = np.asarray(clip)
    saturated = (clip.max(0) - clip.min(0)) > SATURATION  # (T, H, W)
    colour = (clip > 0.5).astype(int)  # (3, T, H, W): the nearest RGB corner
    code = colour[0] * 4 + colour[1] * 2 + colour[2]  # (T, H, W)
    boxes = []
    for t in range(clip.shape[1]):
        for c in np.unique(code[t][saturated[t]]):
            mask = (saturated[t] & (code[t] == c)).astype(float)  # (H, W)
            # (H-p+1, W-p+1): pixels of this colour in the patch-sized square whose top-left corner is (y, x)
            filled = np.lib.stride_tricks.sliding_window_view(mask, (patch, patch)).sum(axis=(-2, -1))
            taken = np.zeros_like(mask, dtype=bool)
            for y, x in zip(*np.nonzero(filled >= patch * patch - 1)):
                if not taken[y:y + patch, x:x + patch].any():
                    taken[y:y + patch, x:x + patch] = True
                    boxes.append((t, int(y), int(y) + patch, int(x), int(x) + patch))
    return sorted(boxes)


def patch_centre(box: Sequence[int]) -> tuple[int, int, int]:
    """The input position (t, y, x) at the centre of a (t, y0, y1, x0, x1) box (the upper-left of the
    four middle pixels of an even-sized patch)."""
    t, y0, y1, x0, x1 = box
    return t, (y0 + y1 - 1) // 2, (x0 + x1 - 1) // 2


def input_to_grid(position: Sequence[int], clip_shape: Sequence[int], grid: Sequence[int]) -> tuple[int, ...]:
    """The feature-grid cell (t', h', w') of `grid` that covers input position (t, y, x) of a (T, H, W) clip."""
    # the cell whose grid_to_input_box footprint [floor(i*S/G), floor((i+1)*S/G)) holds p
    return tuple(min(g - 1, ((p + 1) * g - 1) // s) for p, s, g in zip(position, clip_shape[-3:], grid))


def fig3_queries(clip: torch.Tensor, grid: Sequence[int], patch: int = 4) -> dict[str, tuple[int, ...]]:
    """Query positions on `grid` for the paper's Fig. 3 on one embedded-task clip (3, T, H, W): the centre
    of each coloured patch ("patch A", "patch B", in (t, y, x) order) and the background cell of patch A's
    frame farthest from both patches ("background")."""
    shape = tuple(clip.shape[-3:])
    boxes = patch_boxes(clip, patch)
    queries = {}
    for name, box in zip(("patch A", "patch B"), boxes):
        queries[name] = input_to_grid(patch_centre(box), shape, grid)
    if boxes:
        t = boxes[0][0]
        t_g = input_to_grid((t, 0, 0), shape, grid)[0]
        centres = [input_to_grid((b[0], (b[1] + b[2]) // 2, (b[3] + b[4]) // 2), shape, grid)[1:] for b in boxes]
        cells = [(h, w) for h in range(grid[1]) for w in range(grid[2])]
        far = max(cells, key=lambda c: (min(max(abs(c[0] - h), abs(c[1] - w)) for h, w in centres), -c[0], -c[1]))
        queries["background"] = (t_g, *far)
    return queries


def cells_covering(box: Sequence[int], grid: Sequence[int], clip_shape: Sequence[int]) -> torch.Tensor:
    """(T', H', W') bool mask of the cells of `grid` whose input footprint overlaps the box (t, y0, y1, x0, x1)."""
    t, y0, y1, x0, x1 = box
    mask = torch.zeros(tuple(grid), dtype=torch.bool)
    for position in np.ndindex(*grid):
        (ta, tb), (ya, yb), (xa, xb) = grid_to_input_box(position, grid, clip_shape)
        mask[position] = ta <= t < tb and ya < y1 and y0 < yb and xa < x1 and x0 < xb
    return mask


def evidence_attention(model: nn.Module, clips: torch.Tensor, patch: int = 4) -> pd.DataFrame:
    """Where the non-local blocks look, measured: for every block and clip of the embedded task, the share of
    the absolute weight that the query at the centre of one patch puts on the key cells covering the
    other patch (`share`), beside the share a uniform map would put there (`uniform`). One row per
    (block, clip, direction "A->B" / "B->A"); clips whose two patches are not found are left out."""
    shape = tuple(clips.shape[-3:])
    boxes = [patch_boxes(clip, patch) for clip in clips]
    rows = []
    for record in attention_maps(model, clips):
        for b, found in enumerate(boxes):
            if len(found) != 2:
                continue
            for direction, (src, dst) in (("A->B", found), ("B->A", found[::-1])):
                query = input_to_grid(patch_centre(src), shape, record.query_grid)
                weights = query_map(record, b, query).abs()  # (T', H', W')
                target = cells_covering(dst, record.key_grid, shape)
                total = float(weights.sum())
                rows.append({"block": record.name, "clip": b, "direction": direction,
                             "share": float(weights[target].sum()) / total if total > 0 else float("nan"),
                             "uniform": float(target.sum()) / target.numel()})
    return pd.DataFrame(rows, columns=["block", "clip", "direction", "share", "uniform"])
