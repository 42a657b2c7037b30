"""Analysis: attention maps from forward hooks, GCNet's query dependence, the effective receptive field."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from nlstudy.analysis.attention import (
    attention_maps,
    grid_to_input_box,
    grid_to_input_map,
    query_dependence,
    query_index,
    query_map,
    top_positions,
)
from nlstudy.analysis.receptive_field import effective_receptive_field, erf_area, erf_by_stage, temporal_spread
from nlstudy.blocks import NonLocalBlock
from nlstudy.blocks.context import GlobalContextBlock
from nlstudy.choices import MODES, PAIRWISE
from nlstudy.models import build_model
from nlstudy.models.stage_keys import module_name, saved_name

CLIPS = (2, 3, 4, 16, 16)  # (B, 3, T, H, W)


def tiny_c2d(nonlocal_blocks, **fields):
    """C2D ResNet-18 of width 8 that keeps the clip's frames: res3 sees 4x4x4, res4 4x2x2."""
    return build_model(arch="c2d", depth=18, width=8, num_classes=2, nonlocal_blocks=nonlocal_blocks,
                       conv1_stride=(1, 2, 2), pool1=False, pool2=False, dropout=0.0, **fields)


def no_hooks_left(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


# --- attention maps ---


@pytest.mark.parametrize("pairwise,mode", list(itertools.product(PAIRWISE, MODES)))
def test_attention_maps_capture_every_block_in_forward_order(pairwise, mode):
    torch.manual_seed(0)
    model = tiny_c2d({"res3": [0], "res4": [0]}, nl={"pairwise": pairwise, "mode": mode}).eval()
    clips = torch.randn(CLIPS)
    seen = {}  # the test's own hooks: each block's real input and output

    def keep(name):
        def hook(module, args, out):
            seen[name] = (args[0], out)
        return hook

    for name, m in model.named_modules():
        if isinstance(m, NonLocalBlock):
            m.register_forward_hook(keep(saved_name(name)))

    records = attention_maps(model, clips)

    names = [saved_name(name) for name, m in model.named_modules() if isinstance(m, NonLocalBlock)]
    assert [r.name for r in records] == names == ["res3.nonlocal0", "res4.nonlocal0"]
    pooled = {"spacetime": lambda t, h, w: (t, h // 2, w // 2), "space": lambda t, h, w: (t, h // 2, w // 2),
              "time": lambda t, h, w: (t, h, w)}[mode]
    for record, grid in zip(records, [(4, 4, 4), (4, 2, 2)]):
        x, out = seen[record.name]
        block = model.get_submodule(module_name(record.name))
        assert record.kind == "nonlocal"
        assert record.query_grid == tuple(x.shape[2:]) == grid
        assert record.key_grid == pooled(*grid)
        assert record.weights.shape == (2, math.prod(grid), math.prod(record.key_grid))
        assert torch.equal(record.weights, block.attention(x))
        assert torch.equal(record.inputs, x.flatten(2).transpose(1, 2))  # (B, N, C)
        assert torch.equal(record.outputs, out.flatten(2).transpose(1, 2))
        if pairwise in ("gaussian", "embedded_gaussian"):
            torch.testing.assert_close(record.weights.sum(-1), torch.ones(2, math.prod(grid)))


def test_attention_maps_remove_their_hooks_even_when_the_forward_raises():
    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    model = nn.Sequential(NonLocalBlock(8, 3), Boom()).eval()
    with pytest.raises(RuntimeError, match="boom"):
        attention_maps(model, torch.randn(1, 8, 2, 4, 4))
    assert no_hooks_left(model)


def test_global_context_blocks_only_when_asked():
    torch.manual_seed(0)
    model = tiny_c2d({"res3": [0]}, block="global_context").eval()
    clips = torch.randn(CLIPS)
    assert attention_maps(model, clips) == []
    (record,) = attention_maps(model, clips, include_context=True)
    assert (record.name, record.kind, record.query_grid, record.key_grid) == (
        "res3.global_context0", "global_context", (4, 4, 4), (4, 4, 4))
    assert record.weights.shape == (2, 64, 64)
    assert query_dependence(record.weights).value == pytest.approx(0.0, abs=1e-6)


def test_query_helpers_follow_the_grids():
    torch.manual_seed(0)
    model = tiny_c2d({"res3": [0]}).eval()
    (record,) = attention_maps(model, torch.randn(CLIPS))
    assert query_index((4, 4, 4), (0, 0, 0)) == 0
    assert query_index((4, 4, 4), (2, 1, 3)) == 2 * 16 + 1 * 4 + 3
    with pytest.raises(ValueError, match="not on the grid"):
        query_index((4, 4, 4), (4, 0, 0))

    position = (2, 1, 3)
    heat = query_map(record, 1, position)  # (T', H', W')
    assert heat.shape == (4, 2, 2)
    assert torch.equal(heat.flatten(), record.weights[1, query_index(record.query_grid, position)])
    top = top_positions(record, 1, position, 3)
    assert [w for _, w in top] == sorted((w for _, w in top), reverse=True)
    for key, weight in top:
        assert heat[key].item() == pytest.approx(weight)
    assert top[0][1] == pytest.approx(heat.max().item())


def test_grid_positions_map_to_input_boxes():
    # res3 of the tiny C2D: a 4x4x4 grid on a 4x16x16 clip, each position a 1x4x4 box
    assert grid_to_input_box((2, 1, 3), (4, 4, 4), CLIPS) == ((2, 3), (4, 8), (12, 16))
    assert grid_to_input_box((0, 1, 1), (1, 2, 2), (4, 16, 16)) == ((0, 4), (8, 16), (8, 16))
    assert grid_to_input_box((2,), (3,), (7,)) == ((4, 7),)  # uneven: 7 cells over 3 -> 2, 2, 3

    heat = torch.arange(4.0).reshape(1, 2, 2)  # (T', H', W')
    spread = grid_to_input_map(heat, (2, 4, 6))  # (T, H, W)
    assert spread.shape == (2, 4, 6)
    for t, y, x in itertools.product(range(2), range(4), range(6)):
        owner = next(p for p in itertools.product(range(1), range(2), range(2))
                     if all(a <= c < b for (a, b), c in zip(grid_to_input_box(p, (1, 2, 2), (2, 4, 6)), (t, y, x))))
        assert spread[t, y, x] == heat[owner]


# --- query dependence ---


def brute_force_query_dependence(att: torch.Tensor) -> float:
    """The definition: mean over clips of the mean over i != j of 1 - cos(a_i, a_j)."""
    u = torch.nn.functional.normalize(att.double(), dim=-1)  # (B, N, K)
    cos = u @ u.transpose(1, 2)  # (B, N, N)
    n = att.shape[1]
    off = ~torch.eye(n, dtype=torch.bool)
    return float((1 - cos[:, off]).mean())


def test_query_dependence_matches_its_definition():
    torch.manual_seed(0)
    att = torch.rand(3, 20, 7)
    result = query_dependence(att)
    assert result.value == pytest.approx(brute_force_query_dependence(att), abs=1e-12)
    assert (result.n_positions, result.n_queries, result.sampled, result.skipped) == (20, 20, False, 0)
    assert float(result) == result.value


def test_uniform_attention_has_no_query_dependence():
    torch.manual_seed(0)
    block = NonLocalBlock(8, 3).double()  # embedded Gaussian
    nn.init.zeros_(block.theta.weight)
    nn.init.zeros_(block.theta.bias)  # theta = 0: every logit 0, every row uniform
    att = block.attention(torch.randn(2, 8, 2, 4, 4, dtype=torch.float64))
    assert query_dependence(att).value == pytest.approx(0.0, abs=1e-6)


def test_global_context_map_has_no_query_dependence():
    torch.manual_seed(0)
    shared = GlobalContextBlock(8, 3).attention(torch.randn(2, 8, 2, 4, 4))  # (B, N)
    att = shared.unsqueeze(1).expand(-1, shared.shape[1], -1)  # (B, N, N)
    assert query_dependence(att).value == pytest.approx(0.0, abs=1e-6)


def test_positional_attention_is_query_dependent():
    n = 12
    assert query_dependence(torch.eye(n).expand(2, n, n)).value == 1.0  # one-hot rows: orthogonal
    # a 1-d block on one-hot position codes whose theta . phi peaks at j = i
    block = NonLocalBlock(n, 1, inter_channels=n, subsample=False).double()
    with torch.no_grad():
        for conv in (block.theta, block.phi):
            conv.weight.copy_(3.0 * torch.eye(n).unsqueeze(-1))  # (C', C, 1)
            conv.bias.zero_()
    codes = torch.eye(n, dtype=torch.float64).unsqueeze(0)  # (B=1, C=n, L=n): position i has code e_i
    att = block.attention(codes)  # (1, n, n): softmax of 9 * [i == j]
    assert att.diagonal(dim1=1, dim2=2).min() > 0.9
    assert query_dependence(att).value > 0.95


def test_zero_rows_are_skipped_and_counted():
    att = torch.tensor([[[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]]])  # (1, 3, 2): the middle row has no direction
    result = query_dependence(att)
    assert result.skipped == 1
    assert result.value == 1.0  # the two rows left are orthogonal
    assert math.isnan(query_dependence(torch.zeros(2, 3, 4)).value)


def test_sampled_query_dependence_is_close_and_says_so():
    torch.manual_seed(0)
    att = torch.softmax(torch.randn(2, 400, 50), dim=-1)
    full = query_dependence(att)
    sampled = query_dependence(att, max_queries=100, seed=1)
    assert not full.sampled and full.n_queries == 400
    assert sampled.sampled and sampled.n_queries == 100 and sampled.n_positions == 400
    assert sampled.value == pytest.approx(full.value, rel=0.05)
    assert query_dependence(att, max_queries=100, seed=1).value == sampled.value  # the seed fixes the rows
    assert not query_dependence(att, max_queries=400).sampled


# --- effective receptive field ---


class LoneConv(nn.Module):
    """One 1x3x3 conv with positive weights, then a module that must never run (the ERF stops early)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 4, (1, 3, 3), padding=(0, 1, 1))
        nn.init.uniform_(self.conv.weight, 0.1, 1.0)

    def forward(self, x):
        x = self.conv(x)
        raise AssertionError("the forward pass should have stopped after the stage")


def test_erf_of_a_lone_conv_is_its_kernel_support():
    torch.manual_seed(0)
    model = LoneConv().eval()
    # the output grid is (4, 16, 16): every axis even, so the centre unit is the mean of frames 1-2, rows 7-8
    # and columns 7-8 (Luo et al.), whose 3x3 kernels reach rows and columns 6-9
    erf = effective_receptive_field(model, torch.randn(CLIPS), "conv")
    support = torch.zeros(4, 16, 16, dtype=torch.bool)
    support[1:3, 6:10, 6:10] = True
    assert erf.shape == (4, 16, 16)
    assert (erf[support] > 0).all() and (erf[~support] == 0).all()
    assert erf.sum().item() == pytest.approx(1.0)
    assert no_hooks_left(model)


def test_erf_leaves_the_model_as_it_was():
    torch.manual_seed(0)
    model = tiny_c2d({"res3": [0]}).eval()
    model.fc.requires_grad_(False)
    before = {name: p.requires_grad for name, p in model.named_parameters()}
    erf_by_stage(model, torch.randn(CLIPS))
    assert no_hooks_left(model)
    assert all(p.grad is None for p in model.parameters())
    assert {name: p.requires_grad for name, p in model.named_parameters()} == before
    assert not model.training
    with pytest.raises(ValueError, match="unknown stage 'res6'.*'res2'"):
        effective_receptive_field(model, torch.randn(CLIPS), "res6")


def test_nonlocal_block_spreads_the_erf_over_every_frame():
    torch.manual_seed(0)
    with_block = tiny_c2d({"res3": [0]}).double().eval()
    without = tiny_c2d("none").double().eval()
    without.load_state_dict({k: v for k, v in with_block.state_dict().items() if "nonlocal" not in k})
    clips = torch.randn(CLIPS, dtype=torch.float64)

    # a fresh block is the identity (its output BN is zero): the same ERF as without it
    plain = effective_receptive_field(without, clips, "res3")
    torch.testing.assert_close(effective_receptive_field(with_block, clips, "res3"), plain)
    # C2D's kernels are 1 in time: only the two centre frames (of 4) reach the centre unit
    spread = temporal_spread(plain)
    assert spread[0] == 0 and spread[3] == 0 and (spread[1:3] > 0).all()

    block = with_block.stages["res3"].nonlocal0
    with torch.no_grad():
        block.out_norm.weight.fill_(1.0)
        for conv in (block.theta, block.phi, block.g):
            conv.weight.normal_(std=0.5)
    spread = temporal_spread(effective_receptive_field(with_block, clips, "res3"))
    assert (spread > 0).all()  # the block attends over space-time: every frame counts
    assert spread.sum().item() == pytest.approx(1.0)


def test_c2d_erf_stays_in_the_centre_frames_at_every_stage():
    torch.manual_seed(0)
    model = tiny_c2d("none").double().eval()
    erfs = erf_by_stage(model, torch.randn(CLIPS, dtype=torch.float64))
    assert list(erfs) == ["res2", "res3", "res4", "res5"]
    for erf in erfs.values():
        assert erf.shape == (4, 16, 16)
        assert erf.sum().item() == pytest.approx(1.0)
        # 4 frames: the centre unit is the mean of frames 1 and 2, which C2D's temporal kernels of 1 keep apart
        spread = temporal_spread(erf)
        assert spread[0] == 0 and spread[3] == 0 and spread[1:3].sum().item() == pytest.approx(1.0)


def test_erf_area():
    n = 4 * 8 * 8
    one_hot = torch.zeros(4, 8, 8)
    one_hot[2, 3, 5] = 1.0
    assert erf_area(one_hot) == 1 / n
    uniform = torch.full((4, 8, 8), 1 / n)
    assert erf_area(uniform) == 0.5
    assert erf_area(uniform, share=0.25) == 0.25
    assert erf_area(uniform, share=1.0) == 1.0
    assert erf_area(torch.tensor([0.2, 0.5, 0.3]), share=0.5) == 1 / 3
    assert erf_area(torch.tensor([0.2, 0.5, 0.3]), share=0.6) == 2 / 3
    torch.manual_seed(0)
    erf = torch.rand(4, 8, 8) ** 4
    areas = [erf_area(erf, share) for share in (0.1, 0.3, 0.5, 0.7, 0.9, 1.0)]
    assert areas == sorted(areas)
    # a wider blob needs more positions for the same share
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    blob = lambda s: torch.exp(-((yy - 8) ** 2 + (xx - 8) ** 2) / (2 * s**2)).unsqueeze(0)  # noqa: E731
    assert erf_area(blob(1.0)) < erf_area(blob(3.0))
    with pytest.raises(ValueError, match="share"):
        erf_area(uniform, share=0.0)


def test_train_mode_is_reported():
    model = tiny_c2d({"res3": [0]})  # train mode: BatchNorm would use and update batch statistics
    with pytest.warns(UserWarning, match=r"model.eval\(\)"):
        attention_maps(model, torch.randn(CLIPS))
    with pytest.warns(UserWarning, match=r"model.eval\(\)"):
        effective_receptive_field(model, torch.randn(CLIPS), "res3")
