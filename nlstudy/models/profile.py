"""Derived facts of a backbone for one clip shape: parameters, FLOPs, where the inserted blocks sit and
the feature-map size each one sees. Runs on the meta device (shapes only), so a ResNet-101 at
32x224x224 costs milliseconds and no memory. Our backbones and torchvision's (model.backbone.arch=torchvision:*,
nlstudy.models.plugin) alike: both run through `stage_outputs` and list `inserted_blocks()`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from nlstudy.models import BackboneSpec, as_spec, build_model
from nlstudy.choices import STAGES


def model_facts(spec: BackboneSpec | dict, clip_shape: Sequence[int]) -> dict:
    """{"params", "flops_per_clip", "nl_count", "nl_positions", "nl_thw", "stage_thw", "input_shape"} for a
    (C, T, H, W) clip. "nl_count" and "nl_positions" (recorded as derived.nl_count / nl_positions, the names the
    committed runs and tables hold) count every inserted block, the comparison blocks (residual, GC, SE) too:
    read them as "inserted blocks", whatever model.backbone.block is. FLOPs count a multiply-add as 2 (torch.utils.flop_counter), forward only."""
    spec = as_spec(**spec) if isinstance(spec, dict) else spec
    with torch.device("meta"):
        model = build_model(spec).eval()
        clip = torch.empty(1, *clip_shape)
    params = sum(p.numel() for p in model.parameters())
    positions = [name for name, _ in model.inserted_blocks()]
    seen: dict[str, str] = {}  # inserted block -> T x H x W of its input
    hooks = [block.register_forward_pre_hook(lambda m, args, name=name: seen.__setitem__(name, _thw(args[0])))
             for name, block in model.inserted_blocks()]
    stage_thw: dict[str, str] = {}
    counter = FlopCounterMode(display=False)
    try:
        with counter, torch.no_grad():  # the forward pass, one stage at a time
            for stage, x in model.stage_outputs(clip):
                if stage in STAGES:
                    stage_thw[stage] = _thw(x)
    finally:
        for hook in hooks:
            hook.remove()
    return {
        "params": params,
        "flops_per_clip": int(counter.get_total_flops()),
        "nl_count": len(positions),
        "nl_positions": positions,
        "nl_thw": [seen[name] for name in positions],
        "stage_thw": stage_thw,
        "input_shape": "x".join(str(s) for s in clip_shape),
    }


def _thw(x: torch.Tensor) -> str:
    """T x H x W of a (B, C, T, H, W) tensor; (B, C, H, W), as a 2-d network's blocks see, gives 1 x H x W."""
    return "x".join(str(s) for s in (1,) * (5 - x.dim()) + tuple(x.shape[2:]))

