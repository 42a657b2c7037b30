"""GPU checks at paper scale, side by side in one run (needs a CUDA GPU; prints why and exits 2 without one).

For C2D ResNet-50 at 32x224x224 (the paper's clip), without and with the 5 non-local blocks (and I3D 3x1x1
with 5 blocks), one training step (forward + backward + SGD) at 8 clips per GPU:
  - seconds per step and clips per second, fp32 vs bf16 autocast vs bf16 + channels_last_3d
    (what experiments/kinetics.yaml sets: precision bf16-mixed);
  - peak GPU memory per configuration;
  - the ratios NL 5-block / C2D baseline (the paper's Table 2e: 1.2x FLOPs) and bf16 / fp32.
Each configuration is warmed up first and timed over several steps with CUDA events.

    .venv/bin/python benchmarks/gpu.py                 # all rows (a few minutes on one H100)
    .venv/bin/python benchmarks/gpu.py --batch 4 --steps 5
"""

from __future__ import annotations

import argparse
import sys


def step_time(spec: dict, batch: int, frames: int, size: int, dtype: str, channels_last: bool, steps: int) -> dict:
    import torch

    from nlstudy.models import build_model

    torch.manual_seed(0)
    model = build_model(**spec, num_classes=400).cuda().train()
    clips = torch.randn(batch, 3, frames, size, size, device="cuda")
    labels = torch.randint(0, 400, (batch,), device="cuda")
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
        clips = clips.contiguous(memory_format=torch.channels_last_3d)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

    def one_step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            loss = torch.nn.functional.cross_entropy(model(clips), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(3):  # warm-up: cuDNN autotuning, allocator
        one_step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(steps):
        one_step()
    end.record()
    torch.cuda.synchronize()
    seconds = start.elapsed_time(end) / 1000 / steps
    return {"seconds": seconds, "clips_per_s": batch / seconds, "peak_gb": torch.cuda.max_memory_allocated() / 2**30}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8, help="clips per step (the paper: 8 per GPU)")
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=10, help="timed steps per configuration")
    args = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA GPU here; run it on a GPU machine", file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = True
    models = {
        "C2D R50": dict(arch="c2d", depth=50),
        "NL C2D R50 5-block": dict(arch="c2d", depth=50, nonlocal_blocks="5-block"),
        "NL I3D-3x1x1 R50 5-block": dict(arch="i3d_3x1x1", depth=50, nonlocal_blocks="5-block"),
    }
    precisions = {"fp32": ("fp32", False), "bf16": ("bf16", False), "bf16+cl3d": ("bf16", True)}
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, {args.batch}x3x{args.frames}x{args.size}x{args.size}")
    print(f"{'model':26s} {'precision':10s} {'s/step':>8s} {'clips/s':>8s} {'peak GB':>8s}")
    results = {}
    for name, spec in models.items():
        for label, (dtype, channels_last) in precisions.items():
            r = step_time(spec, args.batch, args.frames, args.size, dtype, channels_last, args.steps)
            results[name, label] = r
            print(f"{name:26s} {label:10s} {r['seconds']:8.3f} {r['clips_per_s']:8.1f} {r['peak_gb']:8.2f}")
            torch.cuda.empty_cache()
    print("\nratios (same run, same GPU):")
    for label in precisions:
        base, nl = results["C2D R50", label], results["NL C2D R50 5-block", label]
        print(f"  {label:10s} NL 5-block / C2D: time x{nl['seconds'] / base['seconds']:.2f}, "
              f"memory x{nl['peak_gb'] / base['peak_gb']:.2f}")
    for name in models:
        fp32 = results[name, "fp32"]["seconds"]
        print(f"  {name:26s} bf16 / fp32: x{results[name, 'bf16']['seconds'] / fp32:.2f}, "
              f"bf16+channels_last_3d / fp32: x{results[name, 'bf16+cl3d']['seconds'] / fp32:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
