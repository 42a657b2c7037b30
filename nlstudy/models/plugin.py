"""Blocks plugged into torchvision's own networks: the 2-d ResNets (resnet18 ... resnet152, the ResNeXts and
wide ResNets) and the video ResNets (r3d_18, mc3_18, r2plus1d_18).

    insert_blocks(model, placement, factory, options, kind)   blocks after the residual blocks that `placement`
                                                               names, in place (`nlstudy.models.insert_nonlocal`
                                                               is it for the non-local block)
    build_torchvision(spec, INSERTABLE)                       model.backbone.arch=torchvision:<name>: the network
                                                               (weights=None), its blocks, as a clip classifier

torchvision's layer1..layer4 are our res2..res5, and a placement is the same data as for our backbone (a
preset, resolved against the network's own stage sizes, or a map {"res4": [1, 3, 5]}). The block after
residual block i of a stage goes into that `layerN` as the child resnet.child_name(kind, i) ("nonlocal3"), the
name VideoResNet gives it, and the layer records its position (resnet.INSERTED; the name is never parsed back).
The existing layers keep torchvision's state-dict keys: a torchvision checkpoint
still loads, with strict=False for the new blocks only. The blocks are built by the same code as our
backbone's (nlstudy.models.INSERTABLE), with dim=2 in a 2-d network (the paper's 1x2x2 subsampling becomes
2x2; only the spacetime mode) and dim=3 in a video network. Each starts as the identity, so inserting one
changes no output. Nothing here downloads: the networks are built with weights=None.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from nlstudy.blocks.nonlocal_block import check_options
from nlstudy.choices import BLOCKS, RESIDUAL, STAGES, TEMPORAL_RESIDUAL
from nlstudy.models.placement import resolve_placement
from nlstudy.models.resnet import INSERTED, LOGITS, InsertFn, StagedNetwork, child_name, inserted_in
from nlstudy.registry import lookup

LAYERS = ("layer1", "layer2", "layer3", "layer4")  # torchvision's names of res2..res5
# the layers before layer1 in torchvision's forward, by the network's dim (ResNet's, video.VideoResNet's)
STEM = {2: ("conv1", "bn1", "relu", "maxpool"), 3: ("stem",)}
# model.backbone.arch (nlstudy.choices.TORCHVISION_ARCHS) -> (builder in torchvision.models, dim of its features)
TORCHVISION_NETS = {
    **{f"torchvision:{name}": (name, 2) for name in (
        "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
        "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2",
    )},
    **{f"torchvision:{name}": (f"video.{name}", 3) for name in ("r3d_18", "mc3_18", "r2plus1d_18")},
}
# INSERTABLE's builders: (the nl options, dim) -> the function building one block
BlockFactory = Callable[[Any, int], InsertFn]


def _layers(model: nn.Module) -> dict[str, nn.Sequential]:
    """{"res2": model.layer1, ..., "res5": model.layer4}, or a TypeError for a network without them."""
    missing = [name for name in LAYERS if not isinstance(getattr(model, name, None), nn.Sequential)]
    if missing:
        raise TypeError(f"{type(model).__name__} is not a torchvision ResNet or video ResNet: "
                        f"no nn.Sequential {', '.join(missing)}")
    return {stage: getattr(model, layer) for stage, layer in zip(STAGES, LAYERS)}


def _residual_blocks(layer: nn.Sequential) -> list[nn.Module]:
    """A layer's residual blocks, torchvision's children "0", "1", ... (not the inserted ones)."""
    return [child for name, child in layer.named_children() if name.isdigit()]


def network_dim(model: nn.Module) -> int:
    """2 for a torchvision ResNet, 3 for a video ResNet: the kind of the first convolution of layer1."""
    for module in _layers(model)["res2"].modules():
        if isinstance(module, (nn.Conv2d, nn.Conv3d)):
            return 2 if isinstance(module, nn.Conv2d) else 3
    raise TypeError(f"{type(model).__name__}.layer1 holds no Conv2d or Conv3d")


def stage_sizes(model: nn.Module) -> tuple[int, ...]:
    """Residual blocks per stage res2..res5: (2, 2, 2, 2) for resnet18 and r3d_18, (3, 8, 36, 3) for resnet152."""
    return tuple(len(_residual_blocks(layer)) for layer in _layers(model).values())


def check_nl(options: Any, dim: int) -> None:
    """The nl options against a network's dim (build_model, insert_blocks), checked even where no block uses them."""
    try:
        check_options(dim, options.pairwise, options.mode, options.subsample, options.scale)
    except ValueError as e:
        raise ValueError(f"model.backbone.nl: {e}") from None
    if not 0.0 < options.inter_ratio:
        raise ValueError(f"model.backbone.nl.inter_ratio must be positive, got {options.inter_ratio!r}")


def insert_blocks(model: nn.Module, placement: str | Mapping[str, Sequence[int]], factory: BlockFactory,
                  options: Any, kind: str, network: str = "") -> nn.Module:
    """Inserts `factory(options, dim)` blocks into a torchvision ResNet or video ResNet (or a TorchvisionClips)
    after the residual blocks `placement` names, in place, and returns the model.

    Each block is built on the device and in the dtype of the residual block before it (the meta device
    included) and in the model's train/eval mode. `kind` names the children ("nonlocal3"); `network` the
    model in the errors.
    """
    layers = _layers(model)
    dim = network_dim(model)
    network = network or type(model).__name__
    check_nl(options, dim)
    positions = resolve_placement(placement, stage_sizes(model), network)
    if positions and kind in (RESIDUAL, TEMPORAL_RESIDUAL):
        others = ", ".join(repr(b) for b in BLOCKS if b not in (RESIDUAL, TEMPORAL_RESIDUAL))
        raise ValueError(f"model.backbone.block={kind!r} adds this package's own C2D residual blocks, not "
                         f"{network}'s; valid choices for it: {others}")
    taken = [f"{stage}.{i}" for stage, indices in positions.items() for i in indices
             if (i, child_name(kind, i)) in vars(layers[stage]).get(INSERTED, [])]
    if taken:
        raise ValueError(f"{network} already has a {kind} block at {', '.join(taken)}")
    make = factory(options, dim)
    for stage, indices in positions.items():
        layer = layers[stage]
        children = []  # (name, module) in the new order: each new block right after its residual block
        record = vars(layer).pop(INSERTED, [])  # (index, name) of the blocks inserted before
        for name, child in layer.named_children():
            children.append((name, child))
            if name.isdigit() and int(name) in indices:  # torchvision's residual blocks: "0", "1", ...
                children.append((child_name(kind, int(name)), _build_after(child, make, model.training)))
                record.append((int(name), children[-1][0]))
        for name, _ in list(layer.named_children()):  # refilled in order, the same nn.Sequential: hooks on it stay
            delattr(layer, name)
        for name, child in children:
            layer.add_module(name, child)
        order = {name: k for k, (name, _) in enumerate(children)}
        vars(layer)[INSERTED] = sorted(record, key=lambda item: order[item[1]])  # in the order they run
    return model


def _build_after(residual: nn.Module, make: InsertFn, training: bool) -> nn.Module:
    # a residual block's last convolution (main path or shortcut) gives its output channels
    channels = [m for m in residual.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))][-1].out_channels
    expansion = getattr(residual, "expansion", 1)  # torchvision's blocks: 1 (basic), 4 (bottleneck)
    like = next(residual.parameters())
    with torch.device(like.device):
        block = make(channels, channels // expansion, "bottleneck" if expansion == 4 else "basic")
    return block.to(dtype=like.dtype).train(training)


class TorchvisionClips(StagedNetwork):
    """(B, 3, T, H, W) clips -> (B, num_classes) logits through a torchvision network, with VideoResNet's
    interface (`stage_outputs`, `features`, `inserted_blocks`) for models.profile and the analysis.

    Its children are the network's own, under torchvision's names, plus a parameter-free dropout before
    `fc`: the state-dict keys are torchvision's. A 2-d network takes clips of one frame (data.frames=1),
    and its stage outputs come with T = 1: (B, C, 1, H, W).
    """

    def __init__(self, net: nn.Module, network: str, dropout: float = 0.0):
        super().__init__()
        self.network, self.dim = network, network_dim(net)
        for name, child in net.named_children():
            self.add_module(name, child)
        self.dropout = nn.Dropout(dropout)

    def stage_outputs(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        """torchvision's forward, stage by stage: ("res2", layer1's output), ..., ("res5", ...), (LOGITS, logits)."""
        if x.dim() != 5:
            raise ValueError(f"{self.network} takes (B, 3, T, H, W) clips, got shape {tuple(x.shape)}")
        if self.dim == 2:
            if x.shape[2] != 1:
                raise ValueError(f"model.backbone.arch={self.network} is a 2-d network: it takes clips of one frame "
                                 f"(data.frames=1), got {x.shape[2]} frames")
            x = x[:, :, 0]  # (B, 3, H, W)
        for name in STEM[self.dim]:
            x = getattr(self, name)(x)  # 2-d: (B, 64, H/4, W/4); video: (B, 64, T, H/2, W/2)
        for stage, layer in _layers(self).items():
            x = layer(x)  # (B, C, [T',] H', W')
            yield stage, x.unsqueeze(2) if self.dim == 2 else x  # (B, C, T', H', W')
        x = torch.flatten(self.avgpool(x), 1)  # global average pool: (B, C)
        yield LOGITS, self.fc(self.dropout(x))

    def inserted_blocks(self) -> list[tuple[str, nn.Module]]:
        """[("res4.3", block), ...]: every inserted block with its stage and residual-block index."""
        return inserted_in(_layers(self))


def build_torchvision(spec: Any, insertable: Mapping[str, BlockFactory]) -> TorchvisionClips:
    """model.backbone.arch=torchvision:<name>: torchvision's network with weights=None (never a download),
    a `spec.num_classes` classifier, `spec.dropout` before it, `spec.block` blocks (built by
    `insertable`, nlstudy.models.INSERTABLE) at `spec.nonlocal_blocks` with the `spec.nl` options.

    The fields that shape our own backbone (depth, width, conv1_stride, pool1, pool2, zero_init_residual,
    init) do not apply and are ignored: the network is torchvision's as it is, with torchvision's init. A
    norm other than bn, or a pretrained file, is an error rather than ignored.
    """
    path, _ = lookup(TORCHVISION_NETS, spec.arch, "model.backbone.arch")
    factory = lookup(insertable, spec.block, "model.backbone.block")
    if getattr(spec, "norm", "bn") != "bn":
        raise ValueError(f"model.backbone.norm={spec.norm!r} applies to our backbones; {spec.arch} keeps "
                         f"torchvision's BatchNorm: valid choice for it: 'bn'")
    if getattr(spec, "pretrained", ""):
        raise ValueError(f"model.backbone.pretrained inflates a checkpoint into our backbones; for {spec.arch} "
                         f"load it into the built network (torchvision's keys; strict=False for the new blocks)")
    import torchvision.models  # here: 1.7 s of imports that our own backbones do without

    builder = torchvision.models
    for attribute in path.split("."):
        builder = getattr(builder, attribute)
    net = builder(weights=None, num_classes=spec.num_classes)
    insert_blocks(net, spec.nonlocal_blocks, factory, spec.nl, spec.block, spec.arch)
    return TorchvisionClips(net, spec.arch, spec.dropout)
