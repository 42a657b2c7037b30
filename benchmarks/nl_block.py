"""The non-local block against the explicit N x N formulation, every case in one table.

Rows: pairwise function x dim (1, 2, 3) x mode (3-d: spacetime, space, time) x subsampling (none, or
the paper's max-pool: 2 / 2x2 / 1x2x2, and 2x1x1 in time mode, which attends over frames only). Each
row runs forward plus backward on the CPU in float32 through the block and through
`nlstudy.blocks.reference.explicit_forward` (the concatenation form as its broadcast sum, the faster
of the two explicit ports), with the same weights and input, in one process:

  time x     median time of the block / median time of the explicit formulation, the two run
             alternately. With one thread (the default) the clock is the process's CPU time, which
             the other jobs of a shared machine inflate far less than wall time; with more, wall time.
  memory x   peak bytes the CPU allocator holds during one forward+backward beyond what it held
             before, block / explicit: torch.profiler with profile_memory=True records every
             allocation and free (its trace's "[memory]" events), and the peak is the maximum of
             their running sum in time order.

A row misses when its time ratio is above 1.0; then the script prints MISSED and exits 1.

    .venv/bin/python benchmarks/nl_block.py            # every row (about 2 minutes on 2 cores)
    .venv/bin/python benchmarks/nl_block.py --quick    # tiny inputs, one pass: a smoke test, no verdict
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from nlstudy.blocks import NonLocalBlock
from nlstudy.blocks.pairwise import FORMS
from nlstudy.blocks.reference import explicit_forward
from nlstudy.choices import MODES

# one input per dim, (B, C, *S), C = 512 as at res3 of a ResNet-50 (C' = 256): a 4-frame 28 x 28 clip,
# a 28 x 28 image and a sequence of 784 positions
SHAPES = {1: (2, 512, 784), 2: (2, 512, 28, 28), 3: (1, 512, 4, 28, 28)}
QUICK_SHAPES = {1: (1, 8, 12), 2: (1, 8, 4, 3), 3: (1, 8, 2, 4, 3)}
# the subsampled row's kernel: the paper's (True), except in time mode, where it pools frames
SUBSAMPLED = {"spacetime": True, "space": True, "time": "2x1x1"}
MAX_TIME_RATIO = 1.0
os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # quiet the profiler's start/stop and no-GPU lines on stderr


@dataclass(frozen=True)
class Case:
    pairwise: str
    dim: int
    mode: str
    subsampled: bool

    def block(self, in_channels: int) -> NonLocalBlock:
        subsample = SUBSAMPLED[self.mode] if self.subsampled else False
        return NonLocalBlock(in_channels, self.dim, self.pairwise, subsample=subsample, mode=self.mode)


CASES = [
    Case(pairwise, dim, mode, subsampled)
    for pairwise, dim in itertools.product(FORMS, (1, 2, 3))
    for mode in (MODES if dim == 3 else ("spacetime",))
    for subsampled in (False, True)
]


def peak_bytes(step: Callable[[], None]) -> int:
    """Peak of the bytes the CPU allocator holds during `step` beyond what it held when `step` began."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    with tempfile.TemporaryDirectory() as tmp:  # the profiler's trace: one "[memory]" event per alloc/free
        trace = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(trace))
        events = [e for e in json.loads(trace.read_text())["traceEvents"] if e.get("name") == "[memory]"]
    events.sort(key=lambda e: e["ts"])
    return max(itertools.accumulate((e["args"]["Bytes"] for e in events), initial=0))  # + alloc, - free


def measure(case: Case, shape: tuple[int, ...], reps: int, clock: Callable[[], float] = time.process_time) -> dict:
    """{path: (median seconds, peak bytes)} of one forward+backward, for the block and the explicit path."""
    torch.manual_seed(0)
    block = case.block(shape[1]).train()
    x = torch.randn(*shape, requires_grad=True)
    paths = {"block": block, "explicit": lambda inp: explicit_forward(block, inp, concat="broadcast")}

    def step(run) -> None:
        run(x).sum().backward()
        x.grad = None
        block.zero_grad(set_to_none=True)

    peaks = {name: peak_bytes(lambda: step(run)) for name, run in paths.items()}  # also the warm-up
    seconds = {name: [] for name in paths}
    for _ in range(reps):  # alternately, so a change of load on the machine hits both
        for name, run in paths.items():
            start = clock()
            step(run)
            seconds[name].append(clock() - start)
    return {name: (statistics.median(seconds[name]), peaks[name]) for name in paths}


def table(rows: list[tuple[Case, dict]], verdict: bool = True) -> tuple[str, int]:
    """The table, one line per case, and how many cases miss (time ratio above MAX_TIME_RATIO)."""
    header = (
        f"{'pairwise':17s} {'dim':>3s} {'mode':9s} {'subsampled':10s} {'explicit s':>10s} {'block s':>8s} "
        f"{'time x':>6s} {'explicit MB':>11s} {'block MB':>8s} {'memory x':>8s}"
    )
    lines, missed = [header, "-" * len(header)], 0
    for case, m in rows:
        (slow_s, slow_b), (fast_s, fast_b) = m["explicit"], m["block"]
        t_ratio = fast_s / slow_s
        miss = verdict and t_ratio > MAX_TIME_RATIO
        missed += miss
        lines.append(
            f"{case.pairwise:17s} {case.dim:3d} {case.mode:9s} {'yes' if case.subsampled else 'no':10s} "
            f"{slow_s:10.4f} {fast_s:8.4f} {t_ratio:6.3f} {slow_b / 2**20:11.1f} {fast_b / 2**20:8.1f} "
            f"{fast_b / max(slow_b, 1):8.3f}" + ("  MISSED" if miss else "")
        )
    return "\n".join(lines), missed


def machine() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny inputs, one pass: a smoke test, no verdict")
    parser.add_argument("--reps", type=int, default=3, help="timed passes per path, the median kept (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    if args.reps < 1 or args.threads < 1:
        parser.error("--reps and --threads must be positive")
    torch.set_num_threads(args.threads)
    shapes, reps = (QUICK_SHAPES, 1) if args.quick else (SHAPES, args.reps)
    clock, clock_name = (time.process_time, "CPU time") if args.threads == 1 else (time.perf_counter, "wall time")

    print(f"{machine()}; torch {torch.__version__}, {args.threads} thread(s), load average {os.getloadavg()[0]:.2f}")
    print(
        f"forward+backward, float32; time: median {clock_name} of {reps}; memory: peak allocated (torch.profiler); "
        "inputs (B, C, *S): " + ", ".join(f"{'x'.join(map(str, s))}" for s in shapes.values())
    )
    rows = [(case, measure(case, shapes[case.dim], reps, clock)) for case in CASES]
    text, missed = table(rows, verdict=not args.quick)
    print(text)
    print(f"load average {os.getloadavg()[0]:.2f}")
    if args.quick:
        print("--quick: inputs too small to judge the time ratios")
        return 0
    print(f"{len(rows) - missed}/{len(rows)} cases at most {MAX_TIME_RATIO}x the explicit formulation's time")
    if missed:
        print(f"MISSED: {missed} case(s) slower than the explicit formulation")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
