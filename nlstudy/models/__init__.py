"""Backbones: `build_model(...)` -> nn.Module mapping (B, 3, T, H, W) clips to logits.

The specs below are the CLI's `model.backbone.*` keys (LightningCLI/jsonargparse read the types and the
Literal choices from them); `build_model(**fields)` and `build_model(spec)` build the same network.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from torch import nn

from nlstudy.blocks import NonLocalBlock
from nlstudy.blocks.context import GlobalContextBlock, SqueezeExcitationBlock
from nlstudy.choices import BASELINE_ARCH, DEFAULT_MODE, DEFAULT_PAIRWISE, NO_BLOCKS, NONLOCAL, Arch, Block, Depth, Init, Mode, Norm, Pairwise, SubsampleOrder, ZeroInit
from nlstudy.models.placement import PRESETS, resolve_placement
from nlstudy.models.plugin import TORCHVISION_NETS, TorchvisionClips, build_torchvision, check_nl, insert_blocks
from nlstudy.models.pretrained import load_pretrained
from nlstudy.models.resnet import ARCH_KERNELS, DEPTH_BLOCKS, RESIDUAL_BLOCKS, VideoResNet, build_resnet
from nlstudy.registry import lookup


@dataclass(frozen=True)
class NLOptions:
    """Options of every inserted non-local block (`model.backbone.nl.*`)."""

    pairwise: Pairwise = DEFAULT_PAIRWISE
    inter_ratio: float = 0.5  # theta/phi/g width = round(C * inter_ratio); the paper: C/2
    subsample: bool | str = True  # true: the paper's 1x2x2 max-pool; false; or a kernel such as "2x2x2"
    subsample_order: SubsampleOrder = "after"  # pool phi/g outputs (paper) or x first (Caffe2 code)
    mode: Mode = DEFAULT_MODE  # Table 2d
    scale: bool = False  # 1/sqrt(d) in the softmax: the released code, not the paper
    zero_init: ZeroInit = "norm"  # zero the output BN (paper) or the output conv, no norm
    init_std: float = 0.01  # Gaussian std of theta/phi/g/W_z at init (the released code); 0.1 learns faster from scratch
    reduction: int = 16  # bottleneck reduction of the global_context / squeeze_excitation comparison blocks


@dataclass(frozen=True)
class BackboneSpec:
    """The backbone (`model.backbone.*`). Width 64, the paper's strides and pools give the paper's C2D/I3D.

    Attributes:
        width: channels after conv1 (64: the paper).
        nonlocal_blocks: where blocks go: a preset (none, 1-block, 5-block, 10-block, res2, res3, res4, res5;
            nlstudy.choices.PLACEMENTS) or a map such as {"res3": [1, 3], "res4": [1, 3, 5]} (after those
            0-based residual blocks of each stage).
    """

    arch: Arch = BASELINE_ARCH
    depth: Depth = 50
    width: int = 64  # channels after conv1; stages have width * (1, 2, 4, 8) (* 4 for bottlenecks)
    num_classes: int = 400  # the CLI links it to the data's class count
    # a preset (none, 1-block, 5-block, 10-block, res2..res5) or a map {"res4": [1, 3, 5]}
    nonlocal_blocks: str | dict[str, list[int]] = NO_BLOCKS
    # what is inserted at those positions: the non-local block, or a comparison block at the same places
    block: Block = NONLOCAL
    nl: NLOptions = field(default_factory=NLOptions)
    dropout: float = 0.5  # before the classifier (the paper)
    conv1_stride: tuple[int, int, int] = (2, 2, 2)  # (t, h, w); CPU-scale clips keep more resolution with (1, 2, 2)
    pool1: bool = True  # 3x3x3 max-pool, stride 2, after conv1
    pool2: bool = True  # 3x1x1 max-pool, temporal stride 2, after res2
    zero_init_residual: bool = False  # zero each residual block's last BN scale (Goyal et al. 2017)
    # a fresh backbone's init: msra (the released Caffe2 code: Kaiming fan_out convs, BN 1/0, fc std 0.01) or
    # pytorch (PyTorch's layer defaults; the demo's published runs); inserted blocks keep their own init
    init: Init = "msra"
    # the backbone's norm: bn; frozen_bn (statistics and affine fixed, the paper's 128-frame fine-tuning); sync_bn
    # (every BatchNorm converted to SyncBatchNorm: statistics over all DDP processes; the same conversion as
    # trainer.sync_batchnorm=true, which would leave frozen_bn's layers frozen). nlstudy.models.resnet.NORM_LAYERS
    norm: Norm = "bn"
    # a local torchvision ResNet-18/34/50/101 state_dict file (width 64, the same depth), inflated into the
    # backbone as the paper's ImageNet init; fc and inserted blocks stay fresh ("": none; nlstudy.models.pretrained).
    # "{depth}" in the path is replaced by the depth, so one setting serves a sweep over depths: .../resnet{depth}.pth
    pretrained: str = ""


def _insert_nonlocal(options: NLOptions, dim: int = 3):
    def make(channels: int, inner: int, residual_kind: str) -> nn.Module:
        inter = max(1, round(channels * options.inter_ratio))
        try:
            return NonLocalBlock(
                channels, dim, options.pairwise, inter, options.subsample, options.mode,
                subsample_order=options.subsample_order, scale=options.scale, zero_init=options.zero_init,
                init_std=options.init_std,
            )
        except ValueError as e:
            raise ValueError(f"model.backbone.nl: {e}") from None
    return make


def _insert_residual(options: NLOptions, dim: int = 3):  # 3-d only: nlstudy.models.plugin does not offer it
    # the paper's control: one more residual block of the stage's own kind, starting as the identity
    return lambda channels, inner, kind: RESIDUAL_BLOCKS[kind](channels, inner, zero_init=True)


def _insert_temporal_residual(options: NLOptions, dim: int = 3):  # 3-d only, as the residual control
    # the convolutional control that mixes frames: the residual block with I3D's 3x3x3 kernel (basic: its first
    # conv; bottleneck: its middle one), starting as the identity
    return lambda channels, inner, kind: RESIDUAL_BLOCKS[kind](channels, inner, t_middle=3, zero_init=True)


# model.backbone.block (nlstudy.choices.BLOCKS) -> builder of the inserted block from the nl options and the
# features' dim (3 in our backbone; 2 in torchvision's 2-d ResNets, nlstudy.models.plugin)
INSERTABLE = {
    "nonlocal": _insert_nonlocal,
    "residual": _insert_residual,
    "temporal_residual": _insert_temporal_residual,
    "global_context": lambda o, dim=3: lambda channels, inner, kind: GlobalContextBlock(channels, dim, o.reduction),
    "squeeze_excitation": lambda o, dim=3: lambda channels, inner, kind: SqueezeExcitationBlock(channels, dim, o.reduction),
}


def as_spec(spec: BackboneSpec | None = None, **fields) -> BackboneSpec:
    """A BackboneSpec from a spec or keyword fields (`nl` may be a dict); unknown fields raise."""
    if spec is not None:
        if fields:
            raise TypeError("give a BackboneSpec or keyword fields, not both")
        return spec
    known = set(BackboneSpec.__dataclass_fields__)
    unknown = sorted(set(fields) - known)
    if unknown:
        raise TypeError(f"unknown backbone option(s) {unknown}; valid: {sorted(known)}")
    nl = fields.pop("nl", None)
    if isinstance(nl, dict):
        bad = sorted(set(nl) - set(NLOptions.__dataclass_fields__))
        if bad:
            raise TypeError(f"unknown nl option(s) {bad}; valid: {sorted(NLOptions.__dataclass_fields__)}")
        nl = NLOptions(**nl)
    return BackboneSpec(**fields, nl=nl or NLOptions())


def build_model(spec: BackboneSpec | None = None, /, **fields) -> VideoResNet | TorchvisionClips:
    """build_model(arch="c2d", depth=50, num_classes=400, nonlocal_blocks="none", width=64, nl={...}, ...)."""
    spec = as_spec(spec, **fields)
    if not 0.0 <= spec.dropout < 1.0:
        raise ValueError(f"model.backbone.dropout must be in [0, 1), got {spec.dropout!r}")
    if spec.arch in TORCHVISION_NETS:  # torchvision's network as it is: depth, width, strides, pools do not apply
        return build_torchvision(spec, INSERTABLE)
    lookup({**ARCH_KERNELS, **TORCHVISION_NETS}, spec.arch, "model.backbone.arch")  # the error lists both
    lookup(DEPTH_BLOCKS, spec.depth, "model.backbone.depth")
    placement = resolve_placement(spec.nonlocal_blocks, spec.depth)
    insert = lookup(INSERTABLE, spec.block, "model.backbone.block")(spec.nl)
    check_nl(spec.nl, 3)  # even when no block uses them: a typo must not pass silently
    model = build_resnet(
        arch=spec.arch, depth=spec.depth, width=spec.width, num_classes=spec.num_classes,
        placement=placement, insert=insert, insert_kind=spec.block, dropout=spec.dropout,
        conv1_stride=spec.conv1_stride, pool1=spec.pool1, pool2=spec.pool2,
        zero_init_residual=spec.zero_init_residual, norm=spec.norm, init=spec.init,
    )
    if spec.pretrained:
        load_pretrained(model, spec.pretrained.replace("{depth}", str(spec.depth)))
    return model


def insert_nonlocal(model: nn.Module, placement: str | dict[str, list[int]], **nl_options) -> nn.Module:
    """Non-local blocks (options: the NLOptions fields) after the residual blocks that `placement` (a preset or
    {"res4": [1, 3, 5]}) names in a torchvision ResNet or video ResNet, in place; see nlstudy.models.plugin."""
    return insert_blocks(model, placement, _insert_nonlocal, as_spec(nl=nl_options).nl, NONLOCAL)


__all__ = ["BackboneSpec", "NLOptions", "PRESETS", "TORCHVISION_NETS", "TorchvisionClips", "VideoResNet", "as_spec",
           "asdict", "build_model", "insert_nonlocal", "resolve_placement"]
