"""What the non-local blocks of a network attend to, and how much that depends on the query.

    attention_maps(model, clips)    one forward pass, forward hooks on every NonLocalBlock: per block its
                                    (B, N_query, N_key) weights, its input and output features and grids
    query_index / query_map / top_positions / grid_to_input_box / grid_to_input_map
                                    one query's map, its strongest keys, and where a feature-grid
                                    position sits in the input clip (the paper's Fig. 3)
    query_dependence(att)           GCNet's measure (Cao et al. 2019, sec. 3.2): the mean cosine distance
                                    between the rows of distinct query positions; 0 when every query
                                    sees the same map

Grids are the spatial shape of a block's input, (T, H, W) in a video backbone; positions on them are
flattened in C order (t, h, w), as `NonLocalBlock.attention` flattens them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from nlstudy.blocks import NonLocalBlock
from nlstudy.blocks.context import GlobalContextBlock

Grid = tuple[int, ...]


@dataclass(frozen=True, eq=False)
class BlockAttention:
    """One block's attention on one batch of clips, as captured by `attention_maps`.

    name:        the block's name in `model.named_modules()` ("res4.nonlocal4")
    query_grid:  (T, H, W) of the block's input: the positions that ask
    key_grid:    (T', H', W') of the (subsampled) positions it attends to
    weights:     (B, N_query, N_key) normalised weights f(x_i, x_j) / C(x); in space / time mode the
                 pairs a query may not attend to hold zeros
    inputs:      (B, N_query, C) the block's input features, one row per position
    outputs:     (B, N_query, C) the block's output features (input + the block's residual)
    kind:        "nonlocal", or "global_context" for a GlobalContextBlock (include_context=True), whose
                 one shared (B, N) map is expanded to every query: weights[b, i] is the same row for all i
    """

    name: str
    query_grid: Grid
    key_grid: Grid
    weights: torch.Tensor
    inputs: torch.Tensor
    outputs: torch.Tensor
    kind: str = "nonlocal"


def _positions_last(t: torch.Tensor) -> torch.Tensor:
    """(B, C, *S) -> (B, N, C): a contiguous copy, so later in-place ops of the network cannot change it."""
    return t.flatten(2).transpose(1, 2).clone(memory_format=torch.contiguous_format)  # (B, N, C)


def _capture(name: str, block: nn.Module, x: torch.Tensor, output: torch.Tensor) -> BlockAttention:
    """The record of one call of `block` on input x (B, C, *S) that returned `output` (B, C, *S)."""
    query_grid = tuple(x.shape[2:])
    if isinstance(block, NonLocalBlock):
        _, keys, _ = block.project(x)  # keys (B, d, *S'): S' is the subsampled grid
        key_grid, kind = tuple(keys.shape[2:]), "nonlocal"
        weights = block.attention(x)  # (B, N, N')
    else:  # GlobalContextBlock: one map over every position, shared by all queries
        shared = block.attention(x)  # (B, N)
        key_grid, kind = query_grid, "global_context"
        weights = shared.unsqueeze(1).expand(-1, shared.shape[1], -1)  # (B, N, N): a view, no copy
    return BlockAttention(name, query_grid, key_grid, weights, _positions_last(x), _positions_last(output), kind)


def attention_maps(model: nn.Module, clips: torch.Tensor, *, include_context: bool = False) -> list[BlockAttention]:
    """Run `model(clips)` once under no_grad and return one `BlockAttention` per non-local block call,
    in forward order (a block called twice gives two records; a block never called, none).

    The model is used as it is: put it in eval mode first (in train mode BatchNorm normalises with
    the batch statistics and updates its running ones; a warning says so). With include_context=True,
    `GlobalContextBlock`s are recorded too (kind "global_context"), their one map expanded to (B, N, N).
    The hooks are removed even when the forward pass raises. Records hold tensors on the model's device.
    """
    if model.training:
        warnings.warn("attention_maps on a model in train mode: BatchNorm uses batch statistics and updates "
                      "its running ones; call model.eval() first", stacklevel=2)
    kinds = (NonLocalBlock, GlobalContextBlock) if include_context else (NonLocalBlock,)
    records: list[BlockAttention] = []

    def hook_for(name: str):
        def hook(block: nn.Module, args: tuple, output: torch.Tensor) -> None:
            records.append(_capture(name, block, args[0], output))  # computed now, before any later in-place op
        return hook

    handles = [m.register_forward_hook(hook_for(name)) for name, m in model.named_modules() if isinstance(m, kinds)]
    try:
        with torch.no_grad():
            model(clips)
    finally:
        for handle in handles:
            handle.remove()
    return records


# --- one query, on the feature grid and on the input (the paper's Fig. 3) ---


def query_index(grid: Sequence[int], position: Sequence[int]) -> int:
    """The flat (C-order) index of `position` (t, h, w) on `grid` (T, H, W): a row of `weights`."""
    if len(position) != len(grid) or any(not 0 <= p < g for p, g in zip(position, grid)):
        raise ValueError(f"position {tuple(position)} is not on the grid {tuple(grid)}")
    index = 0
    for p, g in zip(position, grid):
        index = index * g + p
    return index


def query_map(record: BlockAttention, b: int, position: Sequence[int]) -> torch.Tensor:
    """The weights of the query at `position` (t, h, w) of clip b, as a (T', H', W') map over the keys."""
    row = record.weights[b, query_index(record.query_grid, position)]  # (N_key,)
    return row.reshape(record.key_grid)  # (T', H', W')


def top_positions(
    record: BlockAttention, b: int, position: Sequence[int], k: int
) -> list[tuple[tuple[int, ...], float]]:
    """The k keys the query at `position` of clip b weighs most: [((t', h', w'), weight), ...], descending.

    Positions are on `record.key_grid`; `grid_to_input_box(p, record.key_grid, clip_shape)` places them
    in the input clip.
    """
    row = record.weights[b, query_index(record.query_grid, position)]  # (N_key,)
    if not 1 <= k <= row.numel():
        raise ValueError(f"k must be between 1 and the {row.numel()} key positions, got {k}")
    values, indices = row.topk(k)
    coords = torch.unravel_index(indices, record.key_grid)  # one (k,) tensor per grid axis
    return [(tuple(int(c[i]) for c in coords), float(values[i])) for i in range(k)]


def grid_to_input_box(
    position: Sequence[int], grid: Sequence[int], clip_shape: Sequence[int]
) -> tuple[tuple[int, int], ...]:
    """The input cells a feature-grid position stands for: ((t0, t1), (y0, y1), (x0, x1)), half-open.

    `clip_shape` is (T, H, W) or the clip's full (B, 3, T, H, W) shape (its last len(grid) sizes are
    used). Each axis of the input is split evenly between the grid's cells, cell i covering
    [floor(i * S / G), floor((i + 1) * S / G)): the position's footprint under the network's strides,
    not its receptive field (see `nlstudy.analysis.receptive_field` for that). For a rectangle on frame
    t0 in matplotlib: Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0).
    """
    sizes = tuple(clip_shape)[-len(grid):]
    if len(position) != len(grid) or len(sizes) != len(grid):
        raise ValueError(f"position {tuple(position)}, grid {tuple(grid)} and clip shape {tuple(clip_shape)} "
                         "must have the same number of axes")
    query_index(grid, position)  # checks the position is on the grid
    return tuple((p * s // g, (p + 1) * s // g) for p, g, s in zip(position, grid, sizes))


def grid_to_input_map(values: torch.Tensor, clip_shape: Sequence[int]) -> torch.Tensor:
    """A (T', H', W') map on a feature grid spread over the input: a (T, H, W) tensor in which every input
    cell holds the value of the grid position whose `grid_to_input_box` contains it (for overlays:
    `plt.imshow(frame); plt.imshow(grid_to_input_map(query_map(...), clip.shape)[t], alpha=0.5)`)."""
    grid = tuple(values.shape)
    sizes = tuple(clip_shape)[-len(grid):]
    out = values
    for axis, (g, s) in enumerate(zip(grid, sizes)):
        starts = torch.arange(g, device=values.device) * s // g  # first input cell of each grid cell
        cells = torch.arange(s, device=values.device)
        owner = torch.searchsorted(starts, cells, right=True) - 1  # (S,): the grid cell holding each input cell
        out = out.index_select(axis, owner)
    return out  # (T, H, W)


# --- query dependence (GCNet) ---


@dataclass(frozen=True)
class QueryDependence:
    """GCNet's query dependence of one (B, N, K) tensor; float(result) is `value`.

    value:       mean over the clips of the mean cosine distance between distinct query rows (in [0, 2];
                 0: every query has the same map; 1: the rows are orthogonal, e.g. one-hot on distinct
                 keys); nan when no clip has two rows with a direction
    n_positions: N, the query rows per clip
    n_queries:   the rows used per clip: N, or max_queries when they were sampled
    sampled:     True when n_queries < n_positions (the same random rows of every clip, from `seed`)
    skipped:     rows that were all zero (no direction) and left out, summed over the clips
    """

    value: float
    n_positions: int
    n_queries: int
    sampled: bool
    skipped: int

    def __float__(self) -> float:
        return self.value


def _wide(t: torch.Tensor) -> torch.Tensor:
    """float64 for the sums, where the device has it (MPS has not)."""
    return t.to(torch.float32 if t.device.type == "mps" else torch.float64)


def query_dependence(att: torch.Tensor, *, max_queries: int | None = None, seed: int = 0) -> QueryDependence:
    """GCNet's query dependence (Cao et al. 2019, sec. 3.2) of `att` (B, N_query, N_key): per clip, the
    mean over ordered pairs of distinct query rows i != j of the cosine distance 1 - cos(a_i, a_j),
    then the mean over the clips. The same maths on (B, N, C) features gives GCNet's "input" and
    "output" measures (`BlockAttention.inputs` / `.outputs`).

    With unit rows u_i, sum_{i != j} <u_i, u_j> = |sum_i u_i|^2 - sum_i |u_i|^2, so the mean is computed
    from one sum over the rows, never the N x N x N_key tensor nor the N x N Gram matrix.
    `max_queries` uses that many query rows drawn at random (`seed`) when N is larger; the result says
    so (`sampled`, `n_queries`). Rows that are all zero (dot product / concatenation weights can be)
    have no direction: they are left out and counted in `skipped`; a clip with fewer than two rows left
    is left out of the mean.
    """
    if att.dim() != 3:
        raise ValueError(f"query_dependence expects a (B, N, K) tensor, got shape {tuple(att.shape)}")
    if max_queries is not None and max_queries < 2:
        raise ValueError(f"max_queries must be at least 2, got {max_queries}")
    att = att.detach()
    n_positions = att.shape[1]
    rows = torch.arange(n_positions, device=att.device)
    if max_queries is not None and max_queries < n_positions:
        generator = torch.Generator().manual_seed(seed)
        rows = torch.randperm(n_positions, generator=generator)[:max_queries].to(att.device)
    per_clip, skipped = [], 0
    for clip in att:  # one (N, K) clip at a time: only one float64 copy is alive
        x = _wide(clip.index_select(0, rows))  # (n, K)
        norms = x.norm(dim=1)  # (n,)
        keep = norms > 0
        skipped += int((~keep).sum())
        u = x[keep] / norms[keep, None]  # (n', K): unit rows
        n = u.shape[0]
        if n < 2:
            continue
        total = u.sum(0)  # (K,)
        off_diagonal = total.dot(total) - (u * u).sum()  # sum_{i != j} <u_i, u_j>
        per_clip.append(1.0 - float(off_diagonal) / (n * (n - 1)))
    value = sum(per_clip) / len(per_clip) if per_clip else math.nan
    return QueryDependence(value, n_positions, len(rows), len(rows) < n_positions, skipped)
