"""ImageNet inflation (model.backbone.pretrained): a torchvision ResNet's 2-d weights in our C2D / I3D network.

The paper initialises its video networks from ImageNet: each 2-d kernel k x k becomes t x k x k, copied to
every temporal tap and divided by t, so that a clip of identical frames gives the 2-d network's features
(away from the clip's first and last frames, where the zero padding in time removes taps). The weights come
from a local file only, nothing downloads: a torchvision ResNet-18/34/50/101 `state_dict`, as

    torch.save(torchvision.models.resnet50(weights="IMAGENET1K_V1").state_dict(), "resnet50_imagenet.pt")

writes it (a dict with a "state_dict" key holding one is read too). Where the weights came from is recorded
in the run as the config key itself: `model.backbone.pretrained` is logged with the path.

torchvision's names map to ours: conv1/bn1 -> stem.0/stem.1, layer1..layer4 -> res2..res5, the blocks'
convK/bnK keep their names, downsample.0/.1 -> shortcut.0/.1. Copied: every conv (inflated) and every
BatchNorm's weight, bias and statistics. Left as built: the classifier `fc` (the classes differ) and the
inserted blocks (non-local, the residual control, GC, SE), which start as the identity. A mismatch (width
other than 64, another depth's file, a missing key, a wrong shape) is a one-line ValueError naming
model.backbone.pretrained, raised while the model is built, before any training.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from nlstudy.keys import PRETRAINED as KEY
from nlstudy.models.resnet import DEPTH_BLOCKS
from nlstudy.models.weights import load_weights

TORCHVISION_WIDTH = 64  # torchvision's ResNets: 64 channels after conv1
# our state-dict name -> torchvision's (None: left as built)
_RENAMES = (
    (re.compile(r"stem\.0\.(.+)"), r"conv1.\1"),
    (re.compile(r"stem\.1\.(.+)"), r"bn1.\1"),
    (re.compile(r"res([2-5])\.(\d+)\.shortcut\.([01])\.(.+)"),
     lambda m: f"layer{int(m[1]) - 1}.{m[2]}.downsample.{m[3]}.{m[4]}"),
    (re.compile(r"res([2-5])\.(\d+)\.((?:conv|bn)\d)\.(.+)"), lambda m: f"layer{int(m[1]) - 1}.{m[2]}.{m[3]}.{m[4]}"),
)


@dataclass(frozen=True)
class InflationReport:
    """What `inflate_state_dict` did, by our state-dict names."""

    copied: tuple[str, ...]  # taken from the 2-d network (convs, BN weights, biases and statistics)
    inflated: tuple[str, ...]  # of those, the convs whose kernel was spread over more than one temporal tap
    fresh: tuple[str, ...]  # left as built: the classifier (fc.*) and the inserted blocks

    def summary(self) -> str:
        return (f"{len(self.copied)} tensors copied ({len(self.inflated)} kernels inflated in time), "
                f"{len(self.fresh)} left fresh")


def torchvision_name(name: str) -> str | None:
    """Our state-dict name -> torchvision ResNet's, or None for what has no 2-d counterpart (fc, inserted blocks)."""
    for pattern, replacement in _RENAMES:
        match = pattern.fullmatch(name)
        if match:
            return match.expand(replacement) if isinstance(replacement, str) else replacement(match)
    return None


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a torchvision ResNet state_dict file (or of its "state_dict" entry), on the CPU."""
    if not os.path.isfile(path):
        raise ValueError(f"{KEY}={str(path)!r}: no such file (a torch.save'd torchvision ResNet state_dict)")
    # memory-mapped: cheap even where the model is built on the meta device (nlstudy check, model facts)
    loaded = load_weights(path, KEY, mmap=True)
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping) or not all(torch.is_tensor(v) for v in loaded.values()):
        raise ValueError(f"{KEY}={str(path)!r}: expected a state_dict (names -> tensors), or a dict with a "
                         f"'state_dict' entry; got {type(loaded).__name__}")
    return dict(loaded)


def _describe(state_dict: Mapping[str, torch.Tensor]) -> str:
    """'a ResNet-18 (basic blocks 2, 2, 2, 2)' for a torchvision ResNet state dict, as far as its names tell."""
    blocks = [1 + max((int(m[1]) for k in state_dict if (m := re.match(rf"layer{i}\.(\d+)\.", k))), default=-1)
              for i in range(1, 5)]
    kind = "bottleneck" if any(re.match(r"layer\d\.\d+\.conv3\.", k) for k in state_dict) else "basic"
    depth = next((d for d, spec in DEPTH_BLOCKS.items() if spec == (kind, tuple(blocks))), None)
    return f"{'a ResNet-' + str(depth) if depth else 'a network'} ({kind} blocks {', '.join(map(str, blocks))})"


def _inflated_shape(value: torch.Tensor, target: torch.Tensor) -> torch.Size:
    """The shape `value` has once inflated for `target`: a 2-d kernel (O, I, k, k) gets target's taps in time."""
    if value.dim() == 4 and target.dim() == 5:
        return torch.Size((*value.shape[:2], target.shape[2], *value.shape[2:]))
    return value.shape


def inflate_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "") -> InflationReport:
    """Copy a torchvision ResNet's `state_dict` into `model` (a VideoResNet), inflating 2-d kernels in time.

    Every tensor is checked before any is copied: a missing or unused name (other than torchvision's fc) or a
    shape other than ours raises one ValueError naming model.backbone.pretrained and the first mismatches."""
    where = f"{KEY}={source!r}" if source else KEY
    ours = model.state_dict()
    width = ours["stem.0.weight"].shape[0] if "stem.0.weight" in ours else None
    if width != TORCHVISION_WIDTH:
        raise ValueError(f"{where}: torchvision's ResNets have width {TORCHVISION_WIDTH} (channels after conv1); "
                         f"this backbone has model.backbone.width={width}")
    plan: dict[str, str] = {}  # our name -> torchvision's
    missing, wrong, fresh = [], [], []
    for name, target in ours.items():
        theirs = torchvision_name(name)
        if theirs is None:
            fresh.append(name)
        elif theirs not in state_dict:
            missing.append(theirs)
        elif _inflated_shape(state_dict[theirs], target) != target.shape:
            wrong.append(f"{theirs} {tuple(state_dict[theirs].shape)} for {name} {tuple(target.shape)}")
        else:
            plan[name] = theirs
    used = set(plan.values()) | set(missing) | {w.split(" ")[0] for w in wrong}
    unused = sorted(k for k in state_dict if k not in used and not k.startswith("fc."))
    if missing or wrong or unused:
        problems = [f"{len(v)} {what} (e.g. {', '.join(v[:2])})"
                    for what, v in (("missing", missing), ("of another shape", wrong), ("unused", unused)) if v]
        raise ValueError(f"{where}: the file holds {_describe(state_dict)} that does not match this backbone "
                         f"(its depth and block kind, width 64): tensors {'; '.join(problems)}")
    with torch.no_grad():
        for name, theirs in plan.items():
            target, value = ours[name], state_dict[theirs]
            if target.is_meta:  # built for its shapes only (nlstudy check, the model facts): nothing to copy
                continue
            if value.dim() == 4 and target.dim() == 5:  # (O, I, k, k) -> (O, I, t, k, k): every tap, divided by t
                value = value.unsqueeze(2) / target.shape[2]
            target.copy_(value)  # broadcast over the taps; the state_dict's tensors share storage with the model's
    inflated = tuple(n for n in plan if ours[n].dim() == 5 and ours[n].shape[2] > 1)
    return InflationReport(copied=tuple(plan), inflated=inflated, fresh=tuple(fresh))


def load_pretrained(model: nn.Module, path: str | os.PathLike) -> InflationReport:
    """Read the torchvision ResNet state_dict at `path` and inflate it into `model` (see the module docstring)."""
    return inflate_state_dict(model, read_state_dict(path), source=str(path))
