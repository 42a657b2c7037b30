"""Explicit N x N formulations of the non-local block, transcribed from the paper's equations.

These build the full pairwise matrix over every position pair, masked to the pairs a mode allows
(same frame for space, same pixel for time), as the paper's Caffe2 code and the common PyTorch ports
do. They reuse a `NonLocalBlock`'s weights, so the tests can check every fast path of the block
against them and `benchmarks/nl_block.py` can time the two side by side. Not for training.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from nlstudy.blocks.nonlocal_block import NonLocalBlock
from nlstudy.choices import SOFTMAX_PAIRWISE


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
    """f(x_i, x_j) / C(x) as an explicit (B, N, N') matrix (zeros outside the pairs the mode allows).

    concat="repeat" forms the concatenation pairs the way the common ports do: theta and phi repeated
    to (B, C', N, N') each, concatenated to (B, 2C', N, N') and projected by w_f; concat="broadcast"
    adds the two projected halves instead.
    """
    q_grid, k_grid, _ = block.project(x)
    q = q_grid.flatten(2).transpose(1, 2)  # (B, N, d)
    k = k_grid.flatten(2).transpose(1, 2)  # (B, N', d)
    mask = allowed_pairs(block, q_grid.shape, k_grid.shape) if block.dim == 3 else None
    if mask is not None:
        mask = mask.to(x.device)

    if block.pairwise in SOFTMAX_PAIRWISE:
        logits = q @ k.transpose(1, 2)  # (B, N, N')
        if block.scale:
            logits = logits / math.sqrt(q.shape[-1])
        if mask is not None:
            logits = logits.masked_fill(~mask, float("-inf"))
        return torch.softmax(logits, dim=-1)  # C(x) = sum_j f

    if block.pairwise == "dot_product":
        f = q @ k.transpose(1, 2)  # (B, N, N')
    elif concat == "repeat":
        n, nk = q.shape[1], k.shape[1]
        theta = q.transpose(1, 2).unsqueeze(3).expand(-1, -1, n, nk)  # (B, C', N, N')
        phi = k.transpose(1, 2).unsqueeze(2).expand(-1, -1, n, nk)  # (B, C', N, N')
        pairs = torch.cat([theta, phi], dim=1)  # (B, 2C', N, N')
        w_f = block.concat_proj.weight.view(1, -1, 1, 1)  # (1, 2C', 1, 1): w_f as a 1x1 conv
        f = F.relu(F.conv2d(pairs, w_f)).squeeze(1)  # (B, N, N')
    elif concat == "broadcast":
        w_theta, w_phi = block.concat_proj.weight[0].split(block.inter_channels)
        f = F.relu((q @ w_theta).unsqueeze(2) + (k @ w_phi).unsqueeze(1))  # (B, N, N')
    else:
        raise ValueError(f"concat={concat!r}: valid choices: 'repeat', 'broadcast'")
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
