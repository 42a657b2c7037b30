"""The private pytorch_lightning names of nlstudy.adapters.lightning, checked against the installed Lightning: each
test names what changed if it fails."""

from __future__ import annotations

import importlib

import pytorch_lightning as pl

from nlstudy.adapters import lightning as adapter


class Module(pl.LightningModule):
    def __init__(self, width: int = 3, name: str = "x"):
        super().__init__()
        self.save_hyperparameters(logger=False)


def test_given_hyperparameters_replace_the_init_arguments_a_module_records():
    with adapter.given_hyperparameters({"width": 5, "nested": {"a": 1}}):
        module = Module(width=7)
    assert dict(module.hparams) == {"width": 5, "nested": {"a": 1}, "_instantiator": adapter.INSTANTIATOR}, (
        "Lightning changed: _given_hyperparameters_context no longer sets what save_hyperparameters records")
    assert dict(Module(width=7).hparams) == {"width": 7, "name": "x"}  # outside it, the init arguments


def test_the_instantiator_named_is_lightnings():
    module, _, name = adapter.INSTANTIATOR.rpartition(".")
    assert callable(getattr(importlib.import_module(module), name, None)), (
        f"Lightning changed: {adapter.INSTANTIATOR} is gone (what load_from_checkpoint rebuilds a module with)")
