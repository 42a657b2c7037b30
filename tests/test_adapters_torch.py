"""The private torch names of nlstudy.adapters.torch, checked against the installed torch: each test names
what changed if it fails. And nothing else in nlstudy names a private torch attribute."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import nlstudy
from nlstudy.adapters import torch as adapter
from nlstudy.models.resnet import FrozenBatchNorm3d

PACKAGE = Path(nlstudy.__file__).parent
NOT_YET: set[str] = set()  # every module goes through the adapter


def test_batchnorm_is_the_base_of_every_torch_batchnorm_and_not_of_the_frozen_one():
    for cls in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm):
        assert issubclass(cls, adapter.BatchNorm), f"torch changed: {cls.__name__} no longer derives from _BatchNorm"
    assert not issubclass(nn.LayerNorm, adapter.BatchNorm) and not issubclass(FrozenBatchNorm3d, adapter.BatchNorm)
    norm = nn.BatchNorm3d(4)
    assert {"weight", "bias"} <= {n for n, _ in norm.named_parameters()}  # what the backbone's init sets


def test_conv_forward_is_each_convs_computation_with_the_weights_given():
    torch.manual_seed(0)
    for conv, f, x in ((nn.Conv1d(3, 4, 3, padding=1), F.conv1d, torch.randn(2, 3, 5)),
                       (nn.Conv2d(3, 4, 3, stride=2), F.conv2d, torch.randn(2, 3, 6, 6)),
                       (nn.Conv3d(3, 4, 1), F.conv3d, torch.randn(2, 3, 2, 3, 3))):
        assert callable(getattr(conv, adapter.CONV_FORWARD, None)), f"torch changed: no {type(conv).__name__}._conv_forward"
        weight, bias = torch.randn_like(conv.weight), torch.randn_like(conv.bias)
        expected = f(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
        assert torch.equal(adapter.conv_forward(conv, x, weight, bias), expected)


def test_a_convs_forward_goes_through_conv_forward():
    # nlstudy.models.conv.VideoConv3d overrides the method: nn.Conv3d.forward must call it with its own weights
    seen = []

    class Spy(nn.Conv3d):
        def _conv_forward(self, x, weight, bias):
            seen.append((weight is self.weight, bias is self.bias))
            return super()._conv_forward(x, weight, bias)

    Spy(2, 2, 1)(torch.randn(1, 2, 1, 2, 2))
    assert seen == [(True, True)], "torch changed: nn.Conv3d.forward no longer calls self._conv_forward(x, w, b)"
    assert list(inspect.signature(nn.Conv3d._conv_forward).parameters) == ["self", "input", "weight", "bias"]


def test_no_other_module_names_a_private_torch_attribute():
    bad = []
    for file in sorted(PACKAGE.rglob("*.py")):
        rel = file.relative_to(PACKAGE).as_posix()
        if rel.startswith("adapters/") or rel in NOT_YET:
            continue
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
                bad += [f"{rel}: from {node.module} import {a.name}" for a in node.names if a.name.startswith("_")]
            elif isinstance(node, ast.Attribute) and node.attr == adapter.CONV_FORWARD and not (
                    isinstance(node.value, ast.Call) and getattr(node.value.func, "id", "") == "super"):
                bad.append(f"{rel}:{node.lineno}: .{node.attr}")
    assert not bad, f"private torch names outside nlstudy/adapters/torch.py: {bad}"
