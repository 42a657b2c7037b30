"""Luo et al.'s effective receptive field, RepLKNet's centred square, and the theoretical receptive field, on
hand-built networks and maps whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nlstudy.analysis.receptive_field import (
    REPLKNET_SHARES,
    Geometry,
    centre_indices,
    effective_receptive_field,
    erf_square,
    erf_squares,
    layer_geometry,
    noise_clips,
    replknet_scores,
    theoretical_rf,
    unit_centre,
)
from nlstudy.models import build_model


def box_stack(n: int, strides: tuple[int, ...] | None = None) -> nn.Sequential:
    """n linear 1x3x3 convolutions, every weight 1/9 (the first also averages the 3 colours), no bias: the
    gradient of one output unit is the n-fold correlation of 3x3 boxes, a product of trinomial rows."""
    strides = strides or (1,) * n
    layers = []
    for i, s in enumerate(strides):
        conv = nn.Conv3d(3 if i == 0 else 1, 1, (1, 3, 3), (1, s, s), (0, 1, 1), bias=False)
        nn.init.constant_(conv.weight, 1 / (9 * (3 if i == 0 else 1)))
        layers.append(conv)
    return nn.Sequential(*layers).double().eval()


def trinomial(n: int) -> np.ndarray:
    """The n-fold convolution of [1, 1, 1] / 3: 2n + 1 weights."""
    row = np.array([1.0])
    for _ in range(n):
        row = np.convolve(row, np.ones(3) / 3)
    return row


def test_centre_indices_follow_luo():
    assert centre_indices(1) == [0] and centre_indices(7) == [3]
    assert centre_indices(2) == [0, 1] and centre_indices(8) == [3, 4]
    with pytest.raises(ValueError):
        centre_indices(0)


@pytest.mark.parametrize("n", [1, 3, 4])
def test_erf_of_a_box_stack_is_the_trinomial_over_its_theoretical_rf(n):
    # odd map (15 x 15 in, 15 x 15 out): the true centre unit, (7, 7)
    model = box_stack(n)
    clips = torch.randn(6, 3, 1, 15, 15, dtype=torch.float64)
    erf = effective_receptive_field(model, clips, str(n - 1))[0]  # (15, 15)
    row = trinomial(n)
    expected = np.zeros((15, 15))
    expected[7 - n: 8 + n, 7 - n: 8 + n] = np.outer(row, row)
    np.testing.assert_allclose(erf.numpy(), expected, atol=1e-12)
    # its support is the theoretical RF, centred on the unit
    geometry = layer_geometry(model, Geometry.of_input((1, 15, 15)))
    assert geometry.grid == (1, 15, 15) and geometry.rf == (1.0, 2 * n + 1, 2 * n + 1)
    assert unit_centre(geometry) == (0.0, 7.0, 7.0)
    assert (erf > 0).sum().item() == (2 * n + 1) ** 2


def test_erf_of_an_even_map_is_the_mean_of_its_two_middle_units_per_axis():
    model = box_stack(2)
    clips = torch.randn(4, 3, 1, 16, 16, dtype=torch.float64)
    erf = effective_receptive_field(model, clips, "1")[0]  # output 16 x 16: centre = mean of rows/cols 7 and 8
    row = np.zeros(16)
    for centre in (7, 8):
        row[centre - 2: centre + 3] += trinomial(2) / 2
    np.testing.assert_allclose(erf.numpy(), np.outer(row, row), atol=1e-12)
    assert unit_centre(layer_geometry(model, Geometry.of_input((1, 16, 16))))[1:] == (7.5, 7.5)


def test_a_strided_stack_looks_up_and_left_of_the_frame_centre():
    # conv s2 then conv s1 on 16 px: an 8 x 8 map whose position i looks at input 2 i; RF 3 + 2 * 2 = 7
    model = box_stack(2, strides=(2, 1))
    geometry = layer_geometry(model, Geometry.of_input((1, 16, 16)))
    assert geometry.grid == (1, 8, 8) and geometry.rf[1:] == (7, 7) and geometry.jump[1:] == (2, 2)
    assert unit_centre(geometry)[1:] == (7.0, 7.0)  # units 3 and 4 look at 6 and 8: not the frame's 7.5
    erf = effective_receptive_field(model, torch.randn(2, 3, 1, 16, 16, dtype=torch.float64), "1")[0]
    rows = torch.nonzero(erf.sum(1)).flatten().tolist()
    assert rows == list(range(6 - 3, 8 + 4))  # the union of the two units' 7-pixel fields
    assert erf_square(erf, 1.0, unit_centre(geometry)[1:]).side == 9
    # centred on the frame instead, the square must grow one more step to hold it all
    assert erf_square(erf, 1.0).side == 10


def test_the_erf_never_leaves_the_theoretical_rf_of_a_trained_like_c2d():
    torch.manual_seed(0)
    model = build_model(arch="c2d", depth=18, width=8, num_classes=2, nonlocal_blocks="none",
                        conv1_stride=(1, 2, 2), pool1=False, pool2=False, dropout=0.0).double().eval()
    clips = torch.randn(8, 3, 2, 56, 56, dtype=torch.float64)
    geometries = theoretical_rf(model, clips.shape[1:])
    for stage in ("res2", "res3"):
        geometry = geometries[stage]
        erf = effective_receptive_field(model, clips, stage).sum(0)  # (56, 56)
        middle = centre_indices(geometry.grid[1])  # the same on both spatial axes
        lo, hi = geometry.field([0, middle[0], 0])[1][0], geometry.field([0, middle[-1], 0])[1][1]
        inside = torch.zeros(56, dtype=torch.bool)
        inside[max(0, math.ceil(lo)): min(56, math.floor(hi) + 1)] = True
        rows, cols = erf.sum(1) > 0, erf.sum(0) > 0
        assert not rows[~inside].any() and not cols[~inside].any(), stage
        if lo >= 0 and hi < 56:  # the field fits: its edge rows are reached
            assert rows[math.ceil(lo)] and rows[math.floor(hi)], stage


def test_theoretical_rf_matches_the_stage_outputs_and_the_known_resnet18_figures():
    # ResNet-18 with the paper's stem (conv1 7x7/2, max-pool 3x3/2): 43, 99, 211, 435 pixels at res2..res5
    model = build_model(arch="c2d", depth=18, width=8, num_classes=2, nonlocal_blocks="none",
                        conv1_stride=(1, 2, 2), pool1=True, pool2=False, dropout=0.0).eval()
    geometries = theoretical_rf(model, (1, 112, 112))
    assert [g.rf[1] for g in geometries.values()] == [43, 99, 211, 435]
    assert [g.jump[1] for g in geometries.values()] == [4, 8, 16, 32]
    outputs = dict(model.stage_outputs(torch.zeros(1, 3, 1, 112, 112)))
    assert all(g.grid == tuple(outputs[s].shape[2:]) for s, g in geometries.items())
    assert [g.grid[1:] for g in geometries.values()] == [(28, 28), (14, 14), (7, 7), (4, 4)]
    # the demo's backbone and clips: res5 is one position looking at the top-left pixel, not the centre
    demo = build_model(arch="c2d", depth=18, width=16, num_classes=2, nonlocal_blocks="none",
                       conv1_stride=(1, 2, 2), pool1=False, pool2=False, dropout=0.0)
    res5 = theoretical_rf(demo, (3, 4, 16, 16))["res5"]
    assert res5.grid == (4, 1, 1) and unit_centre(res5) == (1.5, 0.0, 0.0)
    # I3D's 3x3x3 kernels reach across frames; outputs agree with the grid there too
    i3d = build_model(arch="i3d_3x3x3", depth=18, width=8, num_classes=2, nonlocal_blocks="none",
                      conv1_stride=(1, 2, 2), pool1=False, pool2=True, dropout=0.0).eval()
    geometries = theoretical_rf(i3d, (8, 32, 32))
    outputs = dict(i3d.stage_outputs(torch.zeros(1, 3, 8, 32, 32)))
    assert all(g.grid == tuple(outputs[s].shape[2:]) for s, g in geometries.items())
    assert geometries["res2"].rf[0] > 1 and geometries["res5"].rf[0] > geometries["res2"].rf[0]


@pytest.mark.parametrize("block,mode,axes", [("nonlocal", "spacetime", (0, 1, 2)), ("nonlocal", "space", (1, 2)),
                                             ("nonlocal", "time", (0,)), ("global_context", None, (0, 1, 2)),
                                             ("squeeze_excitation", None, (0, 1, 2))])
def test_an_inserted_block_makes_the_rf_global_along_the_axes_it_mixes(block, mode, axes):
    nl = {"mode": mode} if mode else {}
    model = build_model(arch="c2d", depth=18, width=8, num_classes=2, nonlocal_blocks={"res3": [0]}, block=block,
                        nl=nl, conv1_stride=(1, 2, 2), pool1=False, pool2=False, dropout=0.0)
    geometries = theoretical_rf(model, (4, 32, 32))
    assert all(not math.isinf(r) for r in geometries["res2"].rf[1:])
    for stage in ("res3", "res4", "res5"):
        assert tuple(a for a, r in enumerate(geometries[stage].rf) if math.isinf(r)) == axes


def test_layer_geometry_refuses_a_layer_it_does_not_know():
    with pytest.raises(TypeError, match="no rule for Upsample"):
        layer_geometry(nn.Sequential(nn.Conv3d(3, 3, 1), nn.Upsample(scale_factor=2)), Geometry.of_input((1, 8, 8)))
    with pytest.raises(TypeError, match="VideoResNet"):
        theoretical_rf(nn.Conv3d(3, 3, 1), (1, 8, 8))


# --- the centred square ---


def test_centred_square_of_hand_made_maps():
    one_hot = torch.zeros(7, 7)
    one_hot[3, 3] = 1.0
    square = erf_square(one_hot, 0.5)
    assert (square.side, square.area, square.mass) == (1, 1 / 49, 1.0)
    uniform = torch.ones(7, 7)
    assert erf_square(uniform, 0.5).side == 5 and erf_square(uniform, 0.5).area == 25 / 49  # 9/49 < 0.5 <= 25/49
    assert erf_square(uniform, 0.99).side == 7 and erf_square(uniform, 0.99).area == 1.0
    assert erf_square(uniform, 9 / 49).side == 3  # reaching the share exactly is enough
    # an even map's middle lies between pixels: even sides 2, 4, 6, 8
    assert [erf_square(torch.ones(8, 8), t).side for t in (0.05, 0.2, 0.5, 1.0)] == [2, 4, 6, 8]
    # centred on a corner: the squares grow past the edges, their area counted inside the map
    corner = erf_square(torch.ones(4, 4), 0.5, centre=(0, 0))
    assert (corner.side, corner.area) == (5, 9 / 16)
    # mass far from the centre needs a large square even when it is concentrated (erf_area would say 1/64)
    far = torch.zeros(8, 8)
    far[0, 0] = 1.0
    assert erf_square(far, 0.5).side == 8
    with pytest.raises(ValueError, match="share"):
        erf_square(uniform, 0.0)
    with pytest.raises(ValueError, match="one frame"):
        erf_square(torch.ones(2, 7, 7), 0.5)
    with pytest.raises(ValueError, match="half-way"):
        erf_square(uniform, 0.5, centre=(3.25, 3))


def get_rectangle(data: np.ndarray, thresh: float):
    """RepLKNet's analyze_erf.py rule, as its code reads: squares of side 3, 5, ... around (h // 2, w // 2),
    the first whose mass is strictly above `thresh`; None when none below the whole map is."""
    h, w = data.shape
    for i in range(1, h // 2):
        if data[h // 2 - i: h // 2 + 1 + i, w // 2 - i: w // 2 + 1 + i].sum() / data.sum() > thresh:
            return i * 2 + 1, (i * 2 + 1) / h * (i * 2 + 1) / w
    return None


def test_erf_squares_reproduce_replknet_where_its_rule_answers():
    yy, xx = np.meshgrid(np.arange(31.0), np.arange(31.0), indexing="ij")
    scores = 50 * np.exp(-((yy - 15) ** 2 + (xx - 15) ** 2) / (2 * 4.0**2))  # a summed-gradient-like blob
    data = replknet_scores(torch.from_numpy(scores))
    assert data.max().item() == 1.0
    ours = erf_squares(data)
    assert [s.share for s in ours] == list(REPLKNET_SHARES)
    for square in ours:
        side, area = get_rectangle(data.numpy(), square.share)
        assert (square.side, square.area) == (side, pytest.approx(area))
    sides = [s.side for s in ours]
    assert sides == sorted(sides) and sides[0] < sides[-1]


def test_noise_clips_are_seeded_and_batching_does_not_change_the_erf():
    a, b = noise_clips(5, (3, 2, 12, 12), seed=3), noise_clips(5, (3, 2, 12, 12), seed=3)
    assert a.shape == (5, 3, 2, 12, 12) and torch.equal(a, b)
    assert not torch.equal(a, noise_clips(5, (3, 2, 12, 12), seed=4))
    assert noise_clips(2000, (1, 1, 4, 4), mean=0.5, std=0.1).std().item() == pytest.approx(0.1, rel=0.05)
    torch.manual_seed(0)
    model = build_model(arch="c2d", depth=18, width=4, num_classes=2, nonlocal_blocks="none",
                        conv1_stride=(1, 2, 2), pool1=False, pool2=False, dropout=0.0).double().eval()
    clips = noise_clips(10, (3, 2, 16, 16), dtype=torch.float64)
    whole = effective_receptive_field(model, clips, "res3", batch_size=64)
    torch.testing.assert_close(effective_receptive_field(model, clips, "res3", batch_size=3), whole)
    with pytest.raises(ValueError, match="batch_size"):
        effective_receptive_field(model, clips, "res3", batch_size=0)


def test_the_temporal_residual_control_reaches_two_more_frames_per_block():
    """block=temporal_residual (the convolutional control that mixes frames: a residual block with I3D's 3x3x3
    kernel) widens the temporal RF by its kernel, where a non-local block makes it global; it starts as the
    identity, and torchvision networks refuse it as they refuse the residual control."""
    plain = build_model(arch="c2d", depth=18, width=8, num_classes=2, nonlocal_blocks="none",
                        conv1_stride=(1, 2, 2), pool1=False, pool2=False, dropout=0.0).eval()
    model = build_model(arch="c2d", depth=18, width=8, num_classes=2, nonlocal_blocks={"res3": [1], "res4": [1]},
                        block="temporal_residual", conv1_stride=(1, 2, 2), pool1=False, pool2=False, dropout=0.0).eval()
    rf = {stage: g.rf for stage, g in theoretical_rf(model, (8, 32, 32)).items()}
    assert [r[0] for r in rf.values()] == [1, 3, 5, 5] and not any(math.isinf(r) for rs in rf.values() for r in rs)
    assert model.stages["res3"].temporal_residual1.conv1.kernel_size == (3, 3, 3)
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if "temporal_residual" not in k})
    x = torch.randn(2, 3, 8, 32, 32)
    torch.testing.assert_close(model(x), plain(x))  # a fresh control block changes nothing
    with pytest.raises(ValueError, match="block='temporal_residual' adds this package's own C2D residual blocks"):
        build_model(arch="torchvision:r3d_18", nonlocal_blocks="res4", block="temporal_residual")
