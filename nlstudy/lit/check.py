"""`nlstudy check`: training commands judged the way `nlstudy fit|validate|test` would judge them (the same
parser, so the same errors), without training or logging (`CheckCLI`, `check_all`, `check_main`), and the
parser's caches filled once before the warm-start worker forks its runs (`warm_up`)."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from jsonargparse import Namespace
from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from nlstudy.errors import UsageError
from nlstudy.lit.cli import NLStudyCLI
from nlstudy.lit.machine import MACHINE_KEYS, MachineError, check_machine, check_trainer_names, trainer_error_line
from nlstudy.lit.messages import argument_error_line
from nlstudy.lit.record import resolved_key
from nlstudy.lit.resume import resume_arguments


def warm_up(subcommand: str = "fit") -> None:
    """Build and use a `subcommand` parser once, and drop it: the caches this fills (jsonargparse's class
    signatures, typing's hints, the docstrings' help) are what the first CLI of a process pays again, about
    half a second. The warm-start worker (nlstudy.lit.worker) calls it before it forks any run; nothing is
    instantiated, read or logged (NLStudyCLI only parses)."""
    NLStudyCLI(args=[subcommand])


class StopAfterCheck(Exception):
    """Raised by CheckCLI's before_<subcommand> hooks: the command parsed and built; nothing runs. (Not
    nlstudy.sweep.check.Checked, what a sweep's check found.)"""


class CheckCLI(NLStudyCLI):
    """Parses and validates a training command the way `train_main` would (the same parser, so the same
    errors), without training or logging: the model is built on the meta device (shapes only), the data
    module touches no disk, and the before_<subcommand> hook stops the run before the Trainer is used."""

    def __init__(self, args: list[str], machine: bool = True):
        self.machine = machine  # also check the settings against this machine (check_machine)
        try:
            super().__init__(args=args)
        except StopAfterCheck:
            pass

    def subcommands(self) -> dict[str, set[str]]:
        return LightningCLI.subcommands()  # every one: check() reuses this parser for any training command

    key: str | None = None  # the resolved_key of the last command checked

    def instantiate_classes(self) -> None:
        self.check_resume()
        self.key = resolved_key(self.subcommand, self.settings())
        try:
            with torch.device("meta"):
                built = self.parser.instantiate(self.config)
        except (ValueError, TypeError, KeyError) as e:
            raise UsageError(argument_error_line(e)) from None
        trainer = self.settings().get("trainer") or Namespace()
        check_trainer_names(trainer)
        if self.machine:
            check_machine(trainer)
        self.check_trainer_values((built[self.subcommand] if self.subcommand else built).get("trainer") or {})

    _checked_trainer: str | None = None  # the last trainer settings found good (a sweep rarely varies them)

    def check_trainer_values(self, trainer: dict[str, Any]) -> None:
        """What the Trainer itself rejects and does not depend on the machine (epochs, steps, batch limits,
        intervals...): a Trainer built from the settings on one CPU device, without logger or callbacks; the
        accelerator, devices, strategy and precision are left to the machine that runs it (`check_machine`)."""
        settings = {k: v for k, v in trainer.items() if k not in MACHINE_KEYS}
        fingerprint = json.dumps(settings, sort_keys=True, default=str)
        if fingerprint == self._checked_trainer:
            return
        try:
            with quiet_lightning():
                pl.Trainer(**settings, accelerator="cpu", devices=1, logger=False, callbacks=[])
        except (MisconfigurationException, ValueError, TypeError) as e:
            raise UsageError(trainer_error_line(e)) from None
        self._checked_trainer = fingerprint

    def before_fit(self) -> None:
        raise StopAfterCheck

    before_validate = before_test = before_fit

    def check(self, args: list[str]) -> None:
        """Validate another argument list with the same parser (building the parser is the slow part)."""
        self.parse_arguments(self.parser, resume_arguments(args))
        self.subcommand = self.config.get("subcommand")
        self.instantiate_classes()


CONFIG_ONLY = "--config-only"  # nlstudy check: leave the settings' fit to this machine unchecked (a login node)


def check_main(argv: list[str]) -> int:
    """`nlstudy check [--config-only] FILE`: FILE holds a JSON list of training argument lists (each starting with
    fit, validate or test). Prints a JSON list of {"ok": bool, "error": str | None, "key": str | None, "machine":
    bool} (key: the run's `resolved_key` when ok; machine: the error is that this machine cannot run it, which
    --config-only does not check); exit 0 when all are ok."""
    machine = CONFIG_ONLY not in argv
    argv = [a for a in argv if a != CONFIG_ONLY]
    if len(argv) != 1 or not Path(argv[0]).is_file():
        print(f"usage: nlstudy check [{CONFIG_ONLY}] FILE  (FILE: a JSON list of argument lists such as "
              "[\"fit\", \"--config\", ...])", file=sys.stderr)
        return 2
    results = check_all(json.loads(Path(argv[0]).read_text()), machine=machine)
    print(json.dumps(results))
    return 0 if all(r["ok"] for r in results) else 1


def check_all(candidates: Sequence[Sequence[str]], cli: CheckCLI | None = None, *,
              machine: bool = True) -> list[dict[str, Any]]:
    """{"ok": bool, "error": str | None, "key": str | None, "machine": bool} for each training argument list, all
    judged by one CheckCLI (`cli`, or one made for the first list, checking the settings against this machine
    unless `machine` is false); key: the run's `resolved_key`, when ok; machine: the error is a `MachineError`."""
    results = []
    for args in candidates:
        try:
            if cli is None:
                cli = CheckCLI(list(args), machine=machine)
            else:
                cli.check(list(args))
            results.append({"ok": True, "error": None, "key": cli.key, "machine": False})
        except UsageError as e:
            results.append({"ok": False, "error": str(e), "key": None, "machine": isinstance(e, MachineError)})
        except SystemExit as e:
            results.append({"ok": False, "error": f"arguments rejected (exit {e.code})", "key": None, "machine": False})
    return results


@contextlib.contextmanager
def quiet_lightning():
    """Lightning's INFO lines (GPU available: ..., and the like) left out while a Trainer is built to be checked."""
    logger = logging.getLogger("pytorch_lightning")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)

