"""GPU checks at paper scale, side by side in one run (needs a CUDA GPU; prints why and exits 2 without one).

1. Training throughput: C2D ResNet-50 without and with the 5 non-local blocks (and I3D 3x1x1 with 5 blocks),
   one training step (forward + backward + SGD) at 8 clips per GPU, for 8x224x224 clips (and the paper's
   32x224x224): clips per second and peak GPU memory, fp32 vs bf16 autocast vs bf16 + channels_last_3d (what
   experiments/kinetics.yaml sets), and the ratios NL 5-block / C2D (the paper's Table 2e: 1.2x FLOPs).
2. The block at res2 size without subsampling (8 clips, 256 channels, the 32-frame clip's 16x56x56 feature
   map: N = 50,176 positions), every pairwise function, forward + backward under bf16 autocast: ours against
   the explicit N x N formulation (nlstudy.blocks.reference), which needs N^2 = 2.5e9 entries per clip and
   is expected to run out of memory where ours must not.
3. The training loop: the LightningModule (VideoClassifier under a Trainer, bf16-mixed, channels_last) against
   a plain PyTorch loop over the same model, batches and optimiser schedule: seconds per step and the ratio.
4. Where the blocks' time goes: the GPU kernels that the 5 blocks add to one training step (profiler), fp32
   and bf16 + channels_last_3d.
5. torch.compile on the 8x224x224 step (issue 20: that step was found bound by kernel launches): C2D R50 and
   NL C2D R50 5-block under bf16 + channels_last_3d, eager against torch.compile (inductor) and
   torch.compile(mode="reduce-overhead") (inductor with CUDA graphs): the compile time (the first steps), the
   step time and the speed-up; then NL 5-block / C2D time per mode beside the FLOPs ratio (the paper's Table 2e:
   x1.2; ours from nlstudy.models.profile for the same clips).
Each configuration is warmed up first and timed over several steps with CUDA events.

    python benchmarks/gpu.py                  # everything (about 6 minutes on one H100, compiling included)
    python benchmarks/gpu.py --parts 5        # only torch.compile (about 3 minutes)
    python benchmarks/gpu.py --smoke          # tiny sizes on the CPU: checks the script itself (part 5 through
                                              # torch.compile's "eager" backend; tests/test_bench_gpu.py runs it)
"""

from __future__ import annotations

import argparse
import sys
import time

PRECISIONS = {"fp32": ("fp32", False), "bf16": ("bf16", False), "bf16+cl3d": ("bf16", True)}
MODELS = {
    "C2D R50": dict(arch="c2d", depth=50),
    "NL C2D R50 5-block": dict(arch="c2d", depth=50, nonlocal_blocks="5-block"),
    "NL I3D-3x1x1 R50 5-block": dict(arch="i3d_3x1x1", depth=50, nonlocal_blocks="5-block"),
}


class Timer:
    """Seconds between start() and stop() on the device's clock (CUDA events), or the wall clock on the CPU."""

    def __init__(self, device: str):
        import torch

        self.cuda = device == "cuda"
        if self.cuda:
            self.begin, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        if self.cuda:
            self.begin.record()
        else:
            self.t0 = time.perf_counter()

    def stop(self) -> float:
        import torch

        if self.cuda:
            self.end.record()
            torch.cuda.synchronize()
            return self.begin.elapsed_time(self.end) / 1000
        return time.perf_counter() - self.t0


def reset_peak(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gb(device: str) -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")


def autocast(device: str, dtype: str):
    import torch

    return torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bf16")


# --- 1. training steps ---------------------------------------------------------------------------------------

def step_time(spec: dict, batch: int, frames: int, size: int, dtype: str, channels_last: bool, steps: int,
              device: str, classes: int = 400) -> dict:
    import torch

    from nlstudy.models import build_model

    torch.manual_seed(0)
    model = build_model(**spec, num_classes=classes).to(device).train()
    clips = torch.randn(batch, 3, frames, size, size, device=device)
    labels = torch.randint(0, classes, (batch,), device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
        clips = clips.contiguous(memory_format=torch.channels_last_3d)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

    def one_step() -> None:
        with autocast(device, dtype):
            loss = torch.nn.functional.cross_entropy(model(clips), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(3):  # warm-up: cuDNN autotuning, allocator
        one_step()
    reset_peak(device)
    timer = Timer(device)
    timer.start()
    for _ in range(steps):
        one_step()
    seconds = timer.stop() / steps
    return {"seconds": seconds, "clips_per_s": batch / seconds, "peak_gb": peak_gb(device)}


def training_steps(args, device: str) -> None:
    print(f"\n== 1. training steps: {args.batch} clips per step, 3x<frames>x{args.size}x{args.size} ==")
    print(f"{'model':26s} {'frames':>6s} {'precision':10s} {'s/step':>8s} {'clips/s':>8s} {'peak GB':>8s}")
    for frames in args.frames:
        results = {}
        for name, spec in MODELS.items():
            for label, (dtype, channels_last) in PRECISIONS.items():
                r = step_time(spec, args.batch, frames, args.size, dtype, channels_last, args.steps, device)
                results[name, label] = r
                print(f"{name:26s} {frames:6d} {label:10s} {r['seconds']:8.3f} {r['clips_per_s']:8.1f} "
                      f"{r['peak_gb']:8.2f}", flush=True)
        for label in PRECISIONS:
            base, nl = results["C2D R50", label], results["NL C2D R50 5-block", label]
            print(f"  {frames} frames, {label:10s} NL 5-block / C2D: time x{nl['seconds'] / base['seconds']:.2f}, "
                  f"memory x{nl['peak_gb'] / base['peak_gb']:.2f}")
        for name in MODELS:
            fp32 = results[name, "fp32"]["seconds"]
            print(f"  {frames} frames, {name:26s} bf16 / fp32: x{results[name, 'bf16']['seconds'] / fp32:.2f}, "
                  f"bf16+channels_last_3d / fp32: x{results[name, 'bf16+cl3d']['seconds'] / fp32:.2f}")


# --- 2. the block at res2 size --------------------------------------------------------------------------------

def block_pass(pairwise: str, shape: tuple[int, ...], explicit: bool, steps: int, device: str) -> dict:
    """Forward + backward of one block under bf16 autocast: seconds and peak GB, or the out-of-memory error."""
    import torch

    from nlstudy.blocks import NonLocalBlock
    from nlstudy.blocks.reference import explicit_forward

    torch.manual_seed(0)
    block = NonLocalBlock(shape[1], pairwise=pairwise, subsample=False).to(device).train()
    x = torch.randn(*shape, device=device, requires_grad=True)
    forward = (lambda: explicit_forward(block, x)) if explicit else (lambda: block(x))

    def one_pass() -> None:
        with autocast(device, "bf16"):
            out = forward()
        out.float().sum().backward()
        x.grad = None
        block.zero_grad(set_to_none=True)

    reset_peak(device)
    try:
        one_pass()  # warm-up
        timer = Timer(device)
        timer.start()
        for _ in range(steps):
            one_pass()
        seconds = timer.stop() / steps
    except torch.OutOfMemoryError as e:
        del e
        if device == "cuda":
            torch.cuda.empty_cache()
        return {"oom": True}
    return {"oom": False, "seconds": seconds, "peak_gb": peak_gb(device)}


def block_at_res2(args, device: str) -> int:
    """0 when every one of our paths ran; 1 if any ran out of memory."""
    shape = tuple(args.block_shape)
    n = shape[2] * shape[3] * shape[4]
    print(f"\n== 2. the block at res2 size without subsampling: input {'x'.join(map(str, shape))} "
          f"(N = {n:,} positions per clip), forward + backward, bf16 autocast ==")
    print(f"{'pairwise':20s} {'ours s':>8s} {'ours GB':>8s} {'explicit s':>10s} {'explicit GB':>11s}")
    from nlstudy.blocks.pairwise import FORMS
    from nlstudy.choices import DEFAULT_PAIRWISE

    failed = 0
    for pairwise in sorted(FORMS, key=lambda p: p != DEFAULT_PAIRWISE):  # every form, the paper's default first
        ours = block_pass(pairwise, shape, False, args.steps, device)
        ref = block_pass(pairwise, shape, True, args.steps, device)
        failed += ours["oom"]
        cell = lambda r, key, width: f"{'OOM':>{width}s}" if r["oom"] else f"{r[key]:{width}.3f}"
        print(f"{pairwise:20s} {cell(ours, 'seconds', 8)} {cell(ours, 'peak_gb', 8)} "
              f"{cell(ref, 'seconds', 10)} {cell(ref, 'peak_gb', 11)}", flush=True)
    print("  ours ran every pairwise function" if not failed else f"  MISSED: ours ran out of memory {failed} time(s)")
    return 1 if failed else 0


# --- 3. the LightningModule against a plain loop ----------------------------------------------------------------

def lightning_vs_plain(args, device: str) -> None:
    import pytorch_lightning as pl
    import torch
    from torch.utils.data import DataLoader, Dataset

    from nlstudy.lit.module import VideoClassifier
    from nlstudy.lit.optim import lr_factor, make_optimizer
    from nlstudy.models import BackboneSpec

    frames, size, batch, classes = args.frames[0], args.size, args.batch, 400
    warm, steps = 3, args.steps

    class Clips(Dataset):  # the same clip every time: the loader's cost without decoding
        def __init__(self):
            self.clip = torch.randn(3, frames, size, size)

        def __len__(self):
            return batch * (warm + steps)

        def __getitem__(self, i):
            return self.clip, i % classes

    def loader():
        return DataLoader(Clips(), batch_size=batch, num_workers=2, pin_memory=device == "cuda")

    spec = BackboneSpec(**MODELS["NL C2D R50 5-block"], num_classes=classes)
    times: dict[str, float] = {}

    class Clock(pl.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch_, batch_idx):
            if batch_idx == warm - 1:
                self.timer = Timer(device)
                self.timer.start()
            elif batch_idx == warm + steps - 1:
                times["lightning"] = self.timer.stop() / steps

    torch.manual_seed(0)
    module = VideoClassifier(spec, channels_last=True)
    trainer = pl.Trainer(accelerator="gpu" if device == "cuda" else "cpu", devices=1,
                         precision="bf16-mixed", max_steps=warm + steps, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[Clock()],
                         num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(module, train_dataloaders=loader())

    torch.manual_seed(0)
    plain = VideoClassifier(spec, channels_last=True).net.to(device).train()
    optimizer = make_optimizer(plain_spec := module.optim_spec, plain.parameters())
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(plain_spec, s, warm + steps))
    timer = Timer(device)
    for i, (clips, labels) in enumerate(loader()):
        if i == warm:
            timer.start()
        clips = clips.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last_3d)
        labels = labels.to(device, non_blocking=True)
        with autocast(device, "bf16"):
            loss = torch.nn.functional.cross_entropy(plain(clips), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        schedule.step()
    times["plain"] = timer.stop() / steps
    print(f"\n== 3. training loop: NL C2D R50 5-block, {batch}x3x{frames}x{size}x{size}, bf16-mixed, "
          f"channels_last_3d, {steps} timed steps ==")
    print(f"  plain PyTorch loop {times['plain']:.4f} s/step, LightningModule + Trainer {times['lightning']:.4f} "
          f"s/step: x{times['lightning'] / times['plain']:.3f}")


# --- 4. where the non-local blocks' time goes ---------------------------------------------------------------

def profile_blocks(args, device: str) -> None:
    """The GPU kernels of one training step of NL C2D R50 5-block minus those of C2D R50 (same clips), fp32 and
    bf16 + channels_last_3d: which kernels the five blocks add, by total time."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from nlstudy.models import build_model

    frames = args.frames[0]
    print(f"\n== 4. kernels the 5 blocks add to one training step ({args.batch}x3x{frames}x{args.size}x{args.size}) ==")
    for label, (dtype, channels_last) in (("fp32", PRECISIONS["fp32"]), ("bf16+cl3d", PRECISIONS["bf16+cl3d"])):
        totals = {}
        for name in ("C2D R50", "NL C2D R50 5-block"):
            torch.manual_seed(0)
            model = build_model(**MODELS[name], num_classes=400).to(device).train()
            clips = torch.randn(args.batch, 3, frames, args.size, args.size, device=device)
            if channels_last:
                model = model.to(memory_format=torch.channels_last_3d)
                clips = clips.contiguous(memory_format=torch.channels_last_3d)

            def step():
                with autocast(device, dtype):
                    loss = model(clips).float().logsumexp(-1).mean()
                loss.backward()

            for _ in range(3):
                step()
            activity = ProfilerActivity.CUDA if device == "cuda" else ProfilerActivity.CPU
            with profile(activities=[activity]) as prof:
                for _ in range(3):
                    step()
                if device == "cuda":
                    torch.cuda.synchronize()
            kernels = {}
            for event in prof.key_averages():
                us = event.device_time_total if device == "cuda" else event.self_cpu_time_total
                if us > 0:
                    kernels[event.key] = us / 3 / 1000  # ms per step
            totals[name] = kernels
        base, nl = totals["C2D R50"], totals["NL C2D R50 5-block"]
        extra = sorted(((nl[k] - base.get(k, 0.0), k) for k in nl), reverse=True)[:12]
        print(f"  {label}: all kernels {sum(base.values()):.1f} ms (C2D) vs {sum(nl.values()):.1f} ms (NL) per step; "
              "the largest additions:")
        for ms, key in extra:
            print(f"    {ms:8.2f} ms  {key[:110]}")


# --- 5. torch.compile and CUDA graphs on the 8x224 step ---------------------------------------------------------

COMPILE_MODES = {"eager": None, "compile": "default", "reduce-overhead": "reduce-overhead"}
PAPER_FLOPS_RATIO = 1.2  # NL C2D 5-block over C2D, ResNet-50 (Wang et al. 2018, Table 2e)


def compiled_step_time(spec: dict, mode: str, args, device: str, classes: int = 400) -> dict:
    """One training step (bf16 + channels_last_3d, SGD) of `spec` at 8x224x224 under `mode` (COMPILE_MODES): the
    seconds of the first steps (compiling and graph capture) and of a step after them."""
    import torch

    from nlstudy.models import build_model

    torch.manual_seed(0)
    frames = 8 if not args.smoke else args.frames[0]
    spec = {**spec, "width": 4} if args.smoke else spec  # --smoke: a narrow ResNet-50, the same layers
    model = build_model(**spec, num_classes=classes).to(device).train().to(memory_format=torch.channels_last_3d)
    clips = torch.randn(args.batch, 3, frames, args.size, args.size, device=device)
    clips = clips.contiguous(memory_format=torch.channels_last_3d)
    labels = torch.randint(0, classes, (args.batch,), device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    forward = model
    if COMPILE_MODES[mode] is not None:
        backend = "eager" if args.smoke else "inductor"  # --smoke: the plumbing only, no code generation
        forward = torch.compile(model, mode=COMPILE_MODES[mode] if not args.smoke else None, backend=backend)

    def one_step() -> None:
        if mode == "reduce-overhead" and device == "cuda":
            torch.compiler.cudagraph_mark_step_begin()  # a new iteration: the graphs' outputs may be reused
        with autocast(device, "bf16" if device == "cuda" else "fp32"):  # --smoke: fp32 (this CPU has no bf16)
            loss = torch.nn.functional.cross_entropy(forward(clips), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    timer = Timer(device)
    timer.start()
    for _ in range(1 if args.smoke else 3):  # compiling, CUDA graph warm-up and capture, cuDNN autotuning
        one_step()
    first = timer.stop()
    reset_peak(device)
    timer.start()
    for _ in range(args.steps):
        one_step()
    seconds = timer.stop() / args.steps
    return {"first_s": first, "seconds": seconds, "clips_per_s": args.batch / seconds, "peak_gb": peak_gb(device)}


def compiled_steps(args, device: str) -> None:
    from nlstudy.models.profile import model_facts

    frames = 8 if not args.smoke else args.frames[0]
    print(f"\n== 5. torch.compile: {args.batch}x3x{frames}x{args.size}x{args.size} clips, bf16 + channels_last_3d, "
          f"SGD; the first 3 steps (compiling) apart ==")
    print(f"{'model':26s} {'mode':16s} {'first 3 s':>9s} {'s/step':>8s} {'clips/s':>8s} {'x eager':>7s} {'peak GB':>8s}")
    names = ("C2D R50", "NL C2D R50 5-block")
    results = {}
    for name in names:
        for mode in COMPILE_MODES:
            r = compiled_step_time(MODELS[name], mode, args, device)
            results[name, mode] = r
            print(f"{name:26s} {mode:16s} {r['first_s']:9.1f} {r['seconds']:8.4f} {r['clips_per_s']:8.1f} "
                  f"{results[name, 'eager']['seconds'] / r['seconds']:7.2f} {r['peak_gb']:8.2f}", flush=True)
    width = {"width": 4} if args.smoke else {}
    flops = [model_facts({**MODELS[name], **width, "num_classes": 400}, (3, frames, args.size, args.size))
             ["flops_per_clip"] for name in names]
    print(f"  FLOPs NL 5-block / C2D: x{flops[1] / flops[0]:.2f} here (the paper's Table 2e: x{PAPER_FLOPS_RATIO})")
    for mode in COMPILE_MODES:
        ratio = results[names[1], mode]["seconds"] / results[names[0], mode]["seconds"]
        print(f"  {mode:16s} NL 5-block / C2D time: x{ratio:.2f} (FLOPs x{flops[1] / flops[0]:.2f}; "
              f"time over FLOPs ratio {ratio / (flops[1] / flops[0]):.2f})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8, help="clips per step (the paper: 8 per GPU)")
    p.add_argument("--frames", type=int, nargs="+", default=[8, 32], help="clip lengths of part 1")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=10, help="timed steps per configuration")
    p.add_argument("--block-shape", type=int, nargs=5, default=[8, 256, 16, 56, 56], metavar=("B", "C", "T", "H", "W"))
    p.add_argument("--parts", default="12345", help="which parts to run (default all: 12345)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU, to check the script itself")
    args = p.parse_args(argv)
    import torch

    if args.smoke:
        device = "cpu"
        args.batch, args.frames, args.size, args.steps, args.block_shape = 2, [2], 32, 1, [1, 16, 2, 6, 6]
    elif not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA GPU here; run it on a GPU machine (or --smoke on the CPU)", file=sys.stderr)
        return 2
    else:
        device = "cuda"
        torch.backends.cudnn.benchmark = True
        print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    code = 0
    if "1" in args.parts:
        training_steps(args, device)
    if "2" in args.parts:
        code = block_at_res2(args, device)
    if "3" in args.parts:
        lightning_vs_plain(args, device)
    if "4" in args.parts:
        profile_blocks(args, device)
    if "5" in args.parts:
        compiled_steps(args, device)
    return code


if __name__ == "__main__":
    sys.exit(main())
