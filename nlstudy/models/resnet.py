"""ResNet C2D and I3D video backbones (the paper's Table 1), with blocks inserted by a placement map.

    conv1 1x7x7 (I3D 5x7x7), stride 2,2,2 -> pool1 3x3x3 max, stride 2,2,2 -> res2
    -> pool2 3x1x1 max, stride 2,1,1 -> res3 -> res4 -> res5 -> global average pool -> dropout -> fc

A 32x224x224 clip gives 8x56x56 after res2, then 4x28x28, 4x14x14, 4x7x7. C2D's kernels are all 1 in
time; I3D inflates one kernel in the residual blocks the Caffe2 release marks (`INFLATE`): the first
1x1 to 3x1x1, or the 3x3 to 3x3x3. Stage spatial strides sit on the 3x3 convolution (torchvision's
ResNet v1.5). Every architecture number lives in the tables below; the builders keep no state.

Initialisation of a fresh backbone (model.backbone.init, `INITS`):
    msra     the released Caffe2 code's: every conv "MSRAFill", a Gaussian of std sqrt(2 / fan_out) with
             fan_out = out channels x kernel volume (`kaiming_normal_(mode="fan_out", nonlinearity="relu")`,
             as torchvision's ResNet and PySlowFast's init_weights); BN scale 1, shift 0; the classifier
             Gaussian std 0.01, bias 0 (Caffe2's FC_INIT_STD)
    pytorch  PyTorch's per-layer defaults (Kaiming-uniform with a=sqrt(5) for conv and fc); the demo was tuned
             and published with these
Each residual block, the stem and the classifier initialise themselves as they are built; inserted blocks
(non-local, the residual control, GC, SE) keep their own init. zero_init_residual is applied after.

Normalisation of the backbone's own layers (model.backbone.norm, `NORM_LAYERS`): BatchNorm3d; FrozenBatchNorm3d
(statistics and affine fixed: the paper's 128-frame fine-tuning); or SyncBatchNorm, to which every BatchNorm of
the built network (inserted blocks' too) is converted, so statistics are shared across DDP processes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nlstudy.adapters.torch import BatchNorm
from nlstudy.choices import STAGES
from nlstudy.models.conv import VideoConv3d
from nlstudy.models.stage_keys import keep_saved_names
from nlstudy.registry import Choice, lookup, records

LOGITS = "logits"  # the name of VideoResNet.stage_outputs' last item, after the stages
STAGE_SPATIAL_STRIDE = {"res2": 1, "res3": 2, "res4": 2, "res5": 2}
# depth (nlstudy.choices.DEPTHS) -> (residual block kind, residual blocks per stage)
DEPTH_BLOCKS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
}
EXPANSION = {"basic": 1, "bottleneck": 4}
# arch (nlstudy.choices.ARCHS) -> (conv1 temporal kernel, which kernel I3D inflates: None, "first" (3x1x1) or "middle" (3x3x3))
ARCH_KERNELS = {
    "c2d": (1, None),
    "i3d_3x1x1": (5, "first"),
    "i3d_3x3x3": (5, "middle"),
}


def inflated_blocks(blocks_per_stage: Sequence[int]) -> dict[str, list[bool]]:
    """Which residual blocks I3D inflates, after video-nonlocal-net's `use_temp_convs` tables
    (ResNet-50: res2 [1,1,1], res3 [1,0,1,0], res4 [1,0,1,0,1,0], res5 [0,1,0]): every block of res2,
    every other block of res3 and res4 from the first but never the last, the odd blocks of res5."""
    n2, n3, n4, n5 = blocks_per_stage
    every_other = lambda n: [i % 2 == 0 and i < n - 1 for i in range(n)]  # noqa: E731
    return {"res2": [True] * n2, "res3": every_other(n3), "res4": every_other(n4), "res5": [i % 2 == 1 for i in range(n5)]}


def conv3d(c_in: int, c_out: int, kernel: Sequence[int], stride: Sequence[int] = (1, 1, 1)) -> nn.Conv3d:
    """Bias-free 3-d conv with "same" padding (each kernel size odd); an nn.Conv3d with faster CPU paths for
    small maps (`VideoConv3d`)."""
    return VideoConv3d(c_in, c_out, tuple(kernel), tuple(stride), tuple(k // 2 for k in kernel), bias=False)


class FrozenBatchNorm3d(nn.Module):
    """BatchNorm3d with its statistics and affine fixed (model.backbone.norm=frozen_bn): always normalises with
    running_mean/var, in training as in evaluation, and its weight/bias do not learn.

    A module of its own rather than a BatchNorm3d held in eval mode: its forward never reads `self.training`,
    so no `train()` call (Lightning's `model.train()`, its restoring of each module's mode after validation)
    can switch it to batch statistics; and it is not a torch BatchNorm (`nlstudy.adapters.torch.BatchNorm`), so neither Lightning's
    `trainer.sync_batchnorm` nor `convert_sync_batchnorm` turns it back into a learning SyncBatchNorm.
    weight and bias stay parameters with requires_grad=False (their grads stay None, so the optimisers skip
    them; derived.params still counts them). The state-dict keys are BatchNorm3d's (weight, bias,
    running_mean, running_var, num_batches_tracked): weights load either way between bn and frozen_bn."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features, self.eps = num_features, eps
        self.weight = nn.Parameter(torch.ones(num_features), requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(num_features), requires_grad=False)
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W) -> same
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


NormFn = Callable[[int], nn.Module]  # channels -> a norm layer
# model.backbone.norm (nlstudy.choices.NORMS): each builds the norm layer of the backbone's own blocks; sync_bn
# builds BatchNorm3d and build_resnet converts the whole network (inserted blocks included) at the end
NORM_LAYERS: dict[str, Choice[NormFn]] = records(
    Choice("bn", nn.BatchNorm3d, "BatchNorm3d"),
    Choice("frozen_bn", FrozenBatchNorm3d, "BatchNorm with statistics and affine fixed (the paper's 128-frame fine-tuning)"),
    Choice("sync_bn", nn.BatchNorm3d, "SyncBatchNorm: every BatchNorm shares its statistics across DDP processes"),
)
SYNC_NORMS = ("sync_bn",)


def msra_init(module: nn.Module) -> None:
    """The released Caffe2 code's init of `module`'s convs, norms and classifier (see the module docstring)."""
    for m in module.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")  # std sqrt(2 / fan_out)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (BatchNorm, FrozenBatchNorm3d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)


InitFn = Callable[[nn.Module], None]
# model.backbone.init (nlstudy.choices.INITS): each is what a fresh backbone layer does after PyTorch's own init
INITS: dict[str, Choice[InitFn]] = records(
    Choice("msra", msra_init, "the released Caffe2 code's: Kaiming-normal convs (fan_out), fc std 0.01"),
    Choice("pytorch", lambda module: None, "PyTorch's per-layer defaults (the demo's)"),
)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 (x4 channels); I3D's inflation is data: `first` / `middle` temporal kernels."""

    def __init__(self, c_in: int, inner: int, stride: int = 1, t_first: int = 1, t_middle: int = 1, zero_init: bool = False,
                 norm: NormFn = nn.BatchNorm3d, init: InitFn = INITS["pytorch"].build):
        super().__init__()
        c_out = inner * EXPANSION["bottleneck"]
        self.conv1, self.bn1 = conv3d(c_in, inner, (t_first, 1, 1)), norm(inner)
        self.conv2, self.bn2 = conv3d(inner, inner, (t_middle, 3, 3), (1, stride, stride)), norm(inner)
        self.conv3, self.bn3 = conv3d(inner, c_out, (1, 1, 1)), norm(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(c_in, c_out, stride, norm)
        init(self)
        if zero_init:  # the block starts as the identity (Goyal et al. 2017)
            nn.init.zeros_(self.bn3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W) -> (B, 4*inner, T, H/s, W/s)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


class BasicBlock(nn.Module):
    """3x3 -> 3x3 (ResNet-18/34); I3D 3x3x3 gives the first conv a temporal kernel."""

    def __init__(self, c_in: int, inner: int, stride: int = 1, t_first: int = 1, t_middle: int = 1, zero_init: bool = False,
                 norm: NormFn = nn.BatchNorm3d, init: InitFn = INITS["pytorch"].build):
        super().__init__()
        if t_first > 1:
            raise ValueError("model.backbone.arch=i3d_3x1x1 inflates the first 1x1 conv of a bottleneck block; "
                             "depths 18 and 34 have basic blocks without one: use i3d_3x3x3 or depth 50/101")
        t = t_middle  # I3D 3x3x3 inflates the first 3x3 of a basic block
        self.conv1, self.bn1 = conv3d(c_in, inner, (t, 3, 3), (1, stride, stride)), norm(inner)
        self.conv2, self.bn2 = conv3d(inner, inner, (1, 3, 3)), norm(inner)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(c_in, inner, stride, norm)
        init(self)
        if zero_init:
            nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W) -> (B, inner, T, H/s, W/s)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


RESIDUAL_BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


def _shortcut(c_in: int, c_out: int, stride: int, norm: NormFn) -> nn.Module:
    if c_in == c_out and stride == 1:
        return nn.Identity()
    return nn.Sequential(conv3d(c_in, c_out, (1, 1, 1), (1, stride, stride)), norm(c_out))


INSERTED = "inserted_at"  # a stage's record of its inserted blocks: [(residual-block index, child name), ...]


def insert_child(stage: nn.Sequential, index: int, kind: str, block: nn.Module) -> None:
    """Appends `block` to `stage` as the block after its residual block `index`, and records that position.

    The child's name, kind + index ("nonlocal4"), is the state-dict key that checkpoints, warm starts and
    torchvision-keyed files read, so it stays; the position is the record, never read back from the name."""
    name = child_name(kind, index)
    stage.add_module(name, block)
    vars(stage).setdefault(INSERTED, []).append((index, name))


def child_name(kind: str, index: int) -> str:
    """The name (and state-dict key part) of the `kind` block after residual block `index`: "nonlocal4"."""
    return f"{kind}{index}"


def inserted_in(stages: Mapping[str, nn.Module]) -> list[tuple[str, nn.Module]]:
    """[("res4.4", block), ...]: the inserted blocks of each stage, from the stage's record, in its order."""
    return [(f"{stage}.{index}", layer.get_submodule(name))
            for stage, layer in stages.items() for index, name in vars(layer).get(INSERTED, [])]


class StagedNetwork(nn.Module):
    """A clip classifier whose forward pass is `stage_outputs`: ("res2", output) ... ("res5", output), then
    (LOGITS, logits). `features` and `forward` are read off it, so every backbone (ours, a wrapped torchvision
    network) serves models.profile and analysis.receptive_field the same way."""

    def stage_outputs(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        raise NotImplementedError

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """res5's output, (B, C, T', H', W')."""
        for stage, out in self.stage_outputs(x):
            if stage == STAGES[-1]:
                return out
        raise AssertionError("stage_outputs yields every stage")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _, x in self.stage_outputs(x):  # keeps only the latest output alive, as a plain chain would
            pass
        return x  # the last item: the logits


class VideoResNet(StagedNetwork):
    """(B, 3, T, H, W) clips -> (B, num_classes) logits. Its stages, res2..res5 in the order they run, are the
    nn.ModuleDict `stages`; each is an `nn.Sequential` whose children are the residual blocks ("0", "1", ...) and
    the inserted blocks; where each inserted block sits is the stage's record (`insert_child`, `inserted_in`),
    its child name ("nonlocal4") only its key. `stage_outputs` is the one place that knows the order the layers
    run in: `forward`, models.profile and analysis.receptive_field all run the network through it.

    Its state dict and the files it reads name the stages as before they were held in `stages`
    ("res3.1.conv1.weight", not "stages.res3.1.conv1.weight"): nlstudy.models.stage_keys, the one mapping."""

    def __init__(self, stem: nn.Module, stages: Mapping[str, nn.Sequential], pool2: nn.Module, head_channels: int,
                 num_classes: int, dropout: float):
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleDict({stage: stages[stage] for stage in STAGES})
        self.pool2 = pool2  # no parameters or buffers: the state dict's order is stem, res2 ... res5, fc as before
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(head_channels, num_classes)
        keep_saved_names(self)

    def stage_outputs(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        """The forward pass, stage by stage: yields ("res2", output), ("res3", ...), ("res4", ...),
        ("res5", ...) and last (LOGITS, (B, num_classes) logits), the value `forward` returns.

        res2's output is the one before pool2. The layers run lazily: a caller that stops iterating after
        a stage never runs the later ones.
        """
        x = self.stem(x)  # (B, 64w, T/4, H/4, W/4) at the paper's strides
        for stage, layer in self.stages.items():
            x = layer(x)  # res2 (B, 256w, T/4, H/4, W/4) ... res5 (B, 2048w, T/8, H/32, W/32)
            yield stage, x
            if stage == "res2":
                x = self.pool2(x)  # (B, 256w, T/8, H/4, W/4)
        x = x.mean(dim=(2, 3, 4))  # global average pool: (B, C)
        yield LOGITS, self.fc(self.dropout(x))

    def inserted_blocks(self) -> list[tuple[str, nn.Module]]:
        """[("res4.4", block), ...]: every inserted block with its stage and residual-block index."""
        return inserted_in(self.stages)


# builds the block inserted after a residual block: (channels, the stage's inner width, "basic"/"bottleneck")
InsertFn = Callable[[int, int, str], nn.Module]


def build_resnet(
    *,
    arch: str,
    depth: int,
    width: int,
    num_classes: int,
    placement: Mapping[str, Sequence[int]],
    insert: InsertFn,
    insert_kind: str,
    dropout: float,
    conv1_stride: Sequence[int],
    pool1: bool,
    pool2: bool,
    zero_init_residual: bool,
    norm: str,
    init: str,
    in_channels: int = 3,
) -> VideoResNet:
    """The backbone of `arch` and `depth` with `insert(channels, kind, index...)` blocks after the
    residual blocks that `placement` ({"res4": [4]}) names; `norm` and `init` as NORM_LAYERS and INITS."""
    t_conv1, inflate = lookup(ARCH_KERNELS, arch, "arch")
    kind, blocks_per_stage = lookup(DEPTH_BLOCKS, depth, "depth")
    norm_layer = lookup(NORM_LAYERS, norm, "model.backbone.norm").build
    init_fn = lookup(INITS, init, "model.backbone.init").build
    if width < 1:
        raise ValueError(f"model.backbone.width must be a positive integer, got {width!r}")
    if len(conv1_stride) != 3 or min(conv1_stride) < 1:
        raise ValueError(f"model.backbone.conv1_stride must be three positive integers (t, h, w), got {list(conv1_stride)}")
    inflated = inflated_blocks(blocks_per_stage)
    residual = RESIDUAL_BLOCKS[kind]
    expansion = EXPANSION[kind]

    stem = nn.Sequential(
        conv3d(in_channels, width, (t_conv1, 7, 7), conv1_stride),
        norm_layer(width),
        nn.ReLU(inplace=True),
        nn.MaxPool3d(3, 2, 1) if pool1 else nn.Identity(),
    )
    init_fn(stem)
    stages: dict[str, nn.Sequential] = {}
    c_in = width
    for s, (stage, n_blocks) in enumerate(zip(STAGES, blocks_per_stage)):
        inner = width * 2**s
        stage_blocks = nn.Sequential()
        for i in range(n_blocks):
            t = 3 if inflate and inflated[stage][i] else 1
            stage_blocks.add_module(str(i), residual(
                c_in, inner, STAGE_SPATIAL_STRIDE[stage] if i == 0 else 1,
                t_first=t if inflate == "first" else 1, t_middle=t if inflate == "middle" else 1,
                zero_init=zero_init_residual, norm=norm_layer, init=init_fn,
            ))
            c_in = inner * expansion
            if i in placement.get(stage, ()):
                insert_child(stage_blocks, i, insert_kind, insert(c_in, inner, kind))
        stages[stage] = stage_blocks
    pool = nn.MaxPool3d((3, 1, 1), (2, 1, 1), (1, 0, 0)) if pool2 else nn.Identity()
    model = VideoResNet(stem, stages, pool, c_in, num_classes, dropout)
    init_fn(model.fc)
    if norm in SYNC_NORMS:  # every BatchNorm, inserted blocks' too: statistics over all DDP processes
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


