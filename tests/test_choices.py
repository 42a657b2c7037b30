"""The vocabulary (nlstudy.choices) is the one list of every choice: each implementation's registry
holds exactly its names, and the specs' Literal types offer exactly them."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing

import pytest

from nlstudy import choices


def literal_choices(cls, field: str) -> tuple:
    hint = typing.get_type_hints(cls)[field]
    assert typing.get_origin(hint) is typing.Literal, hint
    return typing.get_args(hint)


def test_every_registry_holds_exactly_the_vocabulary():
    from nlstudy.blocks.pairwise import FORMS
    from nlstudy.data import DATASETS
    from nlstudy.lit.optim import OPTIMIZERS, SCHEDULES
    from nlstudy.models import INSERTABLE
    from nlstudy.models.placement import PRESETS
    from nlstudy.models.plugin import TORCHVISION_NETS
    from nlstudy.models.resnet import ARCH_KERNELS, DEPTH_BLOCKS, INITS, NORM_LAYERS

    assert tuple(FORMS) == choices.PAIRWISE
    assert set(INSERTABLE) == set(choices.BLOCKS)
    assert tuple(PRESETS) == choices.PLACEMENTS
    assert set(ARCH_KERNELS) == set(choices.ARCHS) and tuple(DEPTH_BLOCKS) == choices.DEPTHS
    assert tuple(TORCHVISION_NETS) == choices.TORCHVISION_ARCHS
    assert tuple(NORM_LAYERS) == choices.NORMS and tuple(INITS) == choices.INITS
    assert tuple(DATASETS) == choices.DATASETS
    assert tuple(OPTIMIZERS) == choices.OPTIMIZERS and tuple(SCHEDULES) == choices.SCHEDULES
    assert all(name == form.name for name, form in FORMS.items())
    for registry in (NORM_LAYERS, INITS, DATASETS, OPTIMIZERS, SCHEDULES):  # one record per choice
        assert all(name == record.name and callable(record.build) for name, record in registry.items())
        assert all(record.help and "\n" not in record.help for record in registry.values())
    assert set(choices.MODE_LABELS) == set(choices.MODES)


def test_the_specs_literals_are_built_from_the_vocabulary():
    from nlstudy.data.synthetic import SyntheticSpec
    from nlstudy.lit.optim import OptimSpec
    from nlstudy.models import BackboneSpec, NLOptions

    assert literal_choices(NLOptions, "pairwise") == choices.PAIRWISE
    assert literal_choices(NLOptions, "mode") == choices.MODES
    assert literal_choices(NLOptions, "subsample_order") == choices.SUBSAMPLE_ORDERS
    assert literal_choices(NLOptions, "zero_init") == choices.ZERO_INITS
    assert literal_choices(BackboneSpec, "arch") == choices.ARCHS + choices.TORCHVISION_ARCHS
    assert literal_choices(BackboneSpec, "depth") == choices.DEPTHS
    assert literal_choices(BackboneSpec, "block") == choices.BLOCKS
    assert literal_choices(SyntheticSpec, "task") == choices.TASKS
    assert literal_choices(OptimSpec, "name") == choices.OPTIMIZERS
    assert literal_choices(OptimSpec, "schedule") == choices.SCHEDULES
    # every default is one of the choices
    for spec, field in ((NLOptions, "pairwise"), (NLOptions, "mode"), (BackboneSpec, "arch"), (BackboneSpec, "block")):
        assert {f.name: f.default for f in dataclasses.fields(spec)}[field] in literal_choices(spec, field)


@pytest.mark.parametrize("pairwise", choices.PAIRWISE)
def test_each_pairwise_choice_builds_and_runs(pairwise):
    import torch

    from nlstudy.blocks import NonLocalBlock

    block = NonLocalBlock(8, 3, pairwise)
    x = torch.randn(1, 8, 2, 4, 4)
    assert block(x).shape == x.shape and block.attention(x).shape == (1, 32, 8)


@pytest.mark.slow  # starts a Python subprocess
def test_the_vocabulary_imports_no_torch():
    code = "import sys, nlstudy.choices, nlstudy.keys; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_record_names_its_choice_once_and_the_lookup_lists_the_valid_names():
    from nlstudy.registry import Choice, lookup, records

    registry = records(Choice("sgd", list, "one"), Choice("adamw", dict, "two"))
    assert list(registry) == ["sgd", "adamw"] and lookup(registry, "adamw", "model.optim.name").build is dict
    with pytest.raises(ValueError, match="recorded twice"):
        records(Choice("sgd", list, "one"), Choice("sgd", dict, "two"))
    with pytest.raises(ValueError) as err:
        lookup(registry, "sgdd", "model.optim.name")
    assert str(err.value) == "unknown model.optim.name 'sgdd'; valid choices: 'sgd', 'adamw'; did you mean 'sgd'?"


def test_an_optimiser_and_a_schedule_build_from_their_records():
    import torch

    from nlstudy.lit.optim import OPTIMIZERS, OptimSpec, lr_factor, make_optimizer

    params = [torch.nn.Parameter(torch.zeros(2))]
    for name, record in OPTIMIZERS.items():
        assert isinstance(make_optimizer(OptimSpec(name=name, fused=False), params), torch.optim.Optimizer), record
    for schedule in choices.SCHEDULES:
        assert lr_factor(OptimSpec(schedule=schedule), 0, 10) == 1.0
