"""Golden check of the model variants the demo and the study sweeps build: with torch.manual_seed(0), the
initial parameters and buffers (values, in registration order: init consumes the RNG in that order), then the
logits, the loss, every gradient and the parameters after each of 2 SGD steps on a fixed batch, digested
(SHA-256 of the float bytes) and compared with the digests recorded from the code before a refactor
(tests/fixtures/models_golden.json). A refactor of the models and blocks must keep every digest: the numbers
bit for bit. State-dict key names are not digested (only values, in order), so renaming a module keeps them.

The digests are of one kind of CPU's arithmetic (torch 2.14.1, one thread): an Intel Xeon and an AMD EPYC give
different bits from the same code (torch picks other kernels), so the file keeps one set of digests per CPU vendor
(/proc/cpuinfo's vendor_id) and, for every machine, each field's float64 sum and sum of magnitudes: on a vendor
with recorded digests the check is bit for bit; on any other it compares the sums within 1e-3 of their magnitude
(a refactor that changes a number by more than rounding still fails there). After a torch upgrade, check the code
is the one that produced them and rewrite this machine's entry with `python tests/test_models_golden.py --write`
(a few seconds); it keeps the other vendors' digests."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from nlstudy.models import build_model

GOLDEN = Path(__file__).parent / "fixtures" / "models_golden.json"

# experiments/demo.yaml's backbone (ResNet-18 C2D, width 16, no pools, PyTorch's init, NL init_std 0.1)
DEMO = {"arch": "c2d", "depth": 18, "width": 16, "nonlocal_blocks": "none", "dropout": 0.0,
        "conv1_stride": (1, 2, 2), "pool1": False, "pool2": False, "init": "pytorch", "nl": {"init_std": 0.1},
        "num_classes": 4}
TWO = {"res3": [1], "res4": [1]}
# the study's paper-scale presets at a small width: ResNet-50 with the default (msra) init and pools
PAPER = {"depth": 50, "width": 4, "num_classes": 5, "conv1_stride": (1, 2, 2)}
CLIP = (2, 3, 4, 16, 16)  # (B, C, T, H, W): the demo's clips
FRAME = (2, 3, 1, 32, 32)  # 2-d frames (data.frames=1), the study's reach task at a smaller size

VARIANTS = {
    "c2d": (DEMO, CLIP),
    **{f"nl_{p}_1block": ({**DEMO, "nonlocal_blocks": "1-block", "nl": {"init_std": 0.1, "pairwise": p}}, CLIP)
       for p in ("gaussian", "embedded_gaussian", "dot_product", "concatenation")},
    "nl_res3": ({**DEMO, "nonlocal_blocks": "res3"}, CLIP),
    "nl_res2": ({**DEMO, "nonlocal_blocks": "res2"}, CLIP),
    "nl_res5": ({**DEMO, "nonlocal_blocks": "res5"}, CLIP),
    "nl_res2_res3_res4_5": ({**DEMO, "nonlocal_blocks": {"res2": [1], "res3": [0, 1], "res4": [0, 1]}}, CLIP),
    **{f"nl_{m}": ({**DEMO, "nonlocal_blocks": TWO, "nl": {"init_std": 0.1, "mode": m}}, CLIP)
       for m in ("space", "time", "spacetime")},
    **{f"{b}": ({**DEMO, "nonlocal_blocks": TWO, "block": b}, CLIP)
       for b in ("residual", "temporal_residual", "global_context", "squeeze_excitation")},
    "i3d_3x3x3": ({**DEMO, "arch": "i3d_3x3x3"}, CLIP),
    "i3d_3x1x1_r50": ({**PAPER, "arch": "i3d_3x1x1", "nonlocal_blocks": "1-block"}, CLIP),
    "nl_5block_r50": ({**PAPER, "nonlocal_blocks": "5-block"}, CLIP),
    "nl_10block_r50": ({**PAPER, "nonlocal_blocks": "10-block", "nl": {"subsample_order": "before", "scale": True}},
                       CLIP),
    "frozen_bn_conv_zero": ({**DEMO, "nonlocal_blocks": TWO, "norm": "frozen_bn", "zero_init_residual": True,
                             "nl": {"zero_init": "conv", "subsample": False}}, CLIP),
    "frames_pool1": ({**DEMO, "nonlocal_blocks": {"res3": [1]}, "pool1": True}, FRAME),
    "frames_pool1_gc": ({**DEMO, "nonlocal_blocks": {"res3": [1]}, "block": "global_context", "pool1": True}, FRAME),
    "frames_pool1_residual": ({**DEMO, "nonlocal_blocks": {"res3": [1]}, "block": "residual", "pool1": True}, FRAME),
    "torchvision_resnet18": ({"arch": "torchvision:resnet18", "nonlocal_blocks": TWO, "dropout": 0.0,
                              "num_classes": 4, "nl": {"subsample": False}}, FRAME),
    "torchvision_r3d_18": ({"arch": "torchvision:r3d_18", "nonlocal_blocks": {"res4": [0]}, "num_classes": 4},
                           CLIP),
}
# the non-local block alone on every compute path: the explicit weights (one chunk, or query rows a chunk at a
# time), and the default paths (fused attention, associativity, the sorted prefix sums) where explicit never pays
PATHS = {"explicit": {}, "chunked": {"explicit_chunk_bytes": 256}, "default": {"explicit_max_bytes": 0},
         "symmetric": {"explicit_chunk_bytes": 256, "symmetric_min_width": 1}}
BLOCKS = {f"block_{p}_{m}_{path}": ({"in_channels": 8, "dim": 3, "pairwise": p, "mode": m, "init_std": 0.1}, path)
          for p in ("gaussian", "embedded_gaussian", "dot_product", "concatenation")
          for m in ("spacetime", "space", "time") for path in PATHS if path != "symmetric"}
BLOCKS["block_gaussian_unpooled_symmetric"] = ({"in_channels": 8, "pairwise": "gaussian", "subsample": False,
                                                "init_std": 0.1}, "symmetric")
BLOCKS["block_embedded_gaussian_before_scaled"] = ({"in_channels": 8, "subsample_order": "before", "scale": True,
                                                    "init_std": 0.1}, "explicit")
BLOCK_INPUT = (2, 8, 4, 6, 6)


def machine() -> str:
    """The CPU vendor whose arithmetic the digests are of ("GenuineIntel", "AuthenticAMD", ...)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


SUMS: dict[str, list[float]] = {}  # field -> [sum, sum of magnitudes] of the last compute(), beside its digests


def _digest(tensors, field: str | None = None) -> str:
    h = hashlib.sha256()
    total = magnitude = 0.0
    for t in tensors:
        t = t.detach().contiguous().cpu()
        h.update(t.numpy().tobytes())
        if t.is_floating_point():
            total += float(t.double().sum())
            magnitude += float(t.double().abs().sum())
    if field is not None:
        SUMS[field] = [total, magnitude]
    return h.hexdigest()[:16]


def digests(fields: dict, shape: tuple[int, ...]) -> dict[str, str]:
    """{"init": ..., "step1.logits", "step1.loss", "step1.grads", "step1.params", ... "step2.*"} of one variant."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = build_model(**fields).train()
        out = {"init": _digest([*model.parameters(), *model.buffers()], "init")}
        g = torch.Generator().manual_seed(1)
        clips = torch.randn(shape, generator=g)
        labels = torch.randint(0, fields["num_classes"], (shape[0],), generator=g)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for step in (1, 2):
            optimizer.zero_grad()
            logits = model(clips)
            loss = F.cross_entropy(logits, labels)
            loss.backward()
            out[f"step{step}.logits"] = _digest([logits], f"step{step}.logits")
            out[f"step{step}.loss"] = _digest([loss], f"step{step}.loss")
            out[f"step{step}.grads"] = _digest([p.grad for p in model.parameters() if p.grad is not None], f"step{step}.grads")
            optimizer.step()
            out[f"step{step}.params"] = _digest([*model.parameters(), *model.buffers()], f"step{step}.params")
        return out
    finally:
        torch.set_num_threads(threads)


def block_digests(fields: dict, path: str) -> dict[str, str]:
    """The same for one NonLocalBlock (loss: the mean square of its output; its first step moves only the zeroed
    output norm, the second every weight)."""
    from nlstudy.blocks import NonLocalBlock

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        block = NonLocalBlock(**fields).train()
        for name, value in PATHS[path].items():
            setattr(block, name, value)
        out = {"init": _digest([*block.parameters(), *block.buffers()], "init")}
        x = torch.randn(BLOCK_INPUT, generator=torch.Generator().manual_seed(1))
        optimizer = torch.optim.SGD(block.parameters(), lr=0.5)
        for step in (1, 2):
            optimizer.zero_grad()
            y = block(x)
            y.square().mean().backward()
            out[f"step{step}.out"] = _digest([y], f"step{step}.out")
            out[f"step{step}.grads"] = _digest([p.grad for p in block.parameters() if p.grad is not None], f"step{step}.grads")
            optimizer.step()
        out["attention"] = _digest([block.eval().attention(x)], "attention")
        return out
    finally:
        torch.set_num_threads(threads)


def compute(name: str) -> tuple[dict[str, str], dict[str, list[float]]]:
    """One variant's digests and its fields' [sum, sum of magnitudes]."""
    SUMS.clear()
    out = digests(*VARIANTS[name]) if name in VARIANTS else block_digests(*BLOCKS[name])
    return out, dict(SUMS)


def sums_agree(got: list[float], want: list[float], rel: float = 1e-3) -> bool:
    scale = rel * max(abs(want[1]), 1e-12) + 1e-9
    return abs(got[0] - want[0]) <= scale and abs(got[1] - want[1]) <= scale


@pytest.mark.parametrize("variant", sorted(VARIANTS) + sorted(BLOCKS))
def test_model_numbers_are_unchanged(variant):
    recorded = json.loads(GOLDEN.read_text())
    names = sorted({**VARIANTS, **BLOCKS})
    assert sorted(recorded["sums"]) == names, "a variant added or removed: rewrite the file"
    got, sums = compute(variant)
    wrong = {f: (sums[f], want) for f, want in recorded["sums"][variant].items() if not sums_agree(sums[f], want)}
    assert not wrong, f"{variant}: sums moved beyond rounding: {wrong}"
    if machine() in recorded["digests"]:  # bit for bit on a CPU whose arithmetic was recorded
        assert got == recorded["digests"][machine()][variant]


def test_the_sums_tell_a_change_beyond_rounding():
    # the check on an unrecorded CPU can fail too: the logits of one step scaled by 1.01 move their sums past 1e-3
    fields, shape = VARIANTS["nl_embedded_gaussian_1block"]
    torch.manual_seed(0)
    logits = build_model(**fields)(torch.randn(shape, generator=torch.Generator().manual_seed(1))).detach()
    _digest([logits], "before")
    _digest([logits * 1.01], "after")
    assert not sums_agree(SUMS["after"], SUMS["before"])
    assert sums_agree(SUMS["before"], SUMS["before"])


def test_the_digests_tell_a_change():
    # the check can fail: one parameter changed by one ulp changes the init digest and the losses' digests
    fields, shape = VARIANTS["nl_embedded_gaussian_1block"]
    torch.manual_seed(0)
    model = build_model(**fields)
    before = _digest(model.parameters())
    with torch.no_grad():
        first = next(model.parameters())
        first.view(-1)[0] = torch.nextafter(first.view(-1)[0], torch.tensor(1.0))
    assert _digest(model.parameters()) != before


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    from nlstudy.files import write_text

    recorded = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {"digests": {}, "sums": {}}
    results = {name: compute(name) for name in sorted({**VARIANTS, **BLOCKS})}
    recorded["digests"][machine()] = {name: got for name, (got, _) in results.items()}
    recorded["sums"] = {name: sums for name, (_, sums) in results.items()}
    write_text(GOLDEN, json.dumps(recorded, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN} ({machine()}'s digests; the sums of every field)")
