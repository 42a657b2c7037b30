"""Blocks the non-local block is compared with, insertable at the same positions.

Each starts as the identity, like the non-local block, so inserting one into a trained or freshly built
backbone changes nothing until it learns:
- `GlobalContextBlock` (Cao et al., GCNet, 2019): one query-independent attention map pools a global
  context vector, a bottleneck transform (1x1 conv, LayerNorm, ReLU, 1x1 conv) adds it to every
  position. Its last conv starts at zero.
- `SqueezeExcitationBlock` (Hu et al., 2018) as a standalone block: channel gates from global average
  pooling, x * 2 sigmoid(s); the last conv starts at zero so the gate starts at exactly 1.
"""

from __future__ import annotations

import torch
from torch import nn

from nlstudy.blocks.nonlocal_block import CONV
from nlstudy.registry import lookup


def _bottleneck_width(channels: int, reduction: int) -> int:
    if reduction < 1:
        raise ValueError(f"reduction must be a positive integer, got {reduction!r}")
    return max(1, channels // reduction)


class GlobalContextBlock(nn.Module):
    """x + transform(sum_j softmax_j(w_k . x_j) x_j): the same context added at every position."""

    def __init__(self, in_channels: int, dim: int = 3, reduction: int = 16):
        super().__init__()
        conv = lookup(CONV, dim, "dim")
        hidden = _bottleneck_width(in_channels, reduction)
        self.in_channels, self.dim = in_channels, dim
        self.context_logits = conv(in_channels, 1, 1)  # w_k: one attention logit per position
        self.transform = nn.Sequential(
            conv(in_channels, hidden, 1),
            nn.LayerNorm([hidden] + [1] * dim),
            nn.ReLU(inplace=True),
            conv(hidden, in_channels, 1),
        )
        nn.init.zeros_(self.transform[-1].weight)
        nn.init.zeros_(self.transform[-1].bias)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N) softmax weights over positions: the one map every query shares."""
        return torch.softmax(self.context_logits(x).flatten(1), dim=1)  # (B, N)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        weights = self.attention(x)  # (B, N)
        context = torch.einsum("bcn,bn->bc", x.flatten(2), weights)  # (B, C)
        return x + self.transform(context.view(b, c, *[1] * self.dim))  # broadcast over positions


class SqueezeExcitationBlock(nn.Module):
    """x * 2 sigmoid(W2 ReLU(W1 mean(x))): per-channel gates from the global average."""

    def __init__(self, in_channels: int, dim: int = 3, reduction: int = 16):
        super().__init__()
        conv = lookup(CONV, dim, "dim")
        hidden = _bottleneck_width(in_channels, reduction)
        self.in_channels, self.dim = in_channels, dim
        self.squeeze = conv(in_channels, hidden, 1)
        self.excite = conv(hidden, in_channels, 1)
        nn.init.zeros_(self.excite.weight)  # gate = 2 sigmoid(0) = 1: the identity at init
        nn.init.zeros_(self.excite.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=tuple(range(2, x.dim())), keepdim=True)  # (B, C, 1, ...)
        gate = 2 * torch.sigmoid(self.excite(torch.relu(self.squeeze(pooled))))
        return x * gate
