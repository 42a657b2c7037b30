"""VideoResNet's stages live in an nn.ModuleDict, and its files keep the names they had before
(nlstudy.models.stage_keys). tests/fixtures/models/old_keys_r18.pt was written by the code before the ModuleDict
(commit 054f832, by tests/fixtures/models/make_old_keys.py beside it): a run's weights file (the best.pt /
final.pt format: backbone spec, state_dict) of a tiny ResNet-18 C2D with two non-local blocks and pool2, every
tensor moved off its init, with a clip and the logits that code gave on it."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from nlstudy import keys
from nlstudy.analysis import load_run
from nlstudy.analysis.attention import attention_maps
from nlstudy.analysis.receptive_field import effective_receptive_field
from nlstudy.lit.module import VideoClassifier, init_from_run
from nlstudy.models import as_spec, build_model
from nlstudy.models.pretrained import torchvision_name
from nlstudy.models.stage_keys import module_name, saved_name
from nlstudy.models.weights import load_weights

OLD = Path(__file__).parent / "fixtures" / "models" / "old_keys_r18.pt"


@pytest.fixture(scope="module")
def old():
    return load_weights(OLD, "fixture")


def model_of(saved):
    return build_model(as_spec(**saved["backbone"])).eval()


def logits(model, saved):
    with torch.no_grad():
        return model(saved["clip"])


def test_the_state_dict_holds_the_old_keys_in_the_old_order(old):
    model = model_of(old)
    assert list(model.state_dict()) == list(old["state_dict"])
    assert "res3.nonlocal0.theta.weight" in old["state_dict"]  # the fixture is of the old form
    assert not any(k.startswith("stages") for k in model.state_dict())
    assert not any("stages" in k for k in model.state_dict()._metadata)  # torch's version entries too
    assert {n for n, _ in model.named_parameters()} == {module_name(k) for k in model.state_dict()
                                                        if "running" not in k and "num_batches" not in k}


def test_an_old_weights_file_loads_strictly_and_gives_the_same_logits(old):
    model = model_of(old)
    assert not any(model.load_state_dict(old["state_dict"]))  # strict: every key matched
    assert torch.equal(logits(model, old), old["logits"])
    assert torch.equal(logits(copy.deepcopy(model), old), old["logits"])  # the hooks travel with a copy
    again = model_of(old)
    again.load_state_dict(model.state_dict())  # what it writes reads back
    assert torch.equal(logits(again, old), old["logits"])


def run_dir_with(tmp_path, saved) -> Path:
    run = tmp_path / "wandb" / "offline-run-20260101_000000-oldkeys"
    keys.weights_file(run).parent.mkdir(parents=True)
    torch.save(saved, keys.weights_file(run))
    keys.config_file(run).write_text("model: {}\n")
    return run


def test_an_old_run_reloads_and_warm_starts_with_every_tensor(old, tmp_path):
    run = run_dir_with(tmp_path, old)
    model, _ = load_run(run)
    assert torch.equal(logits(model, old), old["logits"])
    fresh = model_of(old)
    facts = init_from_run(fresh, str(run))
    assert facts[keys.INIT_FROM_COPIED] == len(old["state_dict"])  # a warm start copies all, not nothing
    assert torch.equal(logits(fresh.eval(), old), old["logits"])


def test_a_lightning_checkpoint_of_the_old_form_loads_inside_the_module(old):
    module = VideoClassifier(as_spec(**old["backbone"]))
    ours = module.state_dict()
    assert [k for k in ours if k.startswith("net.")] == [f"net.{k}" for k in old["state_dict"]]
    checkpoint = {**ours, **{f"net.{k}": v for k, v in old["state_dict"].items()}}  # as Lightning saved it
    module.load_state_dict(checkpoint)
    assert torch.equal(logits(module.net.eval(), old), old["logits"])


def test_incompatible_keys_are_reported_by_their_saved_names(old):
    model = model_of(old)
    partial = {k: v for k, v in old["state_dict"].items() if not k.startswith("res4.nonlocal1.")}
    missing, unexpected = model.load_state_dict({**partial, "res3.9.conv1.weight": torch.zeros(1)}, strict=False)
    assert missing and all(k.startswith("res4.nonlocal1.") for k in missing) and unexpected == ["res3.9.conv1.weight"]
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "res4\.nonlocal1\.'):
        model.load_state_dict(partial)


def test_saved_and_module_names_are_one_mapping_and_its_inverse():
    assert saved_name("stages.res3.1.conv1.weight") == "res3.1.conv1.weight"
    assert saved_name("net.stages.res5") == "net.res5" and saved_name("stages") == "stages"
    for name in ("stem.0.weight", "fc.bias", "pool2", "layer3.nonlocal0.theta.weight", "stages.extra.weight"):
        assert saved_name(name) == name and module_name(name) == name
    for name in ("res2.0.bn1.weight", "res4.nonlocal1.g.weight", "res5"):
        assert saved_name(module_name(name)) == name and module_name(name) == f"stages.{name}"
    assert module_name("net.res3.0.conv1.weight", "net.") == "net.stages.res3.0.conv1.weight"
    assert module_name("res3.0.conv1.weight", "net.") == "res3.0.conv1.weight"  # not under the prefix


def test_the_analysis_and_inflation_name_the_stages_as_before(old):
    model = model_of(old)
    records = attention_maps(model, old["clip"])
    assert [r.name for r in records] == ["res3.nonlocal0", "res4.nonlocal1"]
    effective_receptive_field(model, old["clip"], "res3.1")  # a module's saved name is a stage to measure at
    with pytest.raises(ValueError, match=r"'stem', .*'res2', .*'fc'"):
        effective_receptive_field(model, old["clip"], "res9")
    assert torchvision_name(next(k for k in model.state_dict() if k.startswith("res3.0.conv1"))) == "layer2.0.conv1.weight"
