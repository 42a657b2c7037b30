"""Time and peak memory of the non-local block's compute paths against the explicit N x N formulation.

Forward plus backward on the CPU, the same weights and input for both sides; each measurement runs in
a fresh subprocess so its peak resident memory (ru_maxrss, minus the process's size before the first
pass) is its own. Prints one row per case with the ratios fast / explicit, and the issue's targets.

    .venv/bin/python benchmarks/nl_block.py            # all cases (a few minutes on 2 cores)
    .venv/bin/python benchmarks/nl_block.py --quick    # the three target cases only
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

# (name, pairwise, input shape (B, C, T, H, W), subsample, explicit formulation, targets)
# targets: (max time ratio, max memory ratio); every case must at least not be slower than explicit.
CASES = [
    ("embedded_gaussian @ res2", "embedded_gaussian", (1, 256, 8, 56, 56), False, "explicit", (0.7, 0.3)),
    ("dot_product @ res3", "dot_product", (2, 512, 4, 28, 28), False, "explicit", (0.35, None)),
    ("concatenation @ res4, subsampled", "concatenation", (2, 1024, 4, 14, 14), True, "repeat", (0.5, None)),
    # the rest of the matrix: no target beyond "not slower than explicit"
    ("gaussian @ res3", "gaussian", (2, 512, 4, 28, 28), False, "explicit", (1.0, None)),
    ("embedded_gaussian @ res3", "embedded_gaussian", (2, 512, 4, 28, 28), False, "explicit", (1.0, None)),
    ("concatenation @ res3, subsampled", "concatenation", (2, 512, 4, 28, 28), True, "broadcast", (1.0, None)),
    ("embedded_gaussian @ res4, subsampled", "embedded_gaussian", (2, 1024, 4, 14, 14), True, "explicit", (1.0, None)),
    ("dot_product @ res4, subsampled", "dot_product", (2, 1024, 4, 14, 14), True, "explicit", (1.0, None)),
]


def measure(pairwise: str, shape: list[int], subsample: bool, path: str, reps: int) -> dict:
    """One path, in this process: seconds per forward+backward and peak extra resident memory (MB)."""
    import torch

    from nlstudy.blocks import NonLocalBlock
    from nlstudy.blocks.reference import explicit_forward

    torch.manual_seed(0)
    block = NonLocalBlock(shape[1], 3, pairwise, subsample=subsample)
    x = torch.randn(*shape, requires_grad=True)
    if path == "fast":
        run = block
    else:
        concat = "broadcast" if path == "explicit" else path
        run = lambda inp: explicit_forward(block, inp, concat=concat)  # noqa: E731
    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for i in range(reps + 1):  # the first pass warms up and is not timed
        start = time.perf_counter()
        run(x).sum().backward()
        if i:
            times.append(time.perf_counter() - start)
        x.grad = None
        block.zero_grad(set_to_none=True)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": min(times), "peak_mb": (peak_kb - base_kb) / 1024}


def in_subprocess(pairwise: str, shape, subsample: bool, path: str, reps: int) -> dict:
    args = json.dumps([pairwise, list(shape), subsample, path, reps])
    out = subprocess.run([sys.executable, __file__, "--one", args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the three cases with targets")
    parser.add_argument("--reps", type=int, default=2, help="timed passes per path (best kept)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*json.loads(args.one))))
        return 0

    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, forward+backward, float32, CPU")
    header = f"{'case':38s} {'explicit s':>10s} {'fast s':>8s} {'time x':>7s} {'target':>7s} {'explicit MB':>11s} {'fast MB':>8s} {'mem x':>6s} {'target':>6s}  ok"
    print(header)
    print("-" * len(header))
    failures = 0
    cases = CASES[:3] if args.quick else CASES
    for name, pairwise, shape, subsample, explicit, (t_max, m_max) in cases:
        reps = 1 if shape[2] * shape[3] * shape[4] > 10_000 else args.reps
        slow = in_subprocess(pairwise, shape, subsample, explicit, reps)
        fast = in_subprocess(pairwise, shape, subsample, "fast", reps)
        t_ratio = fast["seconds"] / slow["seconds"]
        m_ratio = fast["peak_mb"] / max(slow["peak_mb"], 1e-9)
        ok = t_ratio <= t_max and (m_max is None or m_ratio <= m_max)
        failures += not ok
        label = f"{name} vs {explicit}"
        print(
            f"{label:38s} {slow['seconds']:10.3f} {fast['seconds']:8.3f} {t_ratio:7.3f} {'<=' + str(t_max):>7s} "
            f"{slow['peak_mb']:11.0f} {fast['peak_mb']:8.0f} {m_ratio:6.3f} {('<=' + str(m_max)) if m_max else '-':>6s}  "
            f"{'yes' if ok else 'NO'}"
        )
    print(f"\n{len(cases) - failures}/{len(cases)} cases meet their targets")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
