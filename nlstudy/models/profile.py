"""Derived facts of a backbone for one clip shape: parameters, FLOPs, where the inserted blocks sit and
the feature-map size each one sees. Runs on the meta device (shapes only), so a ResNet-101 at
32x224x224 costs milliseconds and no memory."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from nlstudy.models import BackboneSpec, as_spec, build_model
from nlstudy.models.resnet import STAGES


def describe(spec: BackboneSpec | dict, clip_shape: Sequence[int]) -> dict:
    """{"params", "flops_per_clip", "nl_count", "nl_positions", "nl_thw", "stage_thw", "input_shape"} for a
    (C, T, H, W) clip. FLOPs count a multiply-add as 2 (torch.utils.flop_counter), forward only."""
    spec = as_spec(**spec) if isinstance(spec, dict) else spec
    with torch.device("meta"):
        model = build_model(spec).eval()
        clip = torch.empty(1, *clip_shape)
    params = sum(p.numel() for p in model.parameters())
    seen: dict[str, str] = {}
    hooks = [
        module.register_forward_pre_hook(lambda m, args, name=name: seen.__setitem__(name, _thw(args[0])))
        for name, module in [*model.inserted_blocks(), *[(s, getattr(model, s)) for s in STAGES]]
    ]
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(clip)
    for hook in hooks:
        hook.remove()
    stage_out = _stage_outputs(model, clip)
    positions = [name for name, _ in model.inserted_blocks()]
    return {
        "params": params,
        "flops_per_clip": int(counter.get_total_flops()),
        "nl_count": len(positions),
        "nl_positions": positions,
        "nl_thw": [seen[name] for name in positions],
        "stage_thw": stage_out,
        "input_shape": "x".join(str(s) for s in clip_shape),
    }


def _thw(x: torch.Tensor) -> str:
    return "x".join(str(s) for s in x.shape[2:])


def _stage_outputs(model, clip: torch.Tensor) -> dict[str, str]:
    """T x H x W after each stage."""
    out: dict[str, str] = {}
    with torch.no_grad():
        x = model.stem(clip)
        for stage in STAGES:
            x = getattr(model, stage)(x)
            out[stage] = _thw(x)
            if stage == "res2":
                x = model.pool2(x)
    return out
