"""Backbones: placement presets, the paper's shapes and cost ratios, inflation, inserted blocks."""

from __future__ import annotations

import pytest
import torch

from nlstudy.blocks import NonLocalBlock
from nlstudy.models import build_model, resolve_placement
from nlstudy.models.profile import model_facts
from nlstudy.models.resnet import inflated_blocks

PAPER_CLIP = (3, 32, 224, 224)


@pytest.mark.parametrize("preset,depth,positions", [
    ("none", 50, []),
    ("1-block", 50, ["res4.4"]),
    ("1-block", 101, ["res4.21"]),
    ("5-block", 50, ["res3.1", "res3.3", "res4.1", "res4.3", "res4.5"]),
    ("5-block", 101, ["res3.1", "res3.3", "res4.6", "res4.13", "res4.20"]),
    ("10-block", 50, [f"res3.{i}" for i in range(4)] + [f"res4.{i}" for i in range(6)]),
    ("10-block", 101, [f"res3.{i}" for i in range(4)] + [f"res4.{i}" for i in (1, 5, 9, 13, 17, 21)]),
    ("res2", 50, ["res2.1"]),
    ("res3", 50, ["res3.2"]),
    ("res4", 50, ["res4.4"]),
    ("res5", 50, ["res5.1"]),
    ("res4", 18, ["res4.0"]),
])
def test_presets_put_blocks_where_the_paper_does(preset, depth, positions):
    with torch.device("meta"):
        model = build_model(depth=depth, nonlocal_blocks=preset)
    assert [name for name, _ in model.inserted_blocks()] == positions
    assert all(isinstance(block, NonLocalBlock) for _, block in model.inserted_blocks())


def test_explicit_placement_map():
    assert resolve_placement({"res4": [5, 1, 3], "res3": [1, 3]}, 50) == {"res4": [1, 3, 5], "res3": [1, 3]}
    with pytest.raises(ValueError, match=r"res3 has 4 residual blocks at depth 50 \(indices 0-3\), no block 4"):
        resolve_placement({"res3": [4]}, 50)
    with pytest.raises(ValueError, match=r"res3 has 2 residual blocks at depth 18 \(indices 0-1\), no block 3"):
        resolve_placement("5-block", 18)
    with pytest.raises(ValueError, match="unknown stage 'res6'; valid stages: res2, res3, res4, res5"):
        resolve_placement({"res6": [0]}, 50)
    with pytest.raises(ValueError, match="valid choices: 'none', '1-block', '5-block', '10-block', 'res2'"):
        resolve_placement("2-block", 50)
    with pytest.raises(ValueError, match="lists an index twice"):
        resolve_placement({"res4": [1, 1]}, 50)


def test_paper_table1_feature_map_sizes():
    facts = model_facts({"depth": 50, "nonlocal_blocks": "5-block"}, PAPER_CLIP)
    assert facts["stage_thw"] == {"res2": "8x56x56", "res3": "4x28x28", "res4": "4x14x14", "res5": "4x7x7"}
    assert facts["nl_thw"] == ["4x28x28"] * 2 + ["4x14x14"] * 3
    assert facts["nl_count"] == 5
    assert facts["input_shape"] == "3x32x224x224"


def test_resnet50_c2d_parameter_count():
    # torchvision's 2-d ResNet-50 has 25.56M parameters with 1000 classes; C2D with 400 classes has
    # the same convolutions (1 x k x k kernels) and a smaller classifier: 25.56M - 600 x 2049
    assert model_facts({"depth": 50}, PAPER_CLIP)["params"] == 25_557_032 - 600 * 2049


def test_table2e_params_and_flops_relative_to_c2d():
    """The paper's Table 2e (ResNet-101, 32-frame clips): params / FLOPs relative to C2D, printed to one
    decimal. The released code pools x before phi/g (subsample_order=before); that order gives 1.2x."""
    base = model_facts({"depth": 101}, PAPER_CLIP)

    def ratios(**spec):
        facts = model_facts({"depth": 101, **spec}, PAPER_CLIP)
        return facts["params"] / base["params"], facts["flops_per_clip"] / base["flops_per_clip"]

    paper = {  # (params, FLOPs), Table 2e
        "i3d_3x3x3": (1.5, 1.8),
        "i3d_3x1x1": (1.2, 1.5),
        "nl_c2d_5": (1.2, 1.2),
    }
    ours = {
        "i3d_3x3x3": ratios(arch="i3d_3x3x3"),
        "i3d_3x1x1": ratios(arch="i3d_3x1x1"),
        "nl_c2d_5": ratios(nonlocal_blocks="5-block", nl={"subsample_order": "before"}),
    }
    for name, (p, f) in paper.items():
        assert ours[name][0] == pytest.approx(p, abs=0.08), (name, ours[name])
        assert ours[name][1] == pytest.approx(f, abs=0.08), (name, ours[name])
    # and the ordering the table shows: NL C2D is the cheapest of the three in FLOPs
    assert ours["nl_c2d_5"][1] < ours["i3d_3x1x1"][1] < ours["i3d_3x3x3"][1]


def test_i3d_inflates_the_caffe2_blocks():
    assert inflated_blocks((3, 4, 6, 3)) == {
        "res2": [True, True, True],
        "res3": [True, False, True, False],
        "res4": [True, False, True, False, True, False],
        "res5": [False, True, False],
    }
    with torch.device("meta"):
        c2d = build_model(depth=50)
        i3d_first = build_model(depth=50, arch="i3d_3x1x1")
        i3d_middle = build_model(depth=50, arch="i3d_3x3x3")
    assert all(m.kernel_size[0] == 1 for m in c2d.modules() if isinstance(m, torch.nn.Conv3d))
    assert i3d_first.stem[0].kernel_size == (5, 7, 7)
    assert i3d_first.stages["res3"][0].conv1.kernel_size == (3, 1, 1) and i3d_first.stages["res3"][1].conv1.kernel_size == (1, 1, 1)
    assert i3d_middle.stages["res3"][0].conv2.kernel_size == (3, 3, 3) and i3d_middle.stages["res3"][0].conv1.kernel_size == (1, 1, 1)
    assert i3d_middle.stages["res5"][1].conv2.kernel_size == (3, 3, 3) and i3d_middle.stages["res5"][0].conv2.kernel_size == (1, 3, 3)


@pytest.mark.parametrize("block", ["nonlocal", "residual", "global_context", "squeeze_excitation"])
@pytest.mark.parametrize("depth", [18, 50])
def test_inserted_blocks_leave_the_network_function_unchanged_at_init(block, depth):
    kwargs = dict(depth=depth, width=4, num_classes=7, conv1_stride=(1, 2, 2), pool1=False, pool2=False)
    torch.manual_seed(0)
    plain = build_model(**kwargs).eval()
    with_blocks = build_model(**kwargs, nonlocal_blocks={"res3": [0], "res4": [1]}, block=block).eval()
    missing, unexpected = with_blocks.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.split(".")[1].startswith(block) for k in missing)
    clip = torch.randn(2, 3, 4, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(with_blocks(clip), plain(clip))
    assert [n for n, _ in with_blocks.inserted_blocks()] == ["res3.0", "res4.1"]


@pytest.mark.parametrize("arch,depth", [(a, d) for a in ("c2d", "i3d_3x1x1", "i3d_3x3x3") for d in (18, 34, 50)
                                        if not (a == "i3d_3x1x1" and d < 50)])
def test_small_clips_give_logits(arch, depth):
    model = build_model(arch=arch, depth=depth, width=4, num_classes=5, nonlocal_blocks="1-block",
                        conv1_stride=(1, 2, 2), pool1=False, pool2=False)
    assert model(torch.randn(2, 3, 4, 16, 16)).shape == (2, 5)


def test_stage_outputs_run_the_forward_pass_stage_by_stage():
    torch.manual_seed(0)
    model = build_model(depth=18, width=4, num_classes=5, nonlocal_blocks={"res3": [0]}, conv1_stride=(1, 2, 2),
                        pool1=False).eval()
    clip = torch.randn(2, 3, 4, 16, 16)
    with torch.no_grad():
        outs = list(model.stage_outputs(clip))
        logits = model(clip)
    # stem 4x8x8; res2 keeps it; pool2 halves time (3x1x1, stride 2); res3..res5 halve space
    assert [(name, tuple(out.shape)) for name, out in outs] == [
        ("res2", (2, 4, 4, 8, 8)), ("res3", (2, 8, 2, 4, 4)), ("res4", (2, 16, 2, 2, 2)), ("res5", (2, 32, 2, 1, 1)),
        ("logits", (2, 5)),
    ]
    assert torch.equal(outs[-1][1], logits)
    with torch.no_grad():
        assert torch.equal(model.features(clip), outs[3][1])
        assert torch.equal(outs[0][1], model.stages["res2"](model.stem(clip)))  # res2's output is the one before pool2

    def must_not_run(*_):
        raise AssertionError("res3 ran although the caller stopped after res2")

    model.stages["res3"].register_forward_hook(must_not_run)
    with torch.no_grad():
        name, _ = next(model.stage_outputs(clip))  # the stages run lazily
    assert name == "res2"


def test_options_reach_every_block():
    with torch.device("meta"):
        model = build_model(depth=50, nonlocal_blocks="5-block",
                            nl={"pairwise": "dot_product", "mode": "space", "inter_ratio": 0.25, "subsample": False})
    blocks = [b for _, b in model.inserted_blocks()]
    assert {b.pairwise for b in blocks} == {"dot_product"} and {b.mode for b in blocks} == {"space"}
    assert [b.inter_channels for b in blocks] == [128, 128, 256, 256, 256]
    assert {b.subsample_kernel for b in blocks} == {None}


def test_bad_options_fail_with_the_key():
    with pytest.raises(TypeError, match="unknown backbone option"):
        build_model(dept=50)
    with pytest.raises(TypeError, match="unknown nl option"):
        build_model(nl={"pairwsie": "gaussian"})
    with pytest.raises(ValueError, match="model.backbone.arch"):
        build_model(arch="r2plus1d")
    with pytest.raises(ValueError, match="i3d_3x1x1 inflates the first 1x1 conv of a bottleneck"):
        build_model(arch="i3d_3x1x1", depth=18)
    with pytest.raises(ValueError, match="model.backbone.nl: .*pools across frames"):
        build_model(nonlocal_blocks="1-block", nl={"mode": "space", "subsample": "2x2x2"})


def test_block_positions_are_the_stages_record_and_the_keys_stay_those_checkpoints_hold():
    import copy

    model = build_model(depth=18, width=4, num_classes=3, nonlocal_blocks={"res3": [0], "res4": [1]})
    assert isinstance(model.stages, torch.nn.ModuleDict) and list(model.stages) == ["res2", "res3", "res4", "res5"]
    assert [name for name, _ in model.named_children()] == ["stem", "stages", "pool2", "dropout", "fc"]
    # the keys saved checkpoints (best.pt, warm starts, runs/) hold: the stages by their own names
    # (tests/test_models_stage_keys.py checks them against a file the code before the ModuleDict wrote)
    keys = list(model.state_dict())
    assert "res3.nonlocal0.theta.weight" in keys or any(k.startswith("res3.nonlocal0.") for k in keys)
    assert keys.index("res3.1.conv1.weight") > max(i for i, k in enumerate(keys) if k.startswith("res3.nonlocal0."))
    # a child whose name looks like an inserted block's is not one: positions are data, not parsed names
    model.stages["res5"].add_module("nonlocal7", torch.nn.Identity())
    assert [p for p, _ in model.inserted_blocks()] == ["res3.0", "res4.1"]
    assert [p for p, _ in copy.deepcopy(model).inserted_blocks()] == ["res3.0", "res4.1"]  # the record travels
    assert dict(model.inserted_blocks())["res4.1"] is model.stages["res4"].nonlocal1
