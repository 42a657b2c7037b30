"""benchmarks/gpu.py --smoke: the GPU script's torch.compile part runs end to end on the CPU at tiny sizes (through
torch.compile's "eager" backend), so it is ready when a GPU is lent; its figures come from a GPU run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"


@pytest.mark.slow  # a subprocess that builds ResNet-50s and traces them with torch.compile: about 40 s
def test_the_compile_part_runs_and_prints_every_mode_and_the_flops_ratio():
    out = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--parts", "5"], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line.split() for line in out.stdout.splitlines() if line.startswith(("C2D R50", "NL C2D R50"))]
    modes = [row[-6] for row in rows]
    assert modes == ["eager", "compile", "reduce-overhead"] * 2
    assert "FLOPs NL 5-block / C2D" in out.stdout and "(the paper's Table 2e: x1.2)" in out.stdout
    assert out.stdout.count("NL 5-block / C2D time") == 3
