"""Blocks plugged into torchvision's networks (nlstudy.models.plugin): identity at insertion, torchvision's
state-dict keys, the meta device, placements per the network's stage sizes, model.backbone.arch=torchvision:*."""

from __future__ import annotations

import pytest
import torch
import torchvision.models as tvm
from torch import nn

from nlstudy.adapters.torch import BatchNorm
from nlstudy.blocks import NonLocalBlock
from nlstudy.blocks.context import GlobalContextBlock, SqueezeExcitationBlock
from nlstudy.models import TorchvisionClips, build_model, insert_nonlocal
from nlstudy.models.plugin import stage_sizes
from nlstudy.models.profile import model_facts

# tiny inputs: (network, input of the raw torchvision network)
NETS = [(tvm.video.r3d_18, (1, 3, 2, 16, 16)), (tvm.resnet18, (1, 3, 32, 32))]


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)


def randomised(net: nn.Module) -> nn.Module:
    """Random weights and BatchNorm statistics, eval mode: insertion must change no output."""
    torch.manual_seed(0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, BatchNorm):
                m.weight.uniform_(0.5, 1.5), m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1), m.running_var.uniform_(0.5, 1.5)
    return net.eval()


@pytest.mark.parametrize("make_net,shape", NETS, ids=["r3d_18", "resnet18"])
def test_inserted_blocks_start_as_the_identity_and_keep_torchvisions_keys(make_net, shape):
    net = randomised(make_net(weights=None, num_classes=5))
    checkpoint = net.state_dict()  # torchvision's keys; insertion leaves these tensors as they are
    x = torch.randn(shape)
    with torch.no_grad():
        before = net(x)
        insert_nonlocal(net, {"res3": [1], "res4": [0, 1]}, inter_ratio=0.25)
        after = net(x)
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)

    blocks = [m for m in net.modules() if isinstance(m, NonLocalBlock)]
    dim = len(shape) - 2
    assert len(blocks) == 3 and all(b.dim == dim and not b.training for b in blocks)
    assert blocks[0].subsample_kernel == ((1, 2, 2) if dim == 3 else (2, 2))
    assert blocks[0].inter_channels == 32  # layer2's 128 channels * 0.25
    assert [n for n, _ in net.layer3.named_children()] == ["0", "nonlocal0", "1", "nonlocal1"]
    # the old keys are unchanged; a torchvision checkpoint loads, missing only the new blocks
    new = set(net.state_dict()) - set(checkpoint)
    assert new and all(".nonlocal" in k for k in new)
    missing, unexpected = net.load_state_dict(checkpoint, strict=False)
    assert set(missing) == {k for k in new if not k.endswith("num_batches_tracked")} and not unexpected
    # the block is on the path: once it no longer outputs zeros, the logits move
    with torch.no_grad():
        blocks[0].out_norm.weight.fill_(1.0)
        assert not torch.allclose(net(x), before, atol=1e-4)


def test_the_comparison_blocks_plug_in_as_2d_blocks():
    x = torch.randn(1, 3, 1, 32, 32)
    plain = build_model(arch="torchvision:resnet18", num_classes=3).eval()
    for block, cls in (("global_context", GlobalContextBlock), ("squeeze_excitation", SqueezeExcitationBlock)):
        model = build_model(arch="torchvision:resnet18", num_classes=3, nonlocal_blocks="res4", block=block).eval()
        (position, inserted), = model.inserted_blocks()
        assert position == "res4.0" and isinstance(inserted, cls) and inserted.dim == 2
        plain.load_state_dict(model.state_dict(), strict=False)  # the same weights, no block
        with torch.no_grad():
            torch.testing.assert_close(model(x), plain(x), rtol=0, atol=1e-6)


def test_meta_device_big_networks_and_presets_per_stage_sizes():
    with torch.device("meta"):
        r50 = tvm.resnet50(weights=None)
        r152 = tvm.resnext101_32x8d(weights=None).to(torch.bfloat16)
    insert_nonlocal(r50, "5-block")
    positions = [f"{stage}.{i}" for stage, i in (("res3", 1), ("res3", 3), ("res4", 1), ("res4", 3), ("res4", 5))]
    assert [name for name, _ in TorchvisionClips(r50, "r50").inserted_blocks()] == positions
    assert all(p.is_meta for p in r50.parameters())
    insert_nonlocal(r152, "1-block")
    assert stage_sizes(r152) == (3, 4, 23, 3)
    block = r152.layer3.nonlocal21
    assert block.in_channels == 1024 and block.g.weight.is_meta and block.g.weight.dtype == torch.bfloat16
    with torch.device("meta"):
        model = build_model(arch="torchvision:resnet152", nonlocal_blocks={"res4": [35]})
    assert [name for name, _ in model.inserted_blocks()] == ["res4.35"]


def test_bad_placements_and_options_fail_in_one_line():
    with torch.device("meta"):  # no forward pass: shapes only
        net, image_net = tvm.video.r3d_18(weights=None), tvm.resnet18(weights=None)
    with pytest.raises(ValueError, match=r"res3 has 2 residual blocks in VideoResNet \(indices 0-1\), no block 3"):
        insert_nonlocal(net, "5-block")
    with pytest.raises(TypeError, match=r"unknown nl option\(s\) \['pairwse'\]; valid: "):
        insert_nonlocal(net, "res4", pairwse="dot_product")
    insert_nonlocal(net, "res4")
    with pytest.raises(ValueError, match="already has a nonlocal block at res4.0"):
        insert_nonlocal(net, {"res3": [1], "res4": [0]})
    assert len(list(net.layer2.children())) == 2  # nothing inserted by the failed call
    with pytest.raises(ValueError, match="model.backbone.nl: mode='space' needs dim=3, a video network's"):
        insert_nonlocal(image_net, "res4", mode="space")
    with pytest.raises(ValueError, match=r"model.backbone.nl: subsample='1x2x2': expected .* 2-d pooling kernel such as '2x2'"):
        insert_nonlocal(image_net, "none", subsample="1x2x2")
    with pytest.raises(TypeError, match="not a torchvision ResNet or video ResNet: no nn.Sequential layer1"):
        insert_nonlocal(nn.Sequential(nn.Conv2d(3, 3, 1)), "res4")
    with pytest.raises(ValueError, match="unknown model.backbone.arch 'torchvision:vgg16'; valid choices: 'c2d', .*'torchvision:r3d_18'"):
        build_model(arch="torchvision:vgg16")
    with pytest.raises(ValueError, match="block='residual' adds this package's own C2D residual blocks.*'nonlocal'"), \
            torch.device("meta"):
        build_model(arch="torchvision:r3d_18", nonlocal_blocks="res4", block="residual")


def test_build_model_wraps_torchvision_networks_as_clip_classifiers():
    model = build_model(arch="torchvision:r3d_18", num_classes=7, nonlocal_blocks="res3", dropout=0.5,
                        width=16, conv1_stride=(1, 2, 2), pool1=False)  # our backbone's fields: ignored here
    assert isinstance(model, TorchvisionClips) and model.dropout.p == 0.5 and model.fc.out_features == 7
    with torch.device("meta"):
        keys = set(tvm.video.r3d_18(weights=None, num_classes=7).state_dict())
    assert keys <= set(model.state_dict()) and all("layer2.nonlocal0." in k for k in set(model.state_dict()) - keys)
    clip = torch.randn(1, 3, 2, 16, 16)
    model.eval()
    with torch.no_grad():
        assert model(clip).shape == (1, 7)
        assert model.features(clip).shape == (1, 512, 1, 1, 1)

    image_model = build_model(arch="torchvision:resnet18", num_classes=3, dropout=0.0).eval()
    net = tvm.resnet18(weights=None, num_classes=3).eval()
    net.load_state_dict(image_model.state_dict())
    image = torch.randn(1, 3, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(image_model(image), net(image[:, :, 0]), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"torchvision:resnet18 is a 2-d network: it takes clips of one frame \(data.frames=1\), got 4"):
        image_model(torch.randn(1, 3, 4, 32, 32))


def test_model_facts_of_plugged_networks():
    facts = model_facts({"arch": "torchvision:r3d_18", "num_classes": 10, "nonlocal_blocks": "res3"}, (3, 4, 32, 32))
    assert facts["nl_positions"] == ["res3.0"] and facts["nl_thw"] == ["2x8x8"]
    assert facts["stage_thw"] == {"res2": "4x16x16", "res3": "2x8x8", "res4": "1x4x4", "res5": "1x2x2"}
    plain = model_facts({"arch": "torchvision:r3d_18", "num_classes": 10}, (3, 4, 32, 32))
    assert facts["params"] > plain["params"] and facts["flops_per_clip"] > plain["flops_per_clip"] > 0
    facts = model_facts({"arch": "torchvision:resnet50", "nonlocal_blocks": "5-block"}, (3, 1, 224, 224))
    assert facts["nl_thw"] == ["1x28x28"] * 2 + ["1x14x14"] * 3 and facts["stage_thw"]["res5"] == "1x7x7"


def test_blocks_inserted_twice_are_recorded_in_the_order_they_run_and_a_taken_place_is_refused():
    from nlstudy.models import INSERTABLE, as_spec
    from nlstudy.models.plugin import insert_blocks

    with torch.device("meta"):
        net = tvm.resnet18(weights=None)
        insert_nonlocal(net, {"res4": [1]})
        insert_blocks(net, {"res4": [0], "res3": [1]}, INSERTABLE["global_context"], as_spec().nl, "global_context")
    assert [n for n, _ in net.layer3.named_children()] == ["0", "global_context0", "1", "nonlocal1"]
    model = TorchvisionClips(net, "r18")
    assert [(p, type(b)) for p, b in model.inserted_blocks()] == [
        ("res3.1", GlobalContextBlock), ("res4.0", GlobalContextBlock), ("res4.1", NonLocalBlock)]
    with pytest.raises(ValueError, match=r"already has a nonlocal block at res4\.1$"):
        insert_nonlocal(net, {"res4": [1]})
