"""Explicit N x N formulations of the non-local block, transcribed from the paper's equations.

These build the full pairwise matrix over every position pair, masked to the pairs a mode allows
(same frame for space, same pixel for time), as the paper's Caffe2 code and the common PyTorch ports
do. They reuse a `NonLocalBlock`'s weights, so the tests can check every fast path of the block
against them and `benchmarks/nl_block.py` can time the two side by side. Not for training.
"""

from __future__ import annotations

import torch

from nlstudy.blocks.nonlocal_block import NonLocalBlock
from nlstudy.blocks.pairwise import FORMS


def _positions(shape: torch.Size) -> torch.Tensor:
    """(N, 3) (t, h, w) coordinates of a (B, C, T, H, W) grid flattened in C order."""
    t, h, w = shape[2:]
    grid = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([g.flatten() for g in grid], 1)


def allowed_pairs(block: NonLocalBlock, q_shape: torch.Size, k_shape: torch.Size) -> torch.Tensor | None:
    """(N, N') bool mask of the (query, key) pairs the block's mode attends to; None for all pairs."""
    if block.mode == "spacetime":
        return None
    qpos, kpos = _positions(q_shape), _positions(k_shape)
    if block.mode == "space":
        return qpos[:, None, 0] == kpos[None, :, 0]  # same frame
    return (qpos[:, None, 1:] == kpos[None, :, 1:]).all(-1)  # same pixel


def explicit_attention(block: NonLocalBlock, x: torch.Tensor, concat: str = "broadcast") -> torch.Tensor:
    """f(x_i, x_j) / C(x) as an explicit (B, N, N') matrix (zeros outside the pairs the mode allows), from the
    form's `scores` (nlstudy.blocks.pairwise): a softmax over the allowed keys, or f over their number.

    concat="repeat" forms the pairs the way the common ports do where the form has such a formulation (the
    concatenation: theta and phi repeated to (B, C', N, N') each, concatenated to (B, 2C', N, N') and projected
    by w_f); concat="broadcast" takes the form's own (for the concatenation: the two projected halves added).
    """
    if concat not in ("repeat", "broadcast"):
        raise ValueError(f"concat={concat!r}: valid choices: 'repeat', 'broadcast'")
    form = FORMS[block.pairwise]
    q_grid, k_grid, _ = block.project(x)
    q = q_grid.flatten(2).transpose(1, 2)  # (B, N, d)
    k = k_grid.flatten(2).transpose(1, 2)  # (B, N', d)
    mask = allowed_pairs(block, q_grid.shape, k_grid.shape) if block.dim == 3 else None
    if mask is not None:
        mask = mask.to(x.device)
    scores = form.ports_scores if concat == "repeat" and form.ports_scores else form.scores
    f = scores(block, q, k)  # (B, N, N'): the logits of a softmax form, else f

    if form.softmax:
        if mask is not None:
            f = f.masked_fill(~mask, float("-inf"))
        return torch.softmax(f, dim=-1)  # C(x) = sum_j f
    if mask is None:
        return f / k.shape[1]  # C(x) = N
    return f * mask / mask.sum(1, keepdim=True)  # N = positions this query attends to


def explicit_forward(block: NonLocalBlock, x: torch.Tensor, concat: str = "repeat") -> torch.Tensor:
    """z = x + BN(W_z y), y_i = sum_j f(x_i, x_j) g(x_j) / C(x), through the explicit matrix above."""
    _, _, v_grid = block.project(x)
    v = v_grid.flatten(2).transpose(1, 2)  # (B, N', C')
    y = explicit_attention(block, x, concat) @ v  # (B, N, C')
    y = y.transpose(1, 2).reshape(x.shape[0], -1, *x.shape[2:])  # (B, C', *S)
    return x + block.out_norm(block.out_proj(y))
