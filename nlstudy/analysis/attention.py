"""What the non-local blocks of a network attend to, and how much that depends on the query.

    attention_maps(model, clips)    one forward pass, forward hooks on every NonLocalBlock: per block its
                                    (B, N_query, N_key) weights, its input and output features and grids
    query_index / query_map / top_positions / grid_to_input_box / grid_to_input_map
                                    one query's map, its strongest keys, and where a feature-grid
                                    position sits in the input clip (the paper's Fig. 3)
    query_dependence(att)           GCNet's measure (Cao et al. 2019, sec. 3.2): the mean cosine distance
                                    between the rows of distinct query positions; 0 when every query
                                    sees the same map; `queries=` restricts it to some queries per clip
    shuffled_query_dependence(att)  its expected value when each query's own weights are assigned to its
                                    keys in random order: the same entropy per query, nothing in where it
                                    looks that depends on the query (the null a measured value is read against)
    evidence_queries(mask, grid)    which grid positions sit on the evidence (a per-pixel input mask)
    evidence_share(att, keys)       the share of each query's weight on given keys (the evidence)
    allowed_keys(record)            which keys each query of a space- or time-mode block may attend to

Each record also holds the block's context term before its fusion with the input (`context`): a non-local
block's BN(W_z y), a global-context block's transform of its pooled context, the same at every position. GCNet
measures the query dependence of that term, not of the block's output x + W_z y (which mostly repeats x).

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
from nlstudy.models.stage_keys import saved_name

Grid = tuple[int, ...]


@dataclass(frozen=True, eq=False)
class BlockAttention:
    """One block's attention on one batch of clips, as captured by `attention_maps`.

    name:        the block's name in `model.named_modules()`, as its state dict names it ("res4.nonlocal4": stage_keys)
    query_grid:  (T, H, W) of the block's input: the positions that ask
    key_grid:    (T', H', W') of the (subsampled) positions it attends to
    weights:     (B, N_query, N_key) normalised weights f(x_i, x_j) / C(x); in space / time mode the
                 pairs a query may not attend to hold zeros
    inputs:      (B, N_query, C) the block's input features, one row per position
    outputs:     (B, N_query, C) the block's output features (input + the block's residual)
    kind:        "nonlocal", or "global_context" for a GlobalContextBlock (include_context=True), whose
                 one shared (B, N) map is expanded to every query: weights[b, i] is the same row for all i
    context:     (B, N_query, C) the context term before the fusion, outputs = inputs + context: a non-local
                 block's BN(W_z y_i) (the output of its out_norm), a global-context block's transform of its
                 pooled context (one vector, expanded to every position: a view, no copy)
    mode:        the block's mode ("spacetime", "space", "time"; a global-context block: "spacetime")
    """

    name: str
    query_grid: Grid
    key_grid: Grid
    weights: torch.Tensor
    inputs: torch.Tensor
    outputs: torch.Tensor
    kind: str = "nonlocal"
    context: torch.Tensor | None = None
    mode: str = "spacetime"


def _positions_last(t: torch.Tensor) -> torch.Tensor:
    """(B, C, *S) -> (B, N, C): a contiguous copy, so later in-place ops of the network cannot change it."""
    return t.flatten(2).transpose(1, 2).clone(memory_format=torch.contiguous_format)  # (B, N, C)


# the submodule whose output is a block's context term before the fusion x + context: the one place that reads
# the blocks' inner structure (tests/test_analysis_attention.py checks inputs + context == outputs for each kind,
# so a renamed or fused layer fails there, loudly)
CONTEXT_MODULE = {NonLocalBlock: "out_norm", GlobalContextBlock: "transform"}


def _context(block: nn.Module, term: torch.Tensor, n_positions: int) -> torch.Tensor:
    """The captured context term as (B, N, C): per position for a non-local block, expanded for a GC block."""
    if isinstance(block, NonLocalBlock):
        return _positions_last(term)  # (B, C, *S) -> (B, N, C)
    return term.flatten(1).unsqueeze(1).expand(-1, n_positions, -1)  # (B, C, 1, ...) -> (B, N, C), a view


def _capture(name: str, block: nn.Module, x: torch.Tensor, output: torch.Tensor,
             term: torch.Tensor | None = None) -> BlockAttention:
    """The record of one call of `block` on input x (B, C, *S) that returned `output` (B, C, *S), with the
    context term `term` its CONTEXT_MODULE returned during that call."""
    query_grid = tuple(x.shape[2:])
    if isinstance(block, NonLocalBlock):
        _, keys, _ = block.project(x)  # keys (B, d, *S'): S' is the subsampled grid
        key_grid, kind, mode = tuple(keys.shape[2:]), "nonlocal", block.mode
        weights = block.attention(x)  # (B, N, N')
    else:  # GlobalContextBlock: one map over every position, shared by all queries
        shared = block.attention(x)  # (B, N)
        key_grid, kind, mode = query_grid, "global_context", "spacetime"
        weights = shared.unsqueeze(1).expand(-1, shared.shape[1], -1)  # (B, N, N): a view, no copy
    context = None if term is None else _context(block, term, weights.shape[1])
    return BlockAttention(name, query_grid, key_grid, weights, _positions_last(x), _positions_last(output), kind,
                          context, mode)


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
    terms: dict[str, torch.Tensor] = {}  # block name -> its context term of the call in progress

    def hook_for(name: str):
        def hook(block: nn.Module, args: tuple, output: torch.Tensor) -> None:
            # computed now, before any later in-place op
            records.append(_capture(name, block, args[0], output, terms.pop(name, None)))
        return hook

    def term_hook_for(name: str):
        def hook(_module: nn.Module, _args: tuple, output: torch.Tensor) -> None:
            terms[name] = output.clone(memory_format=torch.contiguous_format)
        return hook

    blocks = [(saved_name(name), m) for name, m in model.named_modules() if isinstance(m, kinds)]
    handles = [m.register_forward_hook(hook_for(name)) for name, m in blocks]
    handles += [m.get_submodule(CONTEXT_MODULE[type(m)]).register_forward_hook(term_hook_for(name))
                for name, m in blocks if type(m) in CONTEXT_MODULE]
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


def _query_rows(att: torch.Tensor, max_queries: int | None, seed: int, queries: torch.Tensor | None):
    """The query rows each clip contributes: (rows, per-clip masks or None), checked."""
    if att.dim() != 3:
        raise ValueError(f"query dependence expects a (B, N, K) tensor, got shape {tuple(att.shape)}")
    if max_queries is not None and max_queries < 2:
        raise ValueError(f"max_queries must be at least 2, got {max_queries}")
    if queries is not None and (queries.shape != att.shape[:2] or queries.dtype != torch.bool):
        raise ValueError(f"queries must be a (B, N) = {tuple(att.shape[:2])} bool mask, got "
                         f"{tuple(queries.shape)} {queries.dtype}")
    n_positions = att.shape[1]
    rows = torch.arange(n_positions, device=att.device)
    if max_queries is not None and max_queries < n_positions:
        generator = torch.Generator().manual_seed(seed)
        rows = torch.randperm(n_positions, generator=generator)[:max_queries].to(att.device)
    return rows


def _mean_distance(vectors: list[torch.Tensor]) -> tuple[float, list[int]]:
    """The mean over clips of 1 - mean_{i != j} <v_i, v_j> for each clip's (n, K) rows v (unit rows for the
    cosine distance); a clip with fewer than two rows is left out. Returns (value, rows used per clip)."""
    per_clip, used = [], []
    for v in vectors:
        n = v.shape[0]
        used.append(n)
        if n < 2:
            continue
        total = v.sum(0)  # (K,)
        off_diagonal = total.dot(total) - (v * v).sum()  # sum_{i != j} <v_i, v_j>: no N x N Gram matrix
        per_clip.append(1.0 - float(off_diagonal) / (n * (n - 1)))
    return (sum(per_clip) / len(per_clip) if per_clip else math.nan), used


def _clip_rows(att: torch.Tensor, rows: torch.Tensor, queries: torch.Tensor | None):
    """Per clip: its (n, K) selected rows in float64 with their norms, the all-zero ones dropped; and how
    many were dropped in all."""
    out, skipped = [], 0
    for b, clip in enumerate(att):  # one (N, K) clip at a time: only one float64 copy is alive
        chosen = rows if queries is None else rows[queries[b].index_select(0, rows)]
        x = _wide(clip.index_select(0, chosen))  # (n, K)
        norms = x.norm(dim=1)  # (n,)
        keep = norms > 0
        skipped += int((~keep).sum())
        out.append((b, chosen[keep], x[keep], norms[keep]))
    return out, skipped


def query_dependence(att: torch.Tensor, *, max_queries: int | None = None, seed: int = 0,
                     queries: torch.Tensor | None = None) -> QueryDependence:
    """GCNet's query dependence (Cao et al. 2019, sec. 3.2) of `att` (B, N_query, N_key): per clip, the
    mean over ordered pairs of distinct query rows i != j of the cosine distance 1 - cos(a_i, a_j),
    then the mean over the clips. The same maths on (B, N, C) features gives GCNet's "input" and
    "output" measures (`BlockAttention.inputs`, and `.context`: the block's term before the fusion).

    With unit rows u_i, sum_{i != j} <u_i, u_j> = |sum_i u_i|^2 - sum_i |u_i|^2, so the mean is computed
    from one sum over the rows, never the N x N x N_key tensor nor the N x N Gram matrix.
    `max_queries` uses that many query rows drawn at random (`seed`) when N is larger; the result says
    so (`sampled`, `n_queries`). `queries` (B, N) bool keeps, per clip, only the rows it marks (queries on
    the evidence, or on the background: `evidence_queries`). Rows that are all zero (dot product /
    concatenation weights can be) have no direction: they are left out and counted in `skipped`; a clip with
    fewer than two rows left is left out of the mean.
    """
    rows = _query_rows(att, max_queries, seed, queries)
    clips, skipped = _clip_rows(att.detach(), rows, queries)
    value, _ = _mean_distance([x / norms[:, None] for _, _, x, norms in clips])
    return QueryDependence(value, att.shape[1], len(rows), len(rows) < att.shape[1], skipped)


def shuffled_query_dependence(att: torch.Tensor, *, max_queries: int | None = None, seed: int = 0,
                              queries: torch.Tensor | None = None,
                              allowed: torch.Tensor | None = None) -> QueryDependence:
    """The expected `query_dependence` of `att` under the null that each query's weights are assigned to its
    keys in a random order, independently across queries: every query keeps its own weights (so its map's
    entropy, and its norm), but where it puts them carries nothing about the query.

    Read a measured value against this one: a near-uniform map scores near zero whatever it depends on, and so
    does its null; maps built to be identical score 0 against a positive null; maps whose arrangement is
    independent across queries score the null. Exact, not sampled: a permuted row's expectation is its mean
    weight on every key it may attend to, E[a_pi] = (sum a / |A|) 1_A, and rows are permuted independently,
    so E[cos] between two rows is <E[a_pi], E[b_sigma]> / (|a| |b|). `allowed` (N, K) bool marks the keys each
    query may attend to (`allowed_keys`: a space- or time-mode block's own frame or pixel; default every key);
    `max_queries`, `seed` and `queries` select rows as in `query_dependence`.
    """
    rows = _query_rows(att, max_queries, seed, queries)
    if allowed is not None and allowed.shape != att.shape[1:]:
        raise ValueError(f"allowed must be an (N, K) = {tuple(att.shape[1:])} bool mask, got {tuple(allowed.shape)}")
    clips, skipped = _clip_rows(att.detach(), rows, queries)
    expected = []
    for _, chosen, x, norms in clips:
        if allowed is None:
            support = torch.ones_like(x, dtype=torch.bool)
        else:
            support = allowed.to(x.device).index_select(0, chosen)  # (n, K)
        spread = x.sum(1) / support.sum(1)  # (n,): each row's mean weight over its keys
        expected.append(support * (spread / norms)[:, None])  # (n, K): E[a_pi] / |a|
    value, _ = _mean_distance(expected)
    return QueryDependence(value, att.shape[1], len(rows), len(rows) < att.shape[1], skipped)


def allowed_keys(record: BlockAttention) -> torch.Tensor:
    """(N_query, N_key) bool: the keys each query of `record`'s block may attend to. Every key in spacetime
    mode (and for a global-context block); the keys of its own frame in space mode (which never pools
    across frames); the keys of its own pixel in time mode (which never pools across pixels)."""
    (t, h, w), (tk, hk, wk) = record.query_grid, record.key_grid
    if record.mode == "spacetime":
        return torch.ones(t * h * w, tk * hk * wk, dtype=torch.bool)
    qt, qh, qw = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    kt, kh, kw = torch.meshgrid(torch.arange(tk), torch.arange(hk), torch.arange(wk), indexing="ij")
    if record.mode == "space":  # the same frame: t' = t (space mode keeps every frame)
        return qt.reshape(-1, 1) == kt.reshape(1, -1)
    # time: the same pixel, any frame (time mode keeps every pixel; its frames may be pooled)
    return (qh.reshape(-1, 1) == kh.reshape(1, -1)) & (qw.reshape(-1, 1) == kw.reshape(1, -1))


# --- queries on the evidence, and where they look ---


def evidence_queries(mask: torch.Tensor, grid: Sequence[int]) -> torch.Tensor:
    """(B, N) bool: the positions of `grid` (T', H', W') whose input footprint (`grid_to_input_box`) holds any
    pixel of the (B, T, H, W) input `mask` (the evidence: `nlstudy.data.synthetic.evidence_mask`). Its
    complement is the background queries. Also serves keys: pass a block's key grid."""
    mask = torch.as_tensor(mask)
    if mask.dim() != len(grid) + 1:
        raise ValueError(f"mask must be (B, {', '.join('THW'[-len(grid):])}) for a {len(grid)}-d grid, "
                         f"got shape {tuple(mask.shape)}")
    out = mask.to(torch.float32)
    for axis, (g, size) in enumerate(zip(grid, mask.shape[1:]), start=1):
        starts = torch.arange(g) * size // g  # the first input cell of each grid cell's footprint
        owner = torch.searchsorted(starts, torch.arange(size), right=True) - 1  # the grid cell holding each input cell
        shape = list(out.shape)
        shape[axis] = g
        out = torch.zeros(shape).index_add_(axis, owner, out)  # how many evidence pixels each cell holds
    return (out > 0).flatten(1)  # (B, N)


def evidence_share(att: torch.Tensor, keys: torch.Tensor, queries: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) the mean over each clip's selected queries (`queries` (B, N) bool; default all) of the share of the
    query's absolute weight on the keys `keys` (B, N_key) bool marks; nan for a clip with no query selected
    (or whose selected rows are all zero). Compare queries on the evidence with queries on the background
    (the null for "it looks at the evidence because it asks from the evidence"), and with the share of keys
    marked (a uniform map's share)."""
    if att.dim() != 3 or keys.shape != (att.shape[0], att.shape[2]):
        raise ValueError(f"att must be (B, N, K) and keys (B, K) bool; got {tuple(att.shape)} and {tuple(keys.shape)}")
    weights = _wide(att.detach()).abs()  # (B, N, K)
    total = weights.sum(2)  # (B, N)
    on = (weights * keys[:, None, :].to(weights.dtype)).sum(2)  # (B, N)
    selected = total > 0
    if queries is not None:
        selected = selected & queries
    share = torch.where(selected, on / total.clamp_min(torch.finfo(total.dtype).tiny), torch.zeros_like(on))
    count = selected.sum(1)
    return torch.where(count > 0, share.sum(1) / count.clamp_min(1), torch.full_like(count, math.nan, dtype=share.dtype))
