"""GCNet's query dependence on the attention maps and on the context term before fusion, against the shuffled
null, split by query type; maps built to be identical or independent; the context term's capture."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from nlstudy.analysis.attention import (
    BlockAttention,
    allowed_keys,
    attention_maps,
    evidence_queries,
    evidence_share,
    grid_to_input_box,
    query_dependence,
    shuffled_query_dependence,
)
from nlstudy.blocks import NonLocalBlock
from nlstudy.blocks.context import GlobalContextBlock
from nlstudy.choices import MODES, PAIRWISE
from nlstudy.models import build_model


def tiny(nonlocal_blocks, **fields):
    return build_model(arch="c2d", depth=18, width=8, num_classes=2, nonlocal_blocks=nonlocal_blocks,
                       conv1_stride=(1, 2, 2), pool1=False, pool2=False, dropout=0.0, **fields)


def awake(model):
    """Make every inserted block do something (a fresh one is the identity: its context term is zero)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, NonLocalBlock):
                if isinstance(m.out_norm, torch.nn.BatchNorm3d):
                    m.out_norm.weight.fill_(1.0)
                    m.out_norm.bias.normal_()
                else:
                    m.out_proj.weight.normal_()
            if isinstance(m, GlobalContextBlock):
                m.transform[-1].weight.normal_()
                m.transform[-1].bias.normal_()
    return model


@pytest.mark.parametrize("pairwise,mode,zero_init", [(p, m, "norm") for p, m in itertools.product(PAIRWISE, MODES)]
                         + [("embedded_gaussian", "spacetime", "conv")])
def test_the_context_term_is_what_the_block_adds_to_its_input(pairwise, mode, zero_init):
    """outputs = inputs + context: the term is the block's BN(W_z y) before the fusion. If the block's layers
    are renamed or fused (CONTEXT_MODULE), this fails."""
    torch.manual_seed(0)
    model = awake(tiny({"res3": [0]}, nl={"pairwise": pairwise, "mode": mode, "zero_init": zero_init})).eval()
    (record,) = attention_maps(model, torch.randn(2, 3, 4, 16, 16))
    assert record.context is not None and record.context.shape == record.inputs.shape
    assert record.context.abs().max() > 0.1 and record.mode == mode
    torch.testing.assert_close(record.inputs + record.context, record.outputs)


def test_a_global_context_block_adds_one_context_to_every_position():
    torch.manual_seed(0)
    model = awake(tiny({"res3": [0]}, block="global_context")).eval()
    (record,) = attention_maps(model, torch.randn(2, 3, 4, 16, 16), include_context=True)
    assert record.kind == "global_context" and record.context.shape == record.inputs.shape
    torch.testing.assert_close(record.inputs + record.context, record.outputs)
    assert query_dependence(record.context).value == pytest.approx(0.0, abs=1e-9)
    assert query_dependence(record.weights).value == pytest.approx(0.0, abs=1e-9)
    assert shuffled_query_dependence(record.weights).value > 0  # its one map is not uniform: there was room
    assert torch.equal(allowed_keys(record), torch.ones(4 * 4 * 4, 4 * 4 * 4, dtype=torch.bool))


# --- the shuffled null ---


def permuted_query_dependence(att: torch.Tensor, draws: int, allowed: torch.Tensor | None = None) -> float:
    """The null by brute force: each row's weights put on its allowed keys in a random order, `draws` times."""
    generator = torch.Generator().manual_seed(1)
    values = []
    for _ in range(draws):
        shuffled = torch.zeros_like(att)
        for b, i in itertools.product(range(att.shape[0]), range(att.shape[1])):
            keys = torch.arange(att.shape[2]) if allowed is None else torch.nonzero(allowed[i]).flatten()
            order = keys[torch.randperm(len(keys), generator=generator)]
            shuffled[b, i, order] = att[b, i, keys]
        values.append(query_dependence(shuffled).value)
    return sum(values) / draws


def test_the_shuffled_null_is_the_expectation_of_shuffling_each_query():
    torch.manual_seed(0)
    att = torch.softmax(2 * torch.randn(2, 12, 9, dtype=torch.float64), dim=-1)
    assert shuffled_query_dependence(att).value == pytest.approx(permuted_query_dependence(att, 400), abs=0.004)
    # a space-mode block's structure: each query only attends to the keys of its own frame
    record = BlockAttention("b", (3, 2, 2), (3, 1, 1), torch.zeros(1, 12, 3), torch.zeros(1, 12, 1),
                            torch.zeros(1, 12, 1), mode="space")
    allowed = allowed_keys(record)  # (12, 3): query (t, h, w) -> key (t, 0, 0)
    assert allowed.sum(1).tolist() == [1] * 12
    masked = torch.rand(2, 12, 3, dtype=torch.float64) * allowed
    assert shuffled_query_dependence(masked, allowed=allowed).value == pytest.approx(
        query_dependence(masked).value, abs=1e-12)  # one key each: nothing to shuffle
    time_record = BlockAttention("b", (4, 1, 3), (2, 1, 3), torch.zeros(1, 12, 6), torch.zeros(1, 12, 1),
                                 torch.zeros(1, 12, 1), mode="time")
    allowed = allowed_keys(time_record)  # the same pixel, either (pooled) frame
    assert allowed.sum(1).tolist() == [2] * 12
    masked = torch.rand(1, 12, 6, dtype=torch.float64) * allowed
    assert shuffled_query_dependence(masked, allowed=allowed).value == pytest.approx(
        permuted_query_dependence(masked, 300, allowed), abs=0.01)


def test_maps_built_to_be_identical_score_zero_against_a_positive_null():
    torch.manual_seed(0)
    row = torch.softmax(3 * torch.randn(40, dtype=torch.float64), dim=0)
    att = row.expand(2, 30, 40)
    assert query_dependence(att).value == pytest.approx(0.0, abs=1e-12)
    assert shuffled_query_dependence(att).value > 0.3
    # near-uniform and identical: both near zero, which is why a raw value cannot be read without its null
    flat = torch.softmax(0.01 * torch.randn(40, dtype=torch.float64), dim=0).expand(2, 30, 40)
    assert shuffled_query_dependence(flat).value < 1e-3


def test_maps_built_to_be_independent_score_their_null():
    torch.manual_seed(0)
    for temperature in (0.05, 1.0, 4.0):  # near-uniform to peaked: the null follows the entropy
        att = torch.softmax(temperature * torch.randn(3, 300, 60, dtype=torch.float64), dim=-1)
        observed, null = query_dependence(att).value, shuffled_query_dependence(att).value
        assert observed == pytest.approx(null, rel=0.03), temperature
    # one-hot rows on distinct keys: as query-dependent as it gets, and the null agrees (1 - 1/K)
    one_hot = torch.eye(50, dtype=torch.float64).expand(1, 50, 50)
    assert query_dependence(one_hot).value == 1.0
    assert shuffled_query_dependence(one_hot).value == pytest.approx(1 - 1 / 50)


def test_queries_select_rows_per_clip():
    torch.manual_seed(0)
    att = torch.rand(2, 10, 6, dtype=torch.float64)
    queries = torch.zeros(2, 10, dtype=torch.bool)
    queries[0, [1, 4, 7]] = True
    queries[1, [0, 9]] = True
    expected = (query_dependence(att[:1, [1, 4, 7]]).value + query_dependence(att[1:, [0, 9]]).value) / 2
    assert query_dependence(att, queries=queries).value == pytest.approx(expected, abs=1e-12)
    one = torch.zeros(2, 10, dtype=torch.bool)
    one[0, :3] = True  # clip 1 has no query selected and clip 0 three: only clip 0 counts
    assert query_dependence(att, queries=one).value == pytest.approx(query_dependence(att[:1, :3]).value)
    with pytest.raises(ValueError, match=r"queries must be a \(B, N\)"):
        query_dependence(att, queries=torch.ones(2, 9, dtype=torch.bool))
    nulls = shuffled_query_dependence(att, queries=queries).value
    expected = (shuffled_query_dependence(att[:1, [1, 4, 7]]).value + shuffled_query_dependence(att[1:, [0, 9]]).value)
    assert nulls == pytest.approx(expected / 2, abs=1e-12)


# --- evidence queries and where they look ---


def test_evidence_queries_follow_the_grid_footprints():
    mask = torch.zeros(2, 1, 16, 16, dtype=torch.bool)
    mask[0, 0, 5:9, 10:14] = True  # a 4x4 patch
    grid = (1, 4, 4)
    found = evidence_queries(mask, grid).reshape(2, *grid)
    for position in itertools.product(*map(range, grid)):
        (t0, t1), (y0, y1), (x0, x1) = grid_to_input_box(position, grid, (1, 16, 16))
        assert found[(0, *position)] == bool(mask[0, t0:t1, y0:y1, x0:x1].any())
    assert found[0].sum() == 4 and not found[1].any()  # rows 5-8 meet cells 1 and 2, columns 10-13 cells 2, 3
    # a grid that does not divide the frame: 16 pixels over 7 cells
    odd = evidence_queries(mask, (1, 7, 7)).reshape(2, 1, 7, 7)
    for position in itertools.product(range(1), range(7), range(7)):
        (t0, t1), (y0, y1), (x0, x1) = grid_to_input_box(position, (1, 7, 7), (1, 16, 16))
        assert odd[(0, *position)] == bool(mask[0, t0:t1, y0:y1, x0:x1].any())
    with pytest.raises(ValueError, match="mask must be"):
        evidence_queries(mask[0], grid)


def test_evidence_share_of_hand_built_maps():
    att = torch.tensor([[[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.25, 0.25, 0.25, 0.25]]])  # (1, 3, 4)
    keys = torch.tensor([[True, False, False, False]])
    assert evidence_share(att, keys).tolist() == pytest.approx([(0.5 + 0.0 + 0.25) / 3])
    first = torch.tensor([[True, False, False]])
    assert evidence_share(att, keys, first).tolist() == [0.5]
    assert math.isnan(evidence_share(att, keys, torch.zeros(1, 3, dtype=torch.bool)).item())
    signed = torch.tensor([[[-1.0, 1.0]]])  # dot-product weights can be negative: shares of |weight|
    assert evidence_share(signed, torch.tensor([[True, False]])).tolist() == [0.5]


def test_a_query_on_a_patch_of_a_real_block_attends_to_keys_on_patches():
    """A block whose embedded-Gaussian logits favour coloured keys: queries on the evidence put more weight
    there than a uniform map, and the split by query type runs on a real record."""
    torch.manual_seed(0)
    block = NonLocalBlock(3, 3, inter_channels=3, subsample=False).double()
    with torch.no_grad():
        for conv in (block.theta, block.phi):
            conv.weight.copy_(4.0 * torch.eye(3).reshape(3, 3, 1, 1, 1))
            conv.bias.zero_()
    clips = torch.zeros(2, 3, 1, 8, 8, dtype=torch.float64)
    clips[:, 0, 0, 1:3, 1:3] = 1.0  # red patches
    clips[:, 0, 0, 5:7, 5:7] = 1.0
    mask = clips.amax(1) > 0  # (B, T, H, W)
    att = block.attention(clips)  # (2, 64, 64)
    queries = evidence_queries(mask, (1, 8, 8))
    share = evidence_share(att, queries, queries)
    background = evidence_share(att, queries, ~queries)
    assert (share > 0.9).all() and (background < share).all()
    assert float(queries.float().mean()) == 8 / 64
    # every query on a patch sends its weight to the same 8 red keys: one map for all of them, far below the
    # null of their own (peaked) maps; the background's maps are uniform, and so is their null (no room)
    on_evidence = query_dependence(att, queries=queries).value
    assert on_evidence < 0.01 * shuffled_query_dependence(att, queries=queries).value
    assert shuffled_query_dependence(att, queries=~queries).value == pytest.approx(0.0, abs=1e-9)
