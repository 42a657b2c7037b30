"""The non-local block against its peers, side by side with copied weights: pytorchvideo's `NonLocal`, timm's
`NonLocalAttn` and the explicit form of AlexHex7/Non-local_pytorch (the most-used PyTorch port).

Each case builds one of our blocks configured as the peer computes (the same pairwise function, scale,
subsampling and its order, inner width), copies the weights into the peer, checks that both give the same output
on the same input, then times forward plus backward (to the input and every weight) on both, alternately, on the
CPU in float32 at one thread (median process CPU time of --reps), and takes the peak of the bytes the CPU
allocator holds during one pass (torch.profiler's memory events, as benchmarks/nl_block.py).

    .venv/bin/python benchmarks/nl_peers.py                # every case (about 15 minutes on 2 idle cores)
    .venv/bin/python benchmarks/nl_peers.py --sizes demo   # only the demo's sizes (a minute)
    .venv/bin/python benchmarks/nl_peers.py --quick        # tiny inputs, one pass: a smoke test, no verdict

The peers:
- pytorchvideo `NonLocal` (`pytorchvideo.layers.nonlocal_net.create_nonlocal`; 3-d): "softmax" = our embedded
  Gaussian with scale=True (1/sqrt(C')), "dot_product"; its pool (1x2x2) max-pools x before phi and g: our
  subsample_order="before".
- timm `NonLocalAttn` (`timm.layers.non_local_attn`; 2-d): the embedded Gaussian, C' = C/8, its logits scaled by
  1/sqrt(C) (of the input's width, not C'): our block with scale=False and theta's weights times 1/sqrt(C); no
  subsampling.
- AlexHex7/Non-local_pytorch (`lib/non_local_*.py`, `_NonLocalBlockND`; not on PyPI, so its forward is written
  out below, `Port`): the four pairwise functions, the full (B, N, N') matrix (the concatenation form repeats
  theta and phi to (B, 2C', N, N')), pooling after phi and g (the gaussian form pools x for phi).
When pytorchvideo or timm is not installed (`pip install -e '.[bench]'`), its cases are left out and the script
says so.

A case misses when our time is above MAX_TIME_RATIO x the peer's; then the script prints MISSED and exits 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nl_block import machine, peak_bytes  # noqa: E402  (the measuring helpers of the block's other benchmark)

from nlstudy.blocks import NonLocalBlock  # noqa: E402

MAX_TIME_RATIO = 1.0
os.environ.setdefault("KINETO_LOG_LEVEL", "6")

# (B, C, T, H, W) / (B, C, H, W) inputs by name
SIZES_3D = {
    "paper res3": (2, 512, 8, 28, 28),  # 8-frame 224 clips of a ResNet-50 at res3 (N = 6,272)
    "paper res4": (2, 1024, 8, 14, 14),  # (N = 1,568)
    "demo res2": (32, 16, 4, 8, 8),  # the demo's C2D ResNet-18, width 16, 4x16x16 clips, batch 32
    "demo res3": (32, 32, 4, 4, 4),
    "demo res4": (32, 64, 4, 2, 2),
}
SIZES_2D = {
    "image res2": (2, 256, 56, 56),  # a ResNet-50 on 224 images (N = 3,136)
    "image res3": (2, 512, 28, 28),
    "demo res3 2-d": (32, 32, 8, 8),
}
QUICK_3D, QUICK_2D = {"quick": (2, 8, 2, 4, 4)}, {"quick 2-d": (2, 16, 4, 4)}


def available_bytes() -> int:
    """The memory the kernel can give without swapping (MemAvailable of /proc/meminfo; all of it elsewhere)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class Port(nn.Module):
    """AlexHex7/Non-local_pytorch's `_NonLocalBlockND` (3-d, bn_layer=True), its forward as in its lib/ files."""

    def __init__(self, pairwise: str, in_channels: int, sub_sample: bool):
        super().__init__()
        self.pairwise, self.in_channels, self.inter = pairwise, in_channels, in_channels // 2
        pool = nn.MaxPool3d(kernel_size=(1, 2, 2))
        self.g = nn.Conv3d(in_channels, self.inter, 1)
        self.W = nn.Sequential(nn.Conv3d(self.inter, in_channels, 1), nn.BatchNorm3d(in_channels))
        if pairwise != "gaussian":
            self.theta = nn.Conv3d(in_channels, self.inter, 1)
            self.phi = nn.Conv3d(in_channels, self.inter, 1)
        if pairwise == "concatenation":
            self.concat_project = nn.Sequential(nn.Conv2d(self.inter * 2, 1, 1, 1, 0, bias=False), nn.ReLU())
        self.sub_sample = sub_sample
        if sub_sample:
            self.g = nn.Sequential(self.g, pool)
            if pairwise == "gaussian":
                self.phi = pool
            else:
                self.phi = nn.Sequential(self.phi, pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.size(0)
        g_x = self.g(x).view(b, self.inter, -1).permute(0, 2, 1)  # (B, N', C')
        if self.pairwise == "gaussian":
            theta_x = x.view(b, self.in_channels, -1).permute(0, 2, 1)
            phi_x = (self.phi(x) if self.sub_sample else x).view(b, self.in_channels, -1)
        elif self.pairwise == "concatenation":
            theta_x = self.theta(x).view(b, self.inter, -1, 1)  # (B, C', N, 1)
            phi_x = self.phi(x).view(b, self.inter, 1, -1)  # (B, C', 1, N')
            n, n_keys = theta_x.size(2), phi_x.size(3)
            need = 4 * b * 2 * self.inter * n * n_keys * x.element_size()  # two repeats, the cat, its ReLU'd map
            if need > available_bytes():  # the kernel would overcommit and the OOM killer end the whole run
                raise RuntimeError(f"can't allocate memory: the port's (B, 2C', N, N') pairs need {need / 2**30:.0f} "
                                   f"GB, {available_bytes() / 2**30:.0f} GB available")
            pairs = torch.cat([theta_x.repeat(1, 1, 1, n_keys), phi_x.repeat(1, 1, n, 1)], dim=1)  # (B, 2C', N, N')
            f = self.concat_project(pairs).view(b, n, n_keys)
        else:
            theta_x = self.theta(x).view(b, self.inter, -1).permute(0, 2, 1)  # (B, N, C')
            phi_x = self.phi(x).view(b, self.inter, -1)  # (B, C', N')
        if self.pairwise != "concatenation":
            f = torch.matmul(theta_x, phi_x)  # (B, N, N')
        f_div_c = F.softmax(f, dim=-1) if self.pairwise in ("gaussian", "embedded_gaussian") else f / f.size(-1)
        y = torch.matmul(f_div_c, g_x).permute(0, 2, 1).contiguous()  # (B, C', N)
        return self.W(y.view(b, self.inter, *x.size()[2:])) + x


def copy_modules(pairs: list[tuple[nn.Module, nn.Module]]) -> None:
    """Copies each source module's parameters and buffers into the target's (the same, in the same order; the
    concatenation form's projection is a Linear on our side, a 1x1 Conv2d on the port's)."""
    with torch.no_grad():
        for src, dst in pairs:
            for s, d in zip(src.state_dict().values(), dst.state_dict().values(), strict=True):
                d.copy_(s.view_as(d))


@dataclass(frozen=True)
class Case:
    peer: str  # "alexhex7", "pytorchvideo", "timm"
    form: str  # the peer's name of the pairwise function
    subsampled: bool
    size: str

    @property
    def shape(self) -> tuple[int, ...]:
        return {**SIZES_3D, **SIZES_2D, **QUICK_3D, **QUICK_2D}[self.size]

    def build(self) -> tuple[NonLocalBlock, nn.Module]:
        """(our block, the peer) with the same weights; the output norm's weights non-zero on both (a freshly built
        block is the identity, which would compare nothing)."""
        c = self.shape[1]
        if self.peer == "alexhex7":
            ours = NonLocalBlock(c, 3, self.form, subsample=self.subsampled)
            peer = Port(self.form, c, self.subsampled)
            scramble(ours)
            pairs = [(ours.g, peer.g[0] if self.subsampled else peer.g), (ours.out_proj, peer.W[0]),
                     (ours.out_norm, peer.W[1])]
            if ours.theta is not None:
                pairs += [(ours.theta, peer.theta), (ours.phi, peer.phi[0] if self.subsampled else peer.phi)]
            if ours.concat_proj is not None:
                pairs.append((ours.concat_proj, peer.concat_project[0]))
            copy_modules(pairs)
            return ours, peer
        if self.peer == "pytorchvideo":
            from pytorchvideo.layers.nonlocal_net import create_nonlocal

            pairwise = {"softmax": "embedded_gaussian", "dot_product": "dot_product"}[self.form]
            ours = NonLocalBlock(c, 3, pairwise, subsample=self.subsampled, subsample_order="before",
                                 scale=self.form == "softmax")
            peer = create_nonlocal(dim_in=c, dim_inner=c // 2, pool_size=(1, 2, 2) if self.subsampled else None,
                                   instantiation=self.form)
            scramble(ours)
            copy_modules([(ours.theta, peer.conv_theta), (ours.phi, peer.conv_phi), (ours.g, peer.conv_g),
                          (ours.out_proj, peer.conv_out), (ours.out_norm, peer.norm)])
            return ours, peer
        from timm.layers.non_local_attn import NonLocalAttn

        peer = NonLocalAttn(c)
        ours = NonLocalBlock(c, 2, "embedded_gaussian", peer.t.out_channels, subsample=False)
        scramble(ours)
        copy_modules([(ours.theta, peer.t), (ours.phi, peer.p), (ours.g, peer.g), (ours.out_proj, peer.z),
                      (ours.out_norm, peer.norm)])
        with torch.no_grad():  # timm scales the logits by 1/sqrt(C), ours (scale=False) not: theta carries it
            ours.theta.weight.mul_(peer.scale), ours.theta.bias.mul_(peer.scale)
        return ours, peer


def scramble(block: NonLocalBlock) -> None:
    with torch.no_grad():
        block.out_norm.weight.uniform_(0.5, 1.5), block.out_norm.bias.uniform_(-0.1, 0.1)


def cases(sizes: str, quick: bool) -> list[Case]:
    s3 = QUICK_3D if quick else {k: v for k, v in SIZES_3D.items() if sizes == "all" or k.startswith(sizes)}
    s2 = QUICK_2D if quick else {k: v for k, v in SIZES_2D.items() if sizes == "all" or k.startswith(sizes)}
    out = [Case("alexhex7", form, sub, size) for size in s3 for form in
           ("gaussian", "embedded_gaussian", "dot_product", "concatenation") for sub in (False, True)]
    out += [Case("pytorchvideo", form, sub, size) for size in s3 for form in ("softmax", "dot_product")
            for sub in (False, True)]
    out += [Case("timm", "softmax", False, size) for size in s2]
    return out


def available(peer: str) -> bool:
    return peer == "alexhex7" or importlib.util.find_spec(peer) is not None


def measure(case: Case, reps: int) -> dict:
    """{"ours"/"peer": (median CPU seconds, peak bytes)} of forward+backward, and the outputs' largest gap."""
    torch.manual_seed(0)
    ours, peer = case.build()
    x = torch.randn(*case.shape, requires_grad=True)
    paths = {"ours": ours, "peer": peer}
    with torch.no_grad():
        try:
            gap = (ours(x) - peer(x)).abs().max().item()
        except RuntimeError as err:  # the peer's full matrices do not fit (concatenation: (B, 2C', N, N'))
            if "allocate" not in str(err) and "out of memory" not in str(err):
                raise
            gap, paths = float("nan"), {"ours": ours}
    grad = torch.randn(case.shape)

    def step(module: nn.Module) -> None:
        module(x).backward(grad)
        x.grad = None
        module.zero_grad(set_to_none=True)

    peaks = {name: peak_bytes(lambda: step(m)) for name, m in paths.items()}  # also the warm-up
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    for rep in range(reps):  # alternately, each side first every other time
        for name in sorted(paths, reverse=rep % 2 == 1):
            start = time.process_time()
            step(paths[name])
            seconds[name].append(time.process_time() - start)
    return {"peer": None, **{name: (statistics.median(seconds[name]), peaks[name]) for name in paths}, "gap": gap}


def table(rows: list[tuple[Case, dict]], verdict: bool = True) -> tuple[str, int]:
    header = (f"{'peer':12s} {'form':17s} {'subsampled':10s} {'size':14s} {'input':15s} {'peer s':>8s} {'ours s':>8s} "
              f"{'time x':>6s} {'peer MB':>8s} {'ours MB':>8s} {'memory x':>8s} {'max |diff|':>10s}")
    lines, missed = [header, "-" * len(header)], 0
    for case, m in rows:
        (ours_s, ours_b) = m["ours"]
        if m["peer"] is None:  # the peer ran out of memory: ours is ahead whatever its time
            lines.append(f"{case.peer:12s} {case.form:17s} {'yes' if case.subsampled else 'no':10s} {case.size:14s} "
                         f"{'x'.join(map(str, case.shape)):15s} {'OOM':>8s} {ours_s:8.4f} {'-':>6s} "
                         f"{'OOM':>8s} {ours_b / 2**20:8.1f} {'-':>8s} {'-':>10s}  (the peer cannot allocate it)")
            continue
        (peer_s, peer_b) = m["peer"]
        ratio = ours_s / peer_s
        miss = verdict and ratio > MAX_TIME_RATIO
        missed += miss
        lines.append(f"{case.peer:12s} {case.form:17s} {'yes' if case.subsampled else 'no':10s} {case.size:14s} "
                     f"{'x'.join(map(str, case.shape)):15s} {peer_s:8.4f} {ours_s:8.4f} {ratio:6.3f} "
                     f"{peer_b / 2**20:8.1f} {ours_b / 2**20:8.1f} {ours_b / max(peer_b, 1):8.3f} {m['gap']:10.2e}"
                     + ("  MISSED" if miss else ""))
    return "\n".join(lines), missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", choices=("all", "paper", "demo", "image"), default="all",
                        help="which inputs (default all)")
    parser.add_argument("--peers", nargs="+", choices=("alexhex7", "pytorchvideo", "timm"),
                        default=["alexhex7", "pytorchvideo", "timm"])
    parser.add_argument("--reps", type=int, default=3, help="timed passes per side, the median kept (default 3)")
    parser.add_argument("--quick", action="store_true", help="tiny inputs, one pass: a smoke test, no verdict")
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error("--reps must be positive")
    torch.set_num_threads(1)
    missing = [p for p in args.peers if not available(p)]
    todo = [c for c in cases(args.sizes, args.quick) if c.peer in args.peers and c.peer not in missing]
    print(f"{machine()}; torch {torch.__version__}, 1 thread, load average {os.getloadavg()[0]:.2f}")
    print("forward+backward, float32; time: median CPU time of "
          f"{1 if args.quick else args.reps}; memory: peak allocated (torch.profiler)")
    for peer in missing:
        print(f"{peer} is not installed (pip install -e '.[bench]'): its cases are left out")
    rows: list[tuple[Case, dict]] = []
    for case in todo:
        rows.append((case, measure(case, 1 if args.quick else args.reps)))
        print(table(rows[-1:], verdict=not args.quick)[0].splitlines()[-1], flush=True, file=sys.stderr)
    text, missed = table(rows, verdict=not args.quick)
    print(text)
    worst = max((m["gap"] for _, m in rows if m["peer"] is not None), default=0.0)
    print(f"load average {os.getloadavg()[0]:.2f}; outputs agree within {worst:.2e}")
    if args.quick:
        print("--quick: inputs too small to judge the time ratios")
        return 0
    print(f"{len(rows) - missed}/{len(rows)} cases at most {MAX_TIME_RATIO}x the peer's time")
    if missed:
        print(f"MISSED: {missed} case(s) slower than the peer")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
