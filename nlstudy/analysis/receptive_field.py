"""The effective receptive field (Luo, Li, Urtasun and Zemel, NeurIPS 2016) of a stage, and its size.

    effective_receptive_field(model, clips, stage)   |d (centre output) / d clip|, a (T, H, W) map summing to 1
    erf_by_stage(model, clips)                       the same for res2..res5
    erf_area(erf, share)                             the smallest share of input positions holding `share`
                                                     of the mass (RepLKNet's high-contribution area ratio)
    temporal_spread(erf)                             the mass per frame

A non-local block makes the ERF of a C2D network (temporal kernels of 1) span every frame: the
comparison "with and without the block" of the design's analysis notebook.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import nn

from nlstudy.choices import STAGES
from nlstudy.models.resnet import StagedNetwork


class _StopForward(Exception):
    """Raised by the hook on a module other than a VideoResNet stage once it holds the module's output:
    the rest of the network never runs."""


def _find_module(model: nn.Module, stage: str) -> nn.Module:
    modules = dict(model.named_modules())
    if stage not in modules:
        children = ", ".join(repr(name) for name, _ in model.named_children())
        raise ValueError(f"unknown stage {stage!r}: give a name from model.named_modules(), "
                         f"such as one of the top-level modules {children}")
    return modules[stage]


def _stage_output(model: nn.Module, x: torch.Tensor, stage: str) -> torch.Tensor:
    """The output of `stage` on `x`; nothing after it runs."""
    if isinstance(model, StagedNetwork) and stage in STAGES:
        for name, out in model.stage_outputs(x):
            if name == stage:
                return out
    module = _find_module(model, stage)
    captured: list[torch.Tensor] = []

    def grab(_module: nn.Module, _args: tuple, output: torch.Tensor) -> None:
        captured.append(output)
        raise _StopForward

    handle = module.register_forward_hook(grab)
    try:
        model(x)
    except _StopForward:
        pass
    finally:
        handle.remove()
    if not captured:
        raise ValueError(f"stage {stage!r} did not run in model's forward pass")
    return captured[0]


def effective_receptive_field(model: nn.Module, clips: torch.Tensor, stage: str) -> torch.Tensor:
    """The ERF of `stage` on `clips` (B, 3, T, H, W): a (T, H, W) tensor summing to 1.

    The gradient of the stage output at the centre position of its grid (index size // 2 on each axis),
    summed over channels, with respect to the input clip; its absolute value summed over the colour
    channels, averaged over the clips, normalised to sum 1. `stage` is "res2".."res5" of a VideoResNet or a
    wrapped torchvision network (run stage by stage through `stage_outputs`, up to that stage) or any name from
    `model.named_modules()` (caught by a forward hook); the forward pass stops once that module has run.

    The model is used as it is: put it in eval mode first (in train mode BatchNorm mixes the clips and
    updates its running statistics; a warning says so). Only the clip asks for a gradient
    (torch.autograd.grad), so no parameter's .grad, requires_grad or hook is left changed.
    """
    if clips.dim() != 5:
        raise ValueError(f"clips must be (B, 3, T, H, W), got shape {tuple(clips.shape)}")
    if model.training:
        warnings.warn("effective_receptive_field on a model in train mode: BatchNorm mixes the clips and "
                      "updates its running statistics; call model.eval() first", stacklevel=2)
    x = clips.detach().clone().requires_grad_(True)  # (B, 3, T, H, W)
    with torch.enable_grad():
        out = _stage_output(model, x, stage)  # (B, C, T', H', W')
    if not isinstance(out, torch.Tensor) or out.dim() < 3 or not out.requires_grad:
        raise ValueError(f"stage {stage!r} must return a (B, C, ...) tensor that depends on the clip")
    centre = tuple(size // 2 for size in out.shape[2:])
    target = out[(slice(None), slice(None), *centre)].sum()  # (B, C) at the centre, summed to a scalar
    (grad,) = torch.autograd.grad(target, x)  # (B, 3, T, H, W); clips are independent in eval mode
    erf = grad.abs().sum(dim=1).mean(dim=0)  # (T, H, W)
    total = erf.sum()
    if total == 0:
        raise ValueError(f"the gradient of {stage!r}'s centre output is zero everywhere: no ERF to normalise")
    return erf / total


def erf_by_stage(model: nn.Module, clips: torch.Tensor, stages: Sequence[str] = STAGES) -> dict[str, torch.Tensor]:
    """{stage: effective_receptive_field(model, clips, stage)}, in the order given."""
    return {stage: effective_receptive_field(model, clips, stage) for stage in stages}


def erf_area(erf: torch.Tensor, share: float = 0.5) -> float:
    """The smallest fraction of input positions that holds `share` of the map's mass (RepLKNet's
    high-contribution area ratio): 1/N for a map on one position, ceil(share * N) / N for a uniform one.

    The map need not sum to 1 (it is normalised here) but must be non-negative. The positions are taken
    by decreasing weight until their cumulative mass reaches `share`, to within the map dtype's
    resolution (float32: 1.2e-7 of the total), so that rounding cannot add a position.
    """
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share!r}")
    tolerance = torch.finfo(erf.dtype).eps if erf.is_floating_point() else 0.0
    values = erf.detach().flatten().to(torch.float64)  # (N,)
    if values.numel() == 0 or (values < 0).any() or values.sum() <= 0:
        raise ValueError("erf_area needs a non-empty, non-negative map with positive mass")
    mass = values.sort(descending=True).values.cumsum(0) / values.sum()  # (N,) ascending to 1
    needed = int((mass < share - tolerance).sum()) + 1  # first index where mass >= share, +1
    return needed / values.numel()


def temporal_spread(erf: torch.Tensor) -> torch.Tensor:
    """The share of the (T, H, W) map's mass on each frame: a (T,) tensor summing to 1."""
    if erf.dim() != 3:
        raise ValueError(f"temporal_spread expects a (T, H, W) map, got shape {tuple(erf.shape)}")
    return erf.sum(dim=(1, 2)) / erf.sum()  # (T,)
