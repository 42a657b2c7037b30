"""The optimiser and the learning-rate schedule (`model.optim.*`): one record per choice (nlstudy.registry.Choice) in
`OPTIMIZERS` and `SCHEDULES`, their names also in nlstudy.choices (the torch-free vocabulary). A new optimiser is
its record here (its name in nlstudy.choices.OPTIMIZERS), plus its test.

The paper's: SGD, momentum 0.9, weight decay 1e-4, lr 0.01 divided by 10 at 150k and 300k of 400k iterations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nlstudy.choices import Optimizer, Schedule
from nlstudy.registry import Choice, lookup, records


@dataclass(frozen=True)
class OptimSpec:
    """Optimiser and schedule (`model.optim.*`). Milestones and warm-up are fractions of all steps."""

    name: Optimizer = "sgd"
    lr: float = 0.01
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    weight_decay: float = 1e-4
    schedule: Schedule = "step"
    milestones: tuple[float, ...] = (0.375, 0.75)  # step: 150k and 300k of 400k iterations
    gamma: float = 0.1  # step: lr factor at each milestone
    warmup: float = 0.0  # fraction of the steps with a linear warm-up from 0
    # torch's fused optimiser step (one kernel over every parameter, CPU and CUDA): the same update, added in
    # another order than the per-parameter loop (false), 5-10 % of the demo's CPU step
    fused: bool = True


# model.optim.name (nlstudy.choices.OPTIMIZERS): each builds the optimiser over `params` with the spec's settings
OPTIMIZERS = records(
    Choice("sgd", lambda spec, params: torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum,
                                                       nesterov=spec.nesterov, weight_decay=spec.weight_decay,
                                                       fused=spec.fused or None),
           "SGD with momentum (model.optim.momentum, nesterov): the paper's"),
    Choice("adamw", lambda spec, params: torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay,
                                                           fused=spec.fused or None),
           "AdamW (weight decay decoupled from the gradient)"),
)

# model.optim.schedule (nlstudy.choices.SCHEDULES): each gives the lr factor at a fraction `progress` of the steps
SCHEDULES = records(
    Choice("step", lambda spec, progress: spec.gamma ** sum(progress >= m for m in spec.milestones),
           "lr x gamma at each of model.optim.milestones: the paper's"),
    Choice("cosine", lambda spec, progress: 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))),
           "half a cosine, from lr to 0 at the last step"),
    Choice("constant", lambda spec, progress: 1.0, "lr throughout"),
)


def lr_factor(spec: OptimSpec, step: int, total_steps: int) -> float:
    """The lr multiplier at `step` of `total_steps`: warm-up, then the schedule."""
    progress = step / max(total_steps, 1)
    factor = lookup(SCHEDULES, spec.schedule, "model.optim.schedule").build(spec, progress)
    if spec.warmup > 0 and progress < spec.warmup:
        factor *= progress / spec.warmup
    return factor


def make_optimizer(spec: OptimSpec, params) -> torch.optim.Optimizer:
    return lookup(OPTIMIZERS, spec.name, "model.optim.name").build(spec, params)


def check_optim(spec: OptimSpec) -> None:
    """Bad optimiser settings fail before any training, naming the key."""
    lookup(OPTIMIZERS, spec.name, "model.optim.name")
    lookup(SCHEDULES, spec.schedule, "model.optim.schedule")
    if spec.lr <= 0:
        raise ValueError(f"model.optim.lr must be positive, got {spec.lr!r}")
    if not 0 <= spec.momentum < 1:
        raise ValueError(f"model.optim.momentum must be in [0, 1), got {spec.momentum!r}")
    if spec.weight_decay < 0:
        raise ValueError(f"model.optim.weight_decay must be >= 0, got {spec.weight_decay!r}")
    if spec.gamma <= 0:
        raise ValueError(f"model.optim.gamma (the step schedule's lr factor) must be positive, got {spec.gamma!r}")
    if not 0 <= spec.warmup < 1:
        raise ValueError(f"model.optim.warmup is a fraction of the steps in [0, 1), got {spec.warmup!r}")
    if any(not 0 < m < 1 for m in spec.milestones) or list(spec.milestones) != sorted(spec.milestones):
        raise ValueError(f"model.optim.milestones must be increasing fractions in (0, 1), got {list(spec.milestones)}")
