"""Training overhead (issue 11): the demo's training step through Lightning's Trainer, as a real run takes
it, beside a plain PyTorch loop over the same model, batches, optimiser and lr schedule, and beside the
loading of a batch alone. Targets: Lightning's step within 10% of the plain loop's (ratio <= 1.10), and
a batch loaded at least 5x faster than the step it feeds (step / load >= 5).

    .venv/bin/python benchmarks/training.py                     # 1 thread (as the demo), 40 steps, 5 repeats
    .venv/bin/python benchmarks/training.py --threads 1 2       # also on 2 threads
    .venv/bin/python benchmarks/training.py --logger none       # without the wandb logger

Both sides are built from experiments/demo.yaml by the CLI's own code (`NLStudyCLI`, `nlstudy.lit.train`): the same seed,
model initialisation and data. (a) Lightning: `nlstudy fit` in this process, with the callbacks every fit
run gets (`run_callbacks`) and, by default, the wandb logger offline (what every run logs through: its
per-step cost is part of the overhead a run pays), stopped by `trainer.max_steps`, validation off, no
test. (b) Plain: forward, cross-entropy, zero_grad, backward, optimiser step and lr scheduler step over the
same DataLoader, with `make_optimizer` and `lr_factor` over the same total of steps. (c) Loading: the
training DataLoader iterated alone. Each side times `--steps` consecutive steps after `--warmup` ones,
from the start of one batch to the start of the batch `--steps` later (so the fetching of the batches is
in it); the table holds the median over `--repeats` repeats (the training sides take turns going first), by
two clocks: wall time (what a run waits) and this process's CPU time (what the code costs: on a shared,
loaded machine the wall time also holds what other processes took, which varies more than the gap).
Both training sides must end with the same weights, bit for bit (the same batches, in the same order,
the same math): the script exits 1 when they do not, or when a target is missed.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from nlstudy import keys
from nlstudy.cli import _quiet
from nlstudy.lit.cli import NLStudyCLI
from nlstudy.lit.train import build, run
from nlstudy.lit.optim import lr_factor, make_optimizer

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "experiments" / "demo.yaml"
MAX_OVERHEAD = 1.10  # Lightning s/step over plain s/step
MIN_STEP_OVER_LOAD = 5.0  # s/step over s/batch loaded


def now() -> tuple[float, float]:
    """Wall time and this process's CPU time: on a shared machine the CPU time is what the code itself
    costs, the wall time that plus what the other processes took from it."""
    return time.perf_counter(), time.process_time()


class StepClock(pl.Callback):
    """The times at the start of every training batch, and the network's weights when training ends."""

    def __init__(self) -> None:
        self.starts: list[tuple[float, float]] = []
        self.weights: dict[str, torch.Tensor] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.starts.append(now())

    def on_fit_end(self, trainer, pl_module) -> None:
        self.weights = pl_module.net.state_dict()


def built(arguments: list[str]):
    """The model, datamodule and Trainer the CLI's own code builds from `arguments` (no subcommand)."""
    cli = NLStudyCLI(args=arguments, run=False)
    return build(cli.settings(), cli.parser_of(cli.command), cli.command)


def per_step(starts: Sequence[tuple[float, float]], warmup: int, steps: int) -> tuple[float, float]:
    """(wall, CPU) seconds per step over `steps` steps after `warmup` ones, from batch start times."""
    if len(starts) <= warmup + steps:
        raise RuntimeError(f"{len(starts)} batches started; the timing needs {warmup + steps + 1} "
                           "(fewer training clips than the steps asked for?)")
    first, last = starts[warmup], starts[warmup + steps]
    return (last[0] - first[0]) / steps, (last[1] - first[1]) / steps


@dataclass
class Setting:
    """What one measurement runs: the config file and overrides (`--key=value`), the steps, the logger."""

    config: Path
    overrides: tuple[str, ...]
    warmup: int
    steps: int
    logger: bool  # the wandb logger offline, as a run has it; False: none

    @property
    def max_steps(self) -> int:
        return self.warmup + self.steps + 1  # one more batch starts, so `steps` whole steps are timed

    def arguments(self) -> list[str]:
        return ["--config", str(self.config), *self.overrides, f"--trainer.max_steps={self.max_steps}",
                "--trainer.limit_val_batches=0", "--test_after_fit=false",
                *([] if self.logger else ["--trainer.logger=false"])]


Weights = dict[str, torch.Tensor]


def lightning_steps(setting: Setting) -> tuple[tuple[float, float], Weights]:
    """(a) `nlstudy fit` in this process: (wall, CPU) seconds per step and the network's final weights."""
    clock = StepClock()
    cli = NLStudyCLI(args=["fit", *setting.arguments()])
    run(cli.settings(), command=cli.command, parser=cli.parser_of(cli.command), callbacks=[clock])
    return per_step(clock.starts, setting.warmup, setting.steps), clock.weights


def plain_steps(setting: Setting) -> tuple[tuple[float, float], Weights]:
    """(b) The same steps in a plain loop over the model and data the CLI builds (same seed, same init)."""
    cli = built([*setting.arguments(), "--trainer.logger=false"])
    model, data = cli.model, cli.datamodule
    data.setup("fit")
    loader = data.train_dataloader()
    spec, net = model.optim_spec, model.net
    optimizer = make_optimizer(spec, model.parameters())
    total = min(cli.trainer.max_epochs * len(loader), setting.max_steps)  # Trainer.estimated_stepping_batches
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(spec, step, total))
    model.train()
    starts = []
    for clips, labels in itertools.islice(loader, setting.max_steps):
        starts.append(now())
        loss = F.cross_entropy(net(clips), labels, label_smoothing=model.label_smoothing)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    return per_step(starts, setting.warmup, setting.steps), net.state_dict()


def load_batches(setting: Setting) -> tuple[float, float]:
    """(c) (wall, CPU) seconds per batch of the training DataLoader iterated alone."""
    cli = built([*setting.arguments(), "--trainer.logger=false"])
    cli.datamodule.setup("fit")
    starts = [now() for _ in itertools.islice(cli.datamodule.train_dataloader(), setting.max_steps)]
    return per_step(starts, setting.warmup, setting.steps)


def equal_weights(a: Weights, b: Weights) -> bool:
    """The same tensors under the same names, bit for bit."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@dataclass
class Result:
    """Medians over the repeats, for one thread count and one clock."""

    threads: int
    clock: str  # "wall" or "cpu"
    lightning_s: float  # s/step
    plain_s: float  # s/step
    load_s: float  # s/batch
    same_weights: bool

    @property
    def overhead(self) -> float:
        return self.lightning_s / self.plain_s

    @property
    def step_over_load(self) -> float:
        return self.lightning_s / self.load_s

    @property
    def ok(self) -> bool:
        return self.same_weights and self.overhead <= MAX_OVERHEAD and self.step_over_load >= MIN_STEP_OVER_LOAD


def measure(setting: Setting, threads: int, repeats: int) -> list[Result]:
    """The three sides on `threads` torch threads, `repeats` times, interleaved: medians by wall and CPU time."""
    times: dict[str, list[tuple[float, float]]] = {"lightning": [], "plain": [], "load": []}
    same = True
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for repeat in range(repeats):
            sides = {"lightning": lightning_steps, "plain": plain_steps}
            weights = {}
            for side in sorted(sides, reverse=repeat % 2 == 1):  # each side goes first in every other repeat
                seconds, weights[side] = sides[side](setting)
                times[side].append(seconds)
            times["load"].append(load_batches(setting))
            same &= equal_weights(weights["lightning"], weights["plain"])
    finally:
        torch.set_num_threads(previous)
    return [Result(threads, clock, *(statistics.median(t[i] for t in times[side]) for side in times), same)
            for i, clock in enumerate(("wall", "cpu"))]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, torch {torch.__version__}, pytorch-lightning {pl.__version__}"


def load_average() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def table(results: Sequence[Result]) -> str:
    header = (f"{'threads':>7} {'clock':>5} {'lightning s/step':>16} {'plain s/step':>12} {'ratio':>6} {'(<=1.10)':>8} "
              f"{'load s/batch':>12} {'step/load':>9} {'(>=5)':>5} {'same weights':>12}")
    rows = [header, "-" * len(header)]
    for r in results:
        rows.append(f"{r.threads:>7} {r.clock:>5} {r.lightning_s:>16.4f} {r.plain_s:>12.4f} {r.overhead:>6.3f} "
                    f"{'ok' if r.overhead <= MAX_OVERHEAD else 'MISSED':>8} {r.load_s:>12.5f} "
                    f"{r.step_over_load:>9.1f} {'ok' if r.step_over_load >= MIN_STEP_OVER_LOAD else 'NO':>5} "
                    f"{'yes' if r.same_weights else 'NO':>12}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                epilog="Other --key=value arguments override the config, as on the command line.")
    p.add_argument("--config", type=Path, default=DEMO, help="the run's config (default experiments/demo.yaml)")
    p.add_argument("--threads", type=int, nargs="+", default=[1], help="torch thread counts (default 1, as the demo)")
    p.add_argument("--steps", type=int, default=40, help="timed steps per repeat (default 40)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    p.add_argument("--repeats", type=int, default=5, help="repeats; the median is kept (default 5)")
    p.add_argument("--logger", choices=("wandb", "none"), default="wandb",
                   help="the Lightning side's logger: wandb offline, as every run has it (default), or none")
    args, overrides = p.parse_known_args(argv)
    if not all(o.startswith("--") and "=" in o for o in overrides):
        p.error(f"config overrides are --key=value, got {' '.join(overrides)}")
    setting = Setting(args.config, tuple(overrides), args.warmup, args.steps, args.logger == "wandb")

    _quiet()  # as `nlstudy fit`, and without Lightning's notes on every Trainer
    for name in ("pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*overridden `on_after_batch_transfer`.*")
    print(machine())
    print(f"{args.config.name} {' '.join(overrides)}: {args.steps} steps after {args.warmup}, median of "
          f"{args.repeats}; logger: {args.logger}; load average {load_average()}")
    with tempfile.TemporaryDirectory() as runs:  # the Lightning side's wandb runs, thrown away
        with mock.patch.dict(os.environ, {keys.RUNS_ENV: runs, "WANDB_MODE": "offline"}):
            results = [r for threads in args.threads for r in measure(setting, threads, args.repeats)]
    print(table(results))
    print(f"load average {load_average()}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
