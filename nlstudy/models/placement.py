"""Where blocks go: named presets and explicit maps, resolved against a network's stage sizes (a depth of
ours, or the residual blocks per stage of another network: torchvision's layer1..layer4 are res2..res5).

A placement is data, {"res3": [1, 3], "res4": [1, 3, 5]}: a block is inserted after each listed
0-based residual block of that stage. Presets (the paper's section 4 and Table 2):
    none        no block (the plain baseline)
    1-block     one block in res4, before its last residual block
    5-block     2 in res3 + 3 in res4, every other residual block (ResNet-101: res4 {6, 13, 20},
                as the released Caffe2 code)
    10-block    every residual block of res3 and res4 (ResNet-101, where the paper gives no positions:
                every block of res3 + every fourth of res4 from block 1, six, so ten in all)
    res2..res5  one block in that stage, before its last residual block (Table 2b)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from nlstudy.choices import NO_BLOCKS, STAGES
from nlstudy.models.resnet import DEPTH_BLOCKS
from nlstudy.registry import lookup

Placement = dict[str, list[int]]


def _before_last(stage: str) -> Callable[[Mapping[str, int]], Placement]:
    return lambda n: {stage: [n[stage] - 2]}


def _five(n: Mapping[str, int]) -> Placement:
    res4 = [6, 13, 20] if n["res4"] == 23 else [1, 3, 5]
    return {"res3": [1, 3], "res4": res4}


def _ten(n: Mapping[str, int]) -> Placement:
    res4 = list(range(1, 23, 4)) if n["res4"] == 23 else list(range(n["res4"]))
    return {"res3": list(range(n["res3"])), "res4": res4}


# model.backbone.nonlocal_blocks preset (nlstudy.choices.PLACEMENTS) -> its positions at a depth
PRESETS: dict[str, Callable[[Mapping[str, int]], Placement]] = {
    NO_BLOCKS: lambda n: {},
    "1-block": _before_last("res4"),
    "5-block": _five,
    "10-block": _ten,
    **{stage: _before_last(stage) for stage in STAGES},
}


def resolve_placement(nonlocal_blocks: str | Mapping[str, Sequence[int]], depth: int | Sequence[int],
                      network: str = "") -> Placement:
    """A preset name or an explicit map -> a checked {stage: sorted indices} map for this network.

    `depth` is one of ours (nlstudy.choices.DEPTHS), or the residual blocks per stage res2..res5 of another
    network, such as (3, 8, 36, 3) for torchvision's resnet152; `network` names it in the errors.
    """
    if isinstance(depth, int):
        _, blocks_per_stage = lookup(DEPTH_BLOCKS, depth, "depth")
        where = f"at depth {depth}"
    else:
        blocks_per_stage = tuple(depth)
        if len(blocks_per_stage) != len(STAGES):
            raise ValueError(f"stage sizes must give the residual blocks of {', '.join(STAGES)}, got {depth!r}")
        where = f"in {network}" if network else f"of a network with {list(blocks_per_stage)} per stage"
    sizes = dict(zip(STAGES, blocks_per_stage))
    if isinstance(nonlocal_blocks, str):
        what = f"model.backbone.nonlocal_blocks={nonlocal_blocks!r}"
        placement = lookup(PRESETS, nonlocal_blocks, "model.backbone.nonlocal_blocks preset")(sizes)
    elif isinstance(nonlocal_blocks, Mapping):
        what = f"model.backbone.nonlocal_blocks={dict(nonlocal_blocks)}"
        placement = {stage: list(indices) for stage, indices in nonlocal_blocks.items()}
    else:
        raise ValueError(
            f"model.backbone.nonlocal_blocks must be a preset ({', '.join(PRESETS)}) or a map like "
            f'{{"res3": [1, 3], "res4": [1, 3, 5]}}, got {nonlocal_blocks!r}'
        )
    for stage, indices in placement.items():
        if stage not in sizes:
            raise ValueError(f"{what}: unknown stage {stage!r}; valid stages: {', '.join(STAGES)}")
        n = sizes[stage]
        for i in indices:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n:
                raise ValueError(
                    f"{what}: {stage} has {n} residual blocks {where} (indices 0-{n - 1}), no block {i!r}"
                )
        if len(set(indices)) != len(indices):
            raise ValueError(f"{what}: {stage} lists an index twice: {indices}")
    return {stage: sorted(indices) for stage, indices in placement.items() if indices}
