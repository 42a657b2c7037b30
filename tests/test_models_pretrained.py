"""The backbone's start: ImageNet inflation from a local torchvision file (model.backbone.pretrained), the init
of a fresh backbone (model.backbone.init) and its norm layers (model.backbone.norm)."""

from __future__ import annotations

import hashlib
import typing

import pytest
import torch
import torchvision
from torch import nn

from nlstudy import choices
from nlstudy.adapters.torch import BatchNorm
from nlstudy.blocks import NonLocalBlock
from nlstudy.models import BackboneSpec, build_model
from nlstudy.models.pretrained import inflate_state_dict, load_pretrained
from nlstudy.models.resnet import INITS, NORM_LAYERS, FrozenBatchNorm3d
from nlstudy.models.stage_keys import saved_name


def randomised_2d(name: str, seed: int) -> nn.Module:
    """A torchvision ResNet with random weights and non-trivial BN statistics and affine, in eval mode."""
    torch.manual_seed(seed)
    net = getattr(torchvision.models, name)(weights=None)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2), m.running_var.uniform_(0.5, 1.5)
    return net.eval()


@pytest.fixture(scope="module")
def resnet18(tmp_path_factory):
    net = randomised_2d("resnet18", 0)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pt"
    torch.save(net.state_dict(), path)
    return net, str(path)


def pooled_2d(net: nn.Module, frame: torch.Tensor) -> torch.Tensor:
    """torchvision's avgpool output for (B, 3, H, W) frames: (B, C)."""
    x = net.maxpool(net.relu(net.bn1(net.conv1(frame))))
    x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
    return net.avgpool(x).flatten(1)


def identical_frames(frame: torch.Tensor, t: int) -> torch.Tensor:
    return frame.unsqueeze(2).expand(-1, -1, t, -1, -1).contiguous()  # (B, 3, H, W) -> (B, 3, T, H, W)


def digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, value in model.state_dict().items():
        h.update(name.encode()), h.update(value.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# --- model.backbone.pretrained ---

def test_c2d_inflation_gives_the_2d_networks_features_and_logits_on_identical_frames(resnet18):
    net, path = resnet18
    frame = torch.randn(2, 3, 32, 32)
    model = build_model(arch="c2d", depth=18, num_classes=1000, init="pytorch", pretrained=path).eval()
    assert not torch.equal(model.fc.weight, net.fc.weight)  # the classifier stays fresh
    report = inflate_state_dict(model, net.state_dict())  # what build_model did
    assert set(report.fresh) == {"fc.weight", "fc.bias"} and not report.inflated  # C2D: one tap everywhere
    assert len(report.copied) == len(net.state_dict()) - 2
    with torch.no_grad():
        model.fc.load_state_dict(net.fc.state_dict())
        clip = identical_frames(frame, 4)
        pooled = model.features(clip).mean(dim=(2, 3, 4))  # (B, 512)
        torch.testing.assert_close(pooled, pooled_2d(net, frame), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(model(clip), net(frame), rtol=1e-4, atol=1e-5)


def test_i3d_inflation_preserves_the_features_of_identical_frames_away_from_the_clips_ends(resnet18):
    net, path = resnet18
    frame = torch.randn(1, 3, 32, 32)
    # temporal stride 1 in conv1; pool1 halves 32 frames to 16; the zero padding in time reaches 7 positions in
    # from each end after res5 (conv1's 5 taps, then five 3-tap convs), so the middle ones see whole kernels
    model = build_model(arch="i3d_3x3x3", depth=18, num_classes=10, conv1_stride=(1, 2, 2), pool2=False,
                        nonlocal_blocks="res4", init="pytorch").eval()
    report = load_pretrained(model, path)
    assert "stem.0.weight" in report.inflated and "res2.0.conv1.weight" in report.inflated
    assert model.stem[0].weight.shape[2] == 5
    torch.testing.assert_close(model.stem[0].weight.sum(2), net.conv1.weight)  # each tap: the 2-d kernel / 5
    assert any(name.startswith("res4.nonlocal") for name in report.fresh)
    with torch.no_grad():  # the non-local block in res4 starts as the identity: the 2-d network's features
        features = model.features(identical_frames(frame, 32))  # (1, 512, 16, 1, 1)
        middle = features[:, :, 7:9].mean(dim=(3, 4))  # (1, 512, 2)
        want = pooled_2d(net, frame)
        for t in range(middle.shape[2]):
            torch.testing.assert_close(middle[:, :, t], want, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(features[:, :, 0].mean(dim=(2, 3)), want, rtol=1e-2)  # the first frame: padded


def test_resnet50_inflation_into_i3d_3x1x1_maps_bottlenecks_and_shortcuts():
    net = randomised_2d("resnet50", 1)
    model = build_model(arch="i3d_3x1x1", depth=50, num_classes=7, init="pytorch")
    report = inflate_state_dict(model, net.state_dict())
    assert len(report.copied) == len(net.state_dict()) - 2 and set(report.fresh) == {"fc.weight", "fc.bias"}
    ours = model.state_dict()
    torch.testing.assert_close(ours["res3.0.shortcut.0.weight"][:, :, 0], net.layer2[0].downsample[0].weight)
    torch.testing.assert_close(ours["res5.2.bn3.running_var"], net.layer4[2].bn3.running_var)
    torch.testing.assert_close(ours["res2.0.conv1.weight"].sum(2), net.layer1[0].conv1.weight)  # 3x1x1, / 3
    assert torch.equal(ours["res3.1.conv1.weight"][:, :, 0], net.layer2[1].conv1.weight)  # not inflated: 1x1x1


def test_depth_in_the_path_picks_the_file_of_each_depth(resnet18):
    net, path = resnet18
    template = path.replace("resnet18", "resnet{depth}")
    model = build_model(arch="c2d", depth=18, width=64, num_classes=5, pretrained=template, init="pytorch")
    assert torch.equal(model.stem[0].weight[:, :, 0], net.conv1.weight)  # C2D: one temporal tap, the 2-d kernel


def test_a_mismatched_file_fails_in_one_line_naming_the_key(resnet18, tmp_path):
    net, path = resnet18
    not_weights = tmp_path / "list.pt"
    torch.save([1, 2], not_weights)
    cases = {
        "width=16": dict(depth=18, width=16, pretrained=path),
        "holds a ResNet-18 (basic blocks 2, 2, 2, 2)": dict(depth=34, pretrained=path, init="pytorch"),
        "no such file": dict(depth=18, width=4, pretrained=str(tmp_path / "nowhere.pt")),
        "expected a state_dict": dict(depth=18, width=4, pretrained=str(not_weights)),
    }
    for expected, fields in cases.items():
        with pytest.raises(ValueError) as error:
            build_model(num_classes=3, **fields)
        assert str(error.value).startswith("model.backbone.pretrained=") and "\n" not in str(error.value)
        assert expected in str(error.value)
    extra = {**net.state_dict(), "layer1.2.conv1.weight": torch.zeros(64, 64, 3, 3)}  # a deeper network's
    with torch.device("meta"):
        c2d = build_model(depth=18, num_classes=3)
    with pytest.raises(ValueError, match=r"model.backbone.pretrained: .*1 unused \(e.g. layer1.2.conv1.weight\)"):
        inflate_state_dict(c2d, extra)
    checkpoint = tmp_path / "checkpoint.pt"  # a dict holding the state_dict under "state_dict" loads too
    torch.save({"state_dict": net.state_dict(), "epoch": 90}, checkpoint)
    with torch.device("meta"):
        build_model(depth=18, num_classes=3, pretrained=str(checkpoint))


def test_a_pretrained_backbone_builds_on_the_meta_device(resnet18):
    _, path = resnet18
    with torch.device("meta"):  # nlstudy check and the model facts build there
        model = build_model(depth=18, num_classes=3, pretrained=path)
        with pytest.raises(ValueError, match="model.backbone.pretrained"):
            build_model(depth=18, width=8, num_classes=3, pretrained=path)
    assert model.fc.weight.is_meta


# --- model.backbone.init ---

def test_msra_init_is_kaiming_fan_out_for_convs_ones_for_bn_and_small_for_fc():
    torch.manual_seed(0)
    model = build_model(depth=18, width=8, num_classes=500, nonlocal_blocks="res4", init="msra",
                        zero_init_residual=True)
    conv = model.stages["res5"][0].conv1.weight  # (64, 32, 1, 3, 3): fan_out = 64 * 9
    assert conv.std().item() == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.05)
    assert abs(conv.mean().item()) < 0.01
    assert torch.equal(model.stem[1].weight, torch.ones(8)) and torch.equal(model.stages["res2"][0].bn1.weight, torch.ones(8))
    assert torch.equal(model.stages["res3"][0].shortcut[1].bias, torch.zeros(16))
    assert not model.stages["res2"][0].bn2.weight.any()  # zero_init_residual applies after the init
    assert model.fc.weight.std().item() == pytest.approx(0.01, rel=0.05) and not model.fc.bias.any()
    block = dict(model.inserted_blocks())["res4.0"]  # the non-local block keeps its own init: the identity
    assert isinstance(block, NonLocalBlock)
    assert all(not m.weight.any() for m in block.modules() if isinstance(m, nn.BatchNorm3d))
    assert BackboneSpec().init == "msra"


def test_pytorch_init_and_bn_are_bit_identical_to_the_code_before_these_options():
    # digests of seeded builds made by the code before model.backbone.init / norm existed (commit 00f0419,
    # torch 2.14.1): "pytorch" initialises nothing more and "bn" builds the same BatchNorm3d layers
    torch.manual_seed(0)
    c2d = build_model(arch="c2d", depth=18, width=4, num_classes=3, nonlocal_blocks={"res3": [0]}, init="pytorch")
    torch.manual_seed(0)
    i3d = build_model(arch="i3d_3x3x3", depth=50, width=2, num_classes=5, nonlocal_blocks="5-block",
                      zero_init_residual=True, init="pytorch", norm="bn")
    assert (digest(c2d), digest(i3d)) == ("02ee7883ebd67862", "c0b819ebf3968f3b")


# --- model.backbone.norm ---

def test_frozen_bn_keeps_statistics_and_affine_through_a_training_step():
    torch.manual_seed(0)
    model = build_model(depth=18, width=4, num_classes=3, conv1_stride=(1, 2, 2), nonlocal_blocks="res3",
                        norm="frozen_bn", dropout=0.0)
    frozen = {saved_name(n): m for n, m in model.named_modules() if isinstance(m, FrozenBatchNorm3d)}
    assert len(frozen) == 20 and not any(isinstance(m, nn.BatchNorm3d) for n, m in model.named_modules()
                                         if not saved_name(n).startswith("res3.nonlocal"))  # the non-local block keeps its BN
    with torch.no_grad():
        for m in frozen.values():  # non-trivial values, as after loading ImageNet weights
            m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.1, 0.1), m.running_var.uniform_(0.5, 1.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimisers = [torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1),
                  torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.1)]
    model.train()  # as Lightning does before each training epoch
    clips, labels = torch.randn(4, 3, 2, 16, 16), torch.tensor([0, 1, 2, 0])
    for optimiser in optimisers:
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(clips), labels).backward()
        optimiser.step()
    after = model.state_dict()
    frozen_keys = {f"{n}.{k}" for n, m in frozen.items() for k in m.state_dict()}
    assert all(torch.equal(before[k], after[k]) for k in frozen_keys)
    assert not torch.equal(before["res2.0.conv1.weight"], after["res2.0.conv1.weight"])
    assert not torch.equal(before["fc.weight"], after["fc.weight"])
    with torch.no_grad():  # training and evaluation normalise alike (res2: no non-local block there)
        train_mode = model.train().stages["res2"](model.stem(clips))
        torch.testing.assert_close(train_mode, model.eval().stages["res2"](model.stem(clips)), rtol=0, atol=0)


def test_frozen_bn_has_batchnorms_state_dict_keys_so_weights_load_either_way():
    bn = build_model(depth=18, width=4, num_classes=3, norm="bn")
    frozen = build_model(depth=18, width=4, num_classes=3, norm="frozen_bn")
    assert list(bn.state_dict()) == list(frozen.state_dict())
    frozen.load_state_dict(bn.state_dict())
    clip = torch.randn(2, 3, 2, 32, 32)
    torch.testing.assert_close(frozen.eval()(clip), bn.eval()(clip), rtol=0, atol=0)  # the same arithmetic


def test_sync_bn_converts_every_batchnorm_and_still_runs_in_one_process():
    model = build_model(depth=18, width=4, num_classes=3, nonlocal_blocks="res4", norm="sync_bn")
    norms = [m for m in model.modules() if isinstance(m, BatchNorm)]
    assert norms and all(isinstance(m, nn.SyncBatchNorm) for m in norms)
    assert model.train()(torch.randn(2, 3, 2, 32, 32)).shape == (2, 3)


def test_norm_and_init_choices_come_from_the_vocabulary_and_bad_values_fail_in_one_line():
    assert tuple(NORM_LAYERS) == choices.NORMS and tuple(INITS) == choices.INITS
    hints = typing.get_type_hints(BackboneSpec)
    assert typing.get_args(hints["norm"]) == choices.NORMS and typing.get_args(hints["init"]) == choices.INITS
    for key, bad in (("norm", "group_norm"), ("init", "xavier")):
        with pytest.raises(ValueError, match=rf"unknown model.backbone.{key} '{bad}'; valid choices: '"):
            build_model(depth=18, width=4, num_classes=3, **{key: bad})
