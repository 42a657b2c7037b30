"""nlstudy.models.conv: the small-map CPU paths compute nn.Conv3d's function and gradients, take the shapes they
are meant for, and leave FLOP counting and other devices on the direct path."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nlstudy.models import build_model
from nlstudy.models.conv import DENSE, DIRECT, POINTWISE, VideoConv3d, tap_index
from nlstudy.models.profile import model_facts
from nlstudy.models.stage_keys import saved_name

KERNELS = [(1, 3, 3), (3, 3, 3), (1, 1, 1)]
STRIDES = [(1, 1, 1), (1, 2, 2), (2, 2, 2)]
GRIDS = [(3, 1, 1), (2, 2, 2), (2, 3, 4)]


def test_every_path_gives_the_convolution_and_its_gradients():
    torch.manual_seed(0)
    paths = set()
    for i, (kernel, stride, grid) in enumerate(itertools.product(KERNELS, STRIDES, GRIDS)):
        bias, channels_last = i % 2 == 1, i % 4 >= 2
        conv = VideoConv3d(3, 4, kernel, stride, tuple(k // 2 for k in kernel), bias=bias).double()
        x = torch.randn(2, 3, *grid, dtype=torch.double)
        if channels_last:
            conv.to(memory_format=torch.channels_last_3d)
            x = x.contiguous(memory_format=torch.channels_last_3d)
        x.requires_grad_()
        expected = F.conv3d(x, conv.weight, conv.bias, conv.stride, conv.padding)
        got = conv(x)
        paths.add(conv._plan(grid)[0])
        grad = torch.randn_like(expected)
        params = [x, conv.weight] + ([conv.bias] if bias else [])
        for want, have in zip(torch.autograd.grad(expected, params, grad), torch.autograd.grad(got, params, grad)):
            torch.testing.assert_close(have, want, rtol=0, atol=1e-12)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    assert paths == {DENSE, POINTWISE, DIRECT}


def test_the_dense_path_takes_the_maps_with_no_more_positions_than_taps():
    conv = VideoConv3d(4, 4, (1, 3, 3), padding=(0, 1, 1))
    assert [conv._plan((4, s, s))[0] for s in (1, 2, 3, 4, 8)] == [DENSE, DENSE, DENSE, DIRECT, DIRECT]
    inflated = VideoConv3d(4, 4, (3, 3, 3), padding=(1, 1, 1))  # I3D: time is part of the map
    assert [inflated._plan(grid)[0] for grid in ((4, 2, 2), (4, 1, 1), (8, 2, 2), (4, 4, 4))] == [DENSE, DENSE, DIRECT, DIRECT]
    assert VideoConv3d(4, 4, 1, (1, 2, 2))._plan((4, 8, 8))[0] == POINTWISE
    assert VideoConv3d(4, 4, 3, padding=1, groups=2)._plan((4, 2, 2))[0] == DIRECT  # not a case it handles


def test_tap_index_joins_the_positions_a_padded_kernel_joins():
    # 3 positions, kernel 3, padding 1, stride 1: output o reads inputs o-1, o, o+1 through taps 0, 1, 2
    assert tap_index((3,), (3,), (1,), (1,)).tolist() == [[1, 0, 3], [2, 1, 0], [3, 2, 1]]
    # a 1x1 map under a 3x3 kernel: only the centre tap
    assert tap_index((1, 1), (3, 3), (1, 1), (1, 1)).tolist() == [[4]]
    # 2x2 -> 1x1 at stride 2: the four taps below and right of the centre
    assert tap_index((2, 2), (3, 3), (2, 2), (1, 1)).flatten().tolist() == [4, 5, 7, 8]


def test_the_demo_backbone_takes_the_fast_paths_and_matches_the_direct_one():
    torch.manual_seed(0)
    net = build_model(arch="c2d", depth=18, width=4, num_classes=2, conv1_stride=(1, 2, 2), pool1=False,
                      pool2=False, dropout=0.0, nonlocal_blocks="1-block").double()
    seen = {}
    for name, m in net.named_modules():
        if isinstance(m, VideoConv3d):
            m.register_forward_pre_hook(lambda mod, args, name=name: seen.__setitem__(saved_name(name), mod._plan(tuple(args[0].shape[2:]))[0]))
    clips = torch.randn(2, 3, 4, 16, 16, dtype=torch.double)
    fast = net(clips)
    assert seen["res5.1.conv2"] == DENSE and seen["res4.1.conv1"] == DENSE and seen["res2.0.conv1"] == DIRECT
    assert seen["res3.0.shortcut.0"] == POINTWISE
    for m in net.modules():
        if isinstance(m, VideoConv3d):
            m.fast_paths = False
    torch.testing.assert_close(fast, net(clips), rtol=0, atol=1e-12)


def test_flops_are_counted_on_the_direct_convolution():
    # derived.flops_per_clip is the layers' (a 3x3 conv on a 1x1 map counts its 9 taps), however the CPU computes
    # them: model_facts counts on the meta device, which takes the direct path
    spec = dict(arch="c2d", depth=18, width=4, num_classes=2, conv1_stride=(1, 2, 2), pool1=False, pool2=False,
                nonlocal_blocks="none", init="pytorch")
    net = build_model(**spec).eval()
    counts = {}
    for fast in (True, False):
        for m in net.modules():
            if isinstance(m, VideoConv3d):
                m.fast_paths = fast
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            net(torch.randn(1, 3, 4, 16, 16))
        counts[fast] = counter.get_total_flops()
    assert model_facts(spec, (3, 4, 16, 16))["flops_per_clip"] == counts[False] > counts[True]


def test_a_channels_last_weight_gets_its_gradient_in_its_own_layout():
    conv = VideoConv3d(8, 8, (1, 3, 3), padding=(0, 1, 1), bias=False).to(memory_format=torch.channels_last_3d)
    x = torch.randn(2, 8, 4, 2, 2).contiguous(memory_format=torch.channels_last_3d)
    conv(x).sum().backward()
    assert conv.weight.grad.is_contiguous(memory_format=torch.channels_last_3d)
    assert conv(x).is_contiguous(memory_format=torch.channels_last_3d)


def test_the_layer_is_an_nn_conv3d_with_its_state_dict():
    conv = VideoConv3d(3, 4, (1, 3, 3))
    plain = nn.Conv3d(3, 4, (1, 3, 3))
    assert isinstance(conv, nn.Conv3d) and conv.state_dict().keys() == plain.state_dict().keys()
    conv(torch.randn(1, 3, 2, 3, 3))  # a plan made and cached: still not in the state dict
    assert conv.state_dict().keys() == plain.state_dict().keys()
