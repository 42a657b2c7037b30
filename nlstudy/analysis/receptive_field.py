"""The receptive field of a stage: the effective one (Luo, Li, Urtasun and Zemel, NeurIPS 2016), measured,
its size as RepLKNet measures it, and the theoretical one, computed from the layers.

    effective_receptive_field(model, clips, stage)   |d (centre unit) / d clip| averaged over the clips: a
                                                     (T, H, W) map summing to 1 (Luo et al.'s ERF, per frame)
    erf_by_stage(model, clips)                       the same for res2..res5
    noise_clips(n, clip_shape)                       Gaussian noise inputs, Luo et al.'s other input
    erf_square(erf, share, centre)                   the smallest square centred on the unit holding `share` of
                                                     the mass: its side and area ratio (RepLKNet's analyze_erf.py)
    erf_squares(erf, centre)                         the same at RepLKNet's shares 0.2, 0.3, 0.5, 0.99
    replknet_scores(scores)                          RepLKNet's log10(1 + score) / max rescaling, to reproduce it
    erf_area(erf, share)                             the smallest share of input positions (anywhere) holding
                                                     `share` of the mass: a concentration, not a centred size
    temporal_spread(erf)                             the mass per frame
    theoretical_rf(model, clip_shape)                per stage of a VideoResNet: the grid, the theoretical RF,
                                                     the jump between positions and where position 0 looks
    layer_geometry(module, geometry)                 the same through any chain of convs, pools and the
                                                     backbone's blocks (a hand-made stack, one stage)
    unit_centre(geometry)                            the input position the centre unit(s) look at

The centre unit (Luo et al.): on an odd axis of the stage's grid the middle position, on an even axis the
mean of the two middle positions (a 2x2 map: the mean of its four units; a 4-frame grid: of frames 1 and 2).
Under PyTorch's "same" padding (k // 2) a strided layer's position i looks at input i * jump, so the centre
unit of a downsampled map sits up and left of the input's centre by (jump - 1) / 2 pixels (at res5 of a
ResNet, 15.5 pixels): the centred square is centred on `unit_centre`, not on the frame.

A non-local block (and a global-context or squeeze-excitation block) makes the theoretical RF the whole
input along the axes it mixes; the ERF shows how much of that reach the trained network uses.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from nlstudy.adapters.torch import BatchNorm
from nlstudy.blocks import NonLocalBlock
from nlstudy.blocks.context import GlobalContextBlock, SqueezeExcitationBlock
from nlstudy.choices import STAGES
from nlstudy.models.resnet import BasicBlock, Bottleneck, FrozenBatchNorm3d, StagedNetwork, VideoResNet
from nlstudy.models.stage_keys import saved_name

LUO_INPUTS = 500  # Luo et al. average the gradient over this many inputs (or more): what the studies use
REPLKNET_SHARES = (0.2, 0.3, 0.5, 0.99)  # the thresholds of RepLKNet's analyze_erf.py


class _StopForward(Exception):
    """Raised by the hook on a module other than a VideoResNet stage once it holds the module's output:
    the rest of the network never runs."""


def _find_module(model: nn.Module, stage: str) -> nn.Module:
    modules = {saved_name(name): module for name, module in model.named_modules()}  # VideoResNet's "res3.1"
    if stage not in modules:
        children = ", ".join(repr(name) for name in modules if name and "." not in name)
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


def centre_indices(size: int) -> list[int]:
    """The centre of an axis of `size` positions (Luo et al.'s centre unit): [size // 2] when odd, the two
    middle positions [size // 2 - 1, size // 2] when even."""
    if size < 1:
        raise ValueError(f"an axis needs at least one position, got {size}")
    return [size // 2] if size % 2 else [size // 2 - 1, size // 2]


def effective_receptive_field(model: nn.Module, clips: torch.Tensor, stage: str, *,
                              batch_size: int = 64) -> torch.Tensor:
    """Luo et al.'s ERF of `stage` on `clips` (B, 3, T, H, W): a (T, H, W) tensor summing to 1, per frame.

    The stage's centre unit (`centre_indices` on every axis of its (T', H', W') grid: the mean of the two
    middle positions of an even axis), summed over channels, is differentiated with respect to each input
    clip; the absolute gradient is summed over the colour channels, averaged over the clips and normalised
    to sum 1. Luo et al. average over many inputs (`LUO_INPUTS`, 500): pass real clips for the ERF "on
    data" and `noise_clips` for the ERF on noise. The clips go through in batches of `batch_size` (the
    result does not depend on it: in eval mode the clips are independent).

    `stage` is "res2".."res5" of a VideoResNet or a wrapped torchvision network (run stage by stage through
    `stage_outputs`, up to that stage) or any name from `model.named_modules()` (caught by a forward hook);
    the forward pass stops once that module has run. The model is used as it is: put it in eval mode first
    (in train mode BatchNorm mixes the clips and updates its running statistics; a warning says so). Only
    the clip asks for a gradient (torch.autograd.grad), so no parameter's .grad, requires_grad or hook is
    left changed.
    """
    if clips.dim() != 5 or len(clips) == 0:
        raise ValueError(f"clips must be (B, 3, T, H, W) with B >= 1, got shape {tuple(clips.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if model.training:
        warnings.warn("effective_receptive_field on a model in train mode: BatchNorm mixes the clips and "
                      "updates its running statistics; call model.eval() first", stacklevel=2)
    total = None
    for chunk in clips.split(batch_size):
        x = chunk.detach().clone().requires_grad_(True)  # (b, 3, T, H, W)
        with torch.enable_grad():
            out = _stage_output(model, x, stage)  # (b, C, T', H', W')
            if not isinstance(out, torch.Tensor) or out.dim() < 3 or not out.requires_grad:
                raise ValueError(f"stage {stage!r} must return a (B, C, ...) tensor that depends on the clip")
            centre = out
            for axis, size in enumerate(out.shape[2:], start=2):
                index = torch.tensor(centre_indices(size), device=out.device)
                centre = centre.index_select(axis, index)  # the middle one or two positions of this axis
            target = centre.flatten(2).mean(2).sum()  # (b, C) centre units, summed over channels and clips
        (grad,) = torch.autograd.grad(target, x)  # (b, 3, T, H, W)
        part = grad.abs().sum(dim=1).sum(dim=0)  # (T, H, W)
        total = part if total is None else total + part
    mass = total.sum()
    if mass == 0:
        raise ValueError(f"the gradient of {stage!r}'s centre unit is zero everywhere: no ERF to normalise")
    return total / mass


def noise_clips(n: int, clip_shape: Sequence[int], *, seed: int = 0, mean: float = 0.0, std: float = 1.0,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """`n` clips of Gaussian noise of `clip_shape` (3, T, H, W): the random inputs of Luo et al.'s ERF (pass
    the data's mean and std to match its scale); the same `seed` gives the same clips."""
    if n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((n, *clip_shape), generator=generator, dtype=dtype) * std + mean


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


# --- the size of an ERF: the smallest centred square holding a share of its mass (RepLKNet) ---


@dataclass(frozen=True)
class Square:
    """The smallest square centred on a unit that holds `share` of a map's mass.

    side:   its side in input pixels (odd when the centre is a pixel, even when it lies between two)
    area:   the share of the map's pixels it covers, clipped to the map: side^2 / (H W) while it fits
    mass:   the share of the mass it holds (>= share)
    """

    share: float
    side: int
    area: float
    mass: float


def erf_square(erf: torch.Tensor, share: float, centre: Sequence[float] | None = None) -> Square:
    """The smallest square centred on `centre` (y, x) holding `share` of the (H, W) map's mass.

    RepLKNet's `analyze_erf.py` (Ding et al., CVPR 2022) grows a square around the map's middle and stops at
    the first one whose mass exceeds the threshold. Here the centre is the position the unit looks at
    (`unit_centre`; default the map's middle, (H - 1) / 2 and (W - 1) / 2), a half-integer centre grows
    squares of even side, the first square whose mass reaches the share (to within float rounding) counts,
    and squares grow past the map's edge (their area is counted inside the map) until they cover it all.
    Unlike analyze_erf.py, the mass is the map itself, not log10(1 + score) rescaled to a maximum of 1
    (`replknet_scores` does that, to reproduce its numbers). The map must be non-negative with positive mass.
    """
    if erf.dim() != 2:
        raise ValueError(f"erf_square expects an (H, W) map, got shape {tuple(erf.shape)}; give one frame")
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share!r}")
    values = erf.detach().to(torch.float64)
    if values.numel() == 0 or (values < 0).any() or values.sum() <= 0:
        raise ValueError("erf_square needs a non-empty, non-negative map with positive mass")
    h, w = values.shape
    cy, cx = ((h - 1) / 2, (w - 1) / 2) if centre is None else (float(centre[0]), float(centre[1]))
    if any(2 * c != round(2 * c) for c in (cy, cx)):
        raise ValueError(f"centre {tuple(centre)} must lie on a pixel or half-way between two")
    tolerance = torch.finfo(erf.dtype).eps if erf.is_floating_point() else 0.0
    total = float(values.sum())
    for k in range(max(h, w) + 2 * int(max(abs(cy), abs(cx), abs(h - 1 - cy), abs(w - 1 - cx))) + 2):
        # half-sides: k on a pixel centre (side 2k + 1), k + 1/2 half-way (side 2k + 2)
        (y0, y1), (x0, x1) = ((math.ceil(c - k - (c % 1)), math.floor(c + k + (c % 1))) for c in (cy, cx))
        side = y1 - y0 + 1
        inside = values[max(y0, 0): max(y1 + 1, 0), max(x0, 0): max(x1 + 1, 0)]
        mass = float(inside.sum()) / total
        if mass >= share - tolerance:
            return Square(share, side, inside.numel() / (h * w), mass)
    raise AssertionError("the square covers the map before the loop ends")


def erf_squares(erf: torch.Tensor, centre: Sequence[float] | None = None,
                shares: Sequence[float] = REPLKNET_SHARES) -> list[Square]:
    """`erf_square` at each of `shares` (RepLKNet's 0.2, 0.3, 0.5, 0.99) on an (H, W) map."""
    return [erf_square(erf, share, centre) for share in shares]


def replknet_scores(scores: torch.Tensor) -> torch.Tensor:
    """RepLKNet's rescaling of a contribution-score map before its squares: log10(1 + score) / max. It depends
    on the scores' scale (a sum of gradients over its 50 images); for its numbers, pass the same sums."""
    logged = torch.log10(scores.detach().to(torch.float64) + 1)
    return logged / logged.max()


# --- the theoretical receptive field, from the layers ---


@dataclass(frozen=True)
class Geometry:
    """Where the positions of a feature grid look in the input, per axis ((t, h, w) for a clip).

    grid:  the feature grid's size
    rf:    the theoretical receptive field's side in input pixels; math.inf along an axis a global block
           (non-local, global context, squeeze-excitation) has mixed: every input position can reach it
    jump:  input pixels between neighbouring grid positions (the product of the strides)
    start: the input coordinate position 0's field is centred on (0 under "same" padding)
    """

    grid: tuple[int, ...]
    rf: tuple[float, ...]
    jump: tuple[int, ...]
    start: tuple[float, ...]

    @classmethod
    def of_input(cls, shape: Sequence[int]) -> "Geometry":
        """The input itself: every pixel sees itself."""
        shape = tuple(int(s) for s in shape)
        return cls(shape, (1.0,) * len(shape), (1,) * len(shape), (0.0,) * len(shape))

    def field(self, position: Sequence[int]) -> tuple[tuple[float, float], ...]:
        """The input window ((lo, hi), ...) inclusive, not clipped to the input, that grid `position` sees."""
        return tuple((s + p * j - (r - 1) / 2, s + p * j + (r - 1) / 2)
                     for p, r, j, s in zip(position, self.rf, self.jump, self.start))


def unit_centre(geometry: Geometry) -> tuple[float, ...]:
    """The input position that the centre unit of `geometry`'s grid (the mean of the two middle positions of
    an even axis, as `effective_receptive_field` takes it) looks at: start + (n - 1) / 2 * jump per axis."""
    return tuple(s + (n - 1) / 2 * j for n, j, s in zip(geometry.grid, geometry.jump, geometry.start))


def _window(g: Geometry, kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int],
            dilation: Sequence[int], ceil_mode: bool = False) -> Geometry:
    """A convolution or pooling window over every axis: r += (k - 1) d j, j *= s, start += ((k - 1) d / 2 - p) j."""
    grid, rf, jump, start = [], [], [], []
    for n, r, j, s0, k, s, p, d in zip(g.grid, g.rf, g.jump, g.start, kernel, stride, padding, dilation):
        span = d * (k - 1)
        size = (n + 2 * p - span - 1 + ((s - 1) if ceil_mode else 0)) // s + 1
        if ceil_mode and (size - 1) * s >= n + p:  # PyTorch: the last window must start inside the input
            size -= 1
        grid.append(size)
        rf.append(r + span * j)
        jump.append(j * s)
        start.append(s0 + (span / 2 - p) * j)
    return Geometry(tuple(grid), tuple(rf), tuple(jump), tuple(start))


def _as_tuple(value: int | Sequence[int], dims: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value),) * dims


def _global(g: Geometry, axes: Sequence[int]) -> Geometry:
    """Every input position along `axes` reaches every output position."""
    return replace(g, rf=tuple(math.inf if a in axes else r for a, r in enumerate(g.rf)))


# a non-local block's mode -> the axes of a (T, H, W) grid it mixes
_MODE_AXES = {"spacetime": (0, 1, 2), "space": (1, 2), "time": (0,)}
_POINTWISE = (BatchNorm, FrozenBatchNorm3d, nn.ReLU, nn.Identity, nn.Dropout, nn.LayerNorm)


def layer_geometry(module: nn.Module, geometry: Geometry) -> Geometry:
    """`geometry` after `module`: convolutions, max/average pools, pointwise layers, nn.Sequential chains
    (in order), the backbone's residual blocks (their main path: the shortcut's 1x1 adds no reach), and
    the inserted blocks (a non-local block mixes the axes of its mode; global-context and squeeze-excitation
    blocks every axis). Anything else raises a TypeError naming it: its reach is not known here."""
    dims = len(geometry.grid)
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        if isinstance(module.padding, str):
            raise TypeError(f"{module}: padding={module.padding!r} is not supported; give explicit padding")
        return _window(geometry, module.kernel_size, module.stride, module.padding, module.dilation)
    if isinstance(module, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
        kernel = _as_tuple(module.kernel_size, dims)
        stride = _as_tuple(module.stride if module.stride is not None else module.kernel_size, dims)
        dilation = _as_tuple(getattr(module, "dilation", 1), dims)
        return _window(geometry, kernel, stride, _as_tuple(module.padding, dims), dilation, module.ceil_mode)
    if isinstance(module, _POINTWISE):
        return geometry
    if isinstance(module, nn.Sequential):
        for child in module:
            geometry = layer_geometry(child, geometry)
        return geometry
    if isinstance(module, BasicBlock):
        return layer_geometry(module.conv2, layer_geometry(module.conv1, geometry))
    if isinstance(module, Bottleneck):
        return layer_geometry(module.conv3, layer_geometry(module.conv2, layer_geometry(module.conv1, geometry)))
    if isinstance(module, NonLocalBlock):
        return _global(geometry, _MODE_AXES[module.mode] if dims == 3 else range(dims))
    if isinstance(module, (GlobalContextBlock, SqueezeExcitationBlock)):
        return _global(geometry, range(dims))
    raise TypeError(f"layer_geometry: no rule for {type(module).__name__}; give a chain of convolutions, pools, "
                    "pointwise layers, the backbone's residual blocks and inserted blocks")


def theoretical_rf(model: VideoResNet, clip_shape: Sequence[int]) -> dict[str, Geometry]:
    """{stage: Geometry} for res2..res5 of a VideoResNet on clips of `clip_shape` ((T, H, W) or (3, T, H, W)):
    the grid each stage outputs, its theoretical receptive field in input pixels per axis (math.inf where an
    inserted block mixes that axis), the jump between its positions and where position 0 looks."""
    if not isinstance(model, VideoResNet):
        raise TypeError(f"theoretical_rf takes nlstudy's VideoResNet, got {type(model).__name__}; for another "
                        "network, chain its layers through layer_geometry")
    geometry = Geometry.of_input(tuple(clip_shape)[-3:])
    geometry = layer_geometry(model.stem, geometry)
    stages = {}
    for stage, layer in model.stages.items():
        geometry = layer_geometry(layer, geometry)
        stages[stage] = geometry
        if stage == "res2":
            geometry = layer_geometry(model.pool2, geometry)
    return stages
