"""The private torch names nlstudy relies on, in one place. tests/test_adapters_torch.py checks each one
against the installed torch, so an upgrade that moves, renames or changes one fails there, by name, instead of
somewhere in a model's numbers.

    BatchNorm         torch.nn.modules.batchnorm._BatchNorm, the common base class of BatchNorm1d/2d/3d and
                      SyncBatchNorm (not of nlstudy's FrozenBatchNorm3d): for isinstance checks only (the
                      backbone's init, the receptive-field analysis' pointwise layers)
    conv_forward      nn.Conv1d/2d/3d's `_conv_forward(x, weight, bias)`: the layer's computation with the weight
                      and bias given (the non-local block runs its stacked 1x1 projections through it)
    CONV_FORWARD      the name of that method, which nn.ConvNd's forward calls with (x, self.weight, self.bias):
                      nlstudy.models.conv.VideoConv3d overrides it to choose its CPU paths
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm as BatchNorm

CONV_FORWARD = "_conv_forward"


def conv_forward(conv: nn.Conv1d | nn.Conv2d | nn.Conv3d, x: torch.Tensor, weight: torch.Tensor,
                 bias: torch.Tensor | None) -> torch.Tensor:
    """`conv`'s computation (its stride, padding, dilation, groups; a subclass' own paths) with `weight` and `bias`
    in place of its own."""
    return getattr(conv, CONV_FORWARD)(x, weight, bias)


__all__ = ["BatchNorm", "CONV_FORWARD", "conv_forward"]
