"""The Trainer's settings checked before anything trains: names Lightning knows, and the accelerator and devices
against this machine (moved out of nlstudy.lit.cli, which imports these names back for its callers)."""

from __future__ import annotations

import inspect
import os
import re
from typing import Any

import pytorch_lightning as pl
from jsonargparse import Namespace
from pytorch_lightning.accelerators import AcceleratorRegistry, CUDAAccelerator, MPSAccelerator, XLAAccelerator
from pytorch_lightning.strategies import StrategyRegistry

from nlstudy.errors import UsageError, one_line
from nlstudy.registry import lookup

TRAINER_KEYS = tuple(p for p in inspect.signature(pl.Trainer.__init__).parameters if p != "self")
# the Trainer settings whose validity depends on the machine that runs it (nlstudy check leaves them to it)
MACHINE_KEYS = ("accelerator", "devices", "strategy", "precision", "plugins", "sync_batchnorm", "logger", "callbacks")
GPU_ACCELERATORS = {"gpu": (CUDAAccelerator, MPSAccelerator), "cuda": (CUDAAccelerator,), "mps": (MPSAccelerator,)}
FULL_PRECISION = (None, 32, 64, "32", "64", "32-true", "64-true")


def trainer_error_line(error: BaseException) -> str:
    """A Lightning error about the Trainer's settings as one line naming the key (`trainer.<the Trainer argument
    the message names first>`, else `trainer`)."""
    text = one_line(error, None)
    found = [(m.start(), k) for k in TRAINER_KEYS for m in [re.search(rf"\b{k}\b", text)] if m]
    return one_line(f"trainer.{min(found)[1]}: {text}" if found else f"trainer: {text}")


def check_trainer_names(trainer: Namespace) -> None:
    """trainer.accelerator and trainer.strategy, when given by name, are names Lightning knows."""
    accelerator, strategy = trainer.get("accelerator"), trainer.get("strategy")
    try:
        if isinstance(accelerator, str):
            lookup(dict.fromkeys(["auto", "gpu", *sorted(AcceleratorRegistry.available_accelerators())]),
                   accelerator.lower(), "trainer.accelerator")
        if isinstance(strategy, str):
            lookup(dict.fromkeys(["auto", *StrategyRegistry.available_strategies()]), strategy.lower(),
                   "trainer.strategy")
    except ValueError as e:
        raise UsageError(one_line(e, None)) from None


def requested_devices(devices: Any) -> tuple[int, int] | None:
    """(how many devices, the highest device index + 1) that trainer.devices asks for; None for "auto" / -1."""
    if isinstance(devices, str):
        text = devices.strip()
        if text in ("auto", "-1"):
            return None
        devices = int(text) if text.lstrip("-").isdigit() else [int(d) for d in text.split(",") if d.strip().isdigit()]
    if isinstance(devices, int):
        return None if devices == -1 else (devices, devices)
    indices = [int(d) for d in devices or []]
    return (len(indices), max(indices) + 1) if indices else None


def cpu_arguments(trainer: Namespace) -> str:
    """The arguments that run these settings on the CPU."""
    args = ["--trainer.accelerator=cpu"]
    if trainer.get("precision") not in FULL_PRECISION:
        args.append("--trainer.precision=32-true")  # half precision is for GPUs (fp16 AMP does not run on CPUs)
    if (requested_devices(trainer.get("devices")) or (1, 1))[0] > 1:
        args.append("--trainer.devices=1")
    return " ".join(args)


class MachineError(UsageError):
    """Settings this machine cannot run (a GPU it lacks, more devices than it has): fine on the machine they are for."""


def check_machine(trainer: Namespace) -> None:
    """The accelerator and devices the settings ask for, against this machine: a GPU the machine lacks, or
    more GPUs than it has, fail in one line saying what the machine has and how to run on the CPU."""
    accelerator = trainer.get("accelerator")
    if not isinstance(accelerator, str):
        return  # "auto", an Accelerator object: Lightning picks what there is
    name = accelerator.lower()
    cores = os.cpu_count() or 1
    if name == "tpu" and not XLAAccelerator.is_available():
        raise MachineError(f"trainer.accelerator: the config asks for {accelerator!r}, but this machine has no TPU "
                         f"(torch_xla finds none; it has {cores} CPU cores); to run on the CPU: {cpu_arguments(trainer)}")
    if name not in GPU_ACCELERATORS:
        return
    count = max(kind.auto_device_count() if kind.is_available() else 0 for kind in GPU_ACCELERATORS[name])
    if count == 0:
        kinds = " or ".join(kind.__name__.removesuffix("Accelerator") for kind in GPU_ACCELERATORS[name])
        raise MachineError(f"trainer.accelerator: the config asks for {accelerator!r}, but this machine has no GPU "
                         f"(torch finds no {kinds} device; it has {cores} CPU cores); to run on the CPU: "
                         f"{cpu_arguments(trainer)}")
    wanted = requested_devices(trainer.get("devices"))
    if wanted and wanted[1] > count:
        raise MachineError(f"trainer.devices: the config asks for {trainer.get('devices')!r} ({wanted[0]} GPU(s)), but "
                         f"this machine has {count} GPU(s): --trainer.devices={count} (or auto), or run on the CPU: "
                         f"{cpu_arguments(trainer)}")
