"""The private pytorch_lightning names nlstudy relies on, in one place. tests/test_adapters_lightning.py checks
each one against the installed Lightning, so an upgrade that moves, renames or changes one fails there, by name.

    given_hyperparameters   pytorch_lightning.core.mixins.hparams_mixin._given_hyperparameters_context: while
                            it is open, a module's `save_hyperparameters()` records the hyperparameters given
                            (plus `_instantiator`) in place of its init arguments. LightningCLI instantiates its
                            model inside it, with the model's settings as the config holds them (plain data, so
                            a checkpoint reads back with weights_only=True); nlstudy.lit.train does the same.
    INSTANTIATOR            the `_instantiator` LightningCLI records with them (what `load_from_checkpoint`
                            rebuilds the module with)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from pytorch_lightning.core.mixins.hparams_mixin import _given_hyperparameters_context

INSTANTIATOR = "pytorch_lightning.cli.instantiate_module"


@contextlib.contextmanager
def given_hyperparameters(hparams: dict[str, Any]) -> Iterator[None]:
    """Modules built inside record `hparams` (and `_instantiator`: INSTANTIATOR) as their hyperparameters."""
    with _given_hyperparameters_context(hparams=hparams, instantiator=INSTANTIATOR):
        yield


__all__ = ["INSTANTIATOR", "given_hyperparameters"]
