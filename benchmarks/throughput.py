"""Training throughput of the demo model (issue 20): clips per second per core of a training step (forward,
loss, backward, optimiser and lr-schedule step), the code before issue 20 against today's, step by step, side
by side in one process, at 1 and 2 threads. Target: today's step at least 2x the old one's clips/s per core.

    .venv/bin/python benchmarks/throughput.py                       # the demo model, 1 and 2 threads (about 5 min)
    .venv/bin/python benchmarks/throughput.py --blocks none 1-block res3:1,res4:1 --threads 1
    .venv/bin/python benchmarks/throughput.py --profile             # also the top ops of the old and new step
    .venv/bin/python benchmarks/throughput.py --extras              # also torch.compile, bf16, the clip cache

Every side is built by the CLI's own code from experiments/demo.yaml (the same seed, initialisation, data, batch
of 32 4x16x16 clips, AdamW and step schedule) and steps over the same batches, taken from the training loader
beforehand (the batch loading is measured apart: benchmarks/training.py). The steps, each on top of the one
before:

    before      the code before issue 20 (commit BASELINE): the direct oneDNN convolutions, contiguous tensors,
                the per-parameter AdamW loop, and that commit's non-local block (its source is read from git)
    fused       + the fused AdamW step (model.optim.fused, default true)
    channels    + clips and convolutions in channels_last_3d (model.channels_last, set by experiments/demo.yaml)
    small maps  + VideoConv3d's dense and pointwise CPU paths (nlstudy.models.conv): today's backbone
    block       + today's non-local block (stacked projections, explicit weights at every size): today's step

The sides take turns, `--steps` steps each after `--warmup`, `--repeats` times (the order reversed every other
repeat); the table holds the medians, by wall clock (clips/s per core: batch / s per step / threads) and by this
process's CPU time (clips per CPU second). "x before" is each side's clips/s over the before side's, by wall
clock. Exit 1 when today's step misses the 2x target at any thread count (wall clock).
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from training import load_average, machine  # noqa: E402  (benchmarks/training.py: the same machine line)

from nlstudy import keys  # noqa: E402
from nlstudy.blocks import NonLocalBlock  # noqa: E402
from nlstudy.cli import _quiet  # noqa: E402
from nlstudy.lit.cli import NLStudyCLI  # noqa: E402
from nlstudy.lit.train import build as build_run  # noqa: E402
from nlstudy.lit.optim import lr_factor, make_optimizer  # noqa: E402
from nlstudy.models.conv import VideoConv3d  # noqa: E402

DEMO = ROOT / "experiments" / "demo.yaml"
BASELINE = "bb76377fbc75719dc512810f3e130436dcf58047"  # main before issue 20
TARGET = 2.0
SIDES = ("before", "fused", "channels", "small maps", "block")


def baseline_block_class() -> type | None:
    """NonLocalBlock as of BASELINE (its module read from git and loaded under another name), or None when git or
    the commit is not at hand."""
    try:
        source = subprocess.run(["git", "show", f"{BASELINE}:nlstudy/blocks/nonlocal_block.py"], cwd=ROOT,
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    spec = importlib.util.spec_from_loader("nlstudy_baseline_nonlocal_block", loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, f"{BASELINE[:7]}:nlstudy/blocks/nonlocal_block.py", "exec"), module.__dict__)
    return module.NonLocalBlock


def placement_argument(blocks: str) -> str:
    """`none`, a preset, or `res3:1,res4:1` (a placement map) -> the --model.backbone.nonlocal_blocks value."""
    if ":" not in blocks:
        return blocks
    stages: dict[str, list[int]] = {}
    for part in blocks.split(","):
        stage, index = part.split(":")
        stages.setdefault(stage, []).append(int(index))
    return "{" + ", ".join(f"{s}: {v}" for s, v in stages.items()) + "}"


@dataclass
class Side:
    name: str
    model: torch.nn.Module  # the VideoClassifier
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    channels_last: bool

    def step(self, clips: torch.Tensor, labels: torch.Tensor) -> None:
        if self.channels_last:
            clips = clips.contiguous(memory_format=torch.channels_last_3d)
        loss = F.cross_entropy(self.model.net(clips), labels, label_smoothing=self.model.label_smoothing)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()


def build(name: str, blocks: str, total_steps: int, old_block: type | None) -> tuple[Side, list]:
    """The side `name` (SIDES) for the demo model with `blocks`, and the training batches it steps over."""
    at = SIDES.index(name)
    arguments = ["--config", str(DEMO), f"--model.backbone.nonlocal_blocks={placement_argument(blocks)}",
                 f"--model.optim.fused={'true' if at >= 1 else 'false'}",
                 f"--model.channels_last={'true' if at >= 2 else 'false'}", "--trainer.logger=false"]
    cli = NLStudyCLI(args=arguments, run=False)
    cli = build_run(cli.settings(), cli.parser_of(cli.command), cli.command)
    model, data = cli.model, cli.datamodule
    for module in model.net.modules():
        if isinstance(module, VideoConv3d):
            module.fast_paths = at >= 3
        if isinstance(module, NonLocalBlock) and at < 4 and old_block is not None:
            module.__class__ = old_block  # the same parameters, the baseline's forward
    spec = model.optim_spec
    optimizer = make_optimizer(spec, model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(spec, step, total_steps))
    model.train()
    data.setup("fit")
    return Side(name, model, optimizer, scheduler, at >= 2), list(data.train_dataloader())


def timed(side: Side, batches: list, warmup: int, steps: int) -> tuple[float, float]:
    """(wall, CPU) seconds per step over `steps` steps after `warmup`."""
    cycle = itertools.cycle(batches)
    for _ in range(warmup):
        side.step(*next(cycle))
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        side.step(*next(cycle))
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def measure(blocks: str, threads: int, args, old_block: type | None) -> dict[str, tuple[float, float]]:
    """{side: (median wall s/step, median CPU s/step)} at `threads` threads."""
    torch.set_num_threads(threads)
    total = args.repeats * (args.warmup + args.steps)
    names = SIDES[:-1] if blocks == "none" else SIDES  # no block: the last two sides are one computation
    sides = {name: build(name, blocks, total, old_block) for name in names}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    for repeat in range(args.repeats):
        for name in (list(sides) if repeat % 2 == 0 else list(sides)[::-1]):
            side, batches = sides[name]
            times[name].append(timed(side, batches, args.warmup, args.steps))
    return {name: (statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts)) for name, ts in times.items()}


def table(rows: list[tuple[str, int, dict]], batch: int) -> tuple[str, bool]:
    header = (f"{'blocks':14s} {'threads':>7s} {'side':11s} {'s/step':>8s} {'clips/s/core':>12s} {'x before':>8s} "
              f"{'CPU s/step':>10s} {'clips/CPU s':>11s} {'x before':>8s}")
    lines, ok = [header, "-" * len(header)], True
    for blocks, threads, sides in rows:
        wall0, cpu0 = sides["before"]
        for name, (wall, cpu) in sides.items():
            ratio = wall0 / wall
            last = name == list(sides)[-1]
            ok &= not last or ratio >= TARGET
            mark = ("  ok" if ratio >= TARGET else "  MISSED") if last else ""
            lines.append(f"{blocks:14s} {threads:7d} {name:11s} {wall:8.4f} {batch / wall / threads:12.1f} {ratio:8.2f} "
                         f"{cpu:10.4f} {batch / cpu:11.1f} {cpu0 / cpu:8.2f}{mark}")
    return "\n".join(lines), ok


def profile_sides(blocks: str, old_block: type | None, rows: int = 15) -> None:
    """torch.profiler's per-op table (self CPU time) of the before and today's step, 10 steps each, 1 thread."""
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(1)
    for name in ("before", SIDES[-1] if blocks != "none" else "small maps"):
        side, batches = build(name, blocks, 100, old_block)
        timed(side, batches, 2, 1)  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for clips, labels in batches[:10]:
                side.step(clips, labels)
        print(f"\n{name} ({blocks}): the top {rows} ops of 10 steps by self CPU time")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=44))


def extras(blocks: str, args) -> None:
    """What was tried beside the kept steps, against today's step at 1 thread: torch.compile (inductor), bf16
    autocast, and the clip cache's load against generating the clips."""
    torch.set_num_threads(1)
    side, batches = build(SIDES[-1], blocks, 1000, None)
    today = timed(side, batches, args.warmup, args.steps)
    print(f"\nextras ({blocks}, 1 thread): today's step {today[0]:.4f} s wall, {today[1]:.4f} s CPU")
    bf16 = Side("bf16", side.model, side.optimizer, side.scheduler, True)
    original = bf16.step

    def autocast_step(clips, labels):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            original(clips, labels)

    bf16.step = autocast_step
    t = timed(bf16, batches, args.warmup, args.steps)
    print(f"  bf16 autocast: {t[0]:.4f} s wall, x{today[0] / t[0]:.2f} (this CPU has no native bf16: "
          f"{'avx512_bf16' in Path('/proc/cpuinfo').read_text() if Path('/proc/cpuinfo').exists() else '?'})")
    compiled_side, _ = build(SIDES[-1], blocks, 1000, None)
    compiled_side.model.net = torch.compile(compiled_side.model.net)
    start = time.perf_counter()
    compiled_side.step(*batches[0])
    first = time.perf_counter() - start
    t = timed(compiled_side, batches, args.warmup, args.steps)
    print(f"  torch.compile (inductor): first step {first:.1f} s (compiling), then {t[0]:.4f} s wall, "
          f"x{today[0] / t[0]:.2f}")
    from nlstudy.data import cache
    from nlstudy.data.synthetic import SyntheticSpec, make_clips

    spec = SyntheticSpec()
    start = time.perf_counter()
    make_clips(spec, "train", 4, 16)
    generated = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        cache.clips(spec, "train", 4, 16, root=Path(tmp))  # written
        start = time.perf_counter()
        cache.clips(spec, "train", 4, 16, root=Path(tmp))  # read
        read = time.perf_counter() - start
    print(f"  the training clips (2,048): generated in {generated:.3f} s, read from the cache in {read:.3f} s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--blocks", nargs="+", default=["none"],
                   help="the demo model's non-local blocks: none, a preset, or res3:1,res4:1 (default none)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts (default 1 2)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per side and repeat (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    p.add_argument("--repeats", type=int, default=7, help="repeats; the median is kept (default 7)")
    p.add_argument("--profile", action="store_true", help="also the top ops of the before and today's step")
    p.add_argument("--extras", action="store_true", help="also torch.compile, bf16 autocast, the clip cache")
    args = p.parse_args(argv)
    _quiet()
    for name in ("pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*overridden `on_after_batch_transfer`.*")
    old_block = baseline_block_class()
    print(machine())
    print(f"demo.yaml, batch 32; {args.steps} steps after {args.warmup}, median of {args.repeats}; before = "
          f"{BASELINE[:7]}{'' if old_block else ' (its non-local block not found in git: today s block on both sides)'};"
          f" load average {load_average()}")
    rows = []
    with tempfile.TemporaryDirectory() as runs, mock.patch.dict(os.environ, {keys.RUNS_ENV: runs}):
        for blocks in args.blocks:
            for threads in args.threads:
                rows.append((blocks, threads, measure(blocks, threads, args, old_block)))
                print(table(rows[-1:], 32)[0].splitlines()[-1], file=sys.stderr, flush=True)
        text, ok = table(rows, 32)
        print(text)
        print(f"load average {load_average()}")
        if args.profile:
            for blocks in args.blocks:
                profile_sides(blocks, old_block)
    print(f"today's step at least {TARGET}x the before side's clips/s per core at every thread count: "
          f"{'yes' if ok else 'NO (MISSED)'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
