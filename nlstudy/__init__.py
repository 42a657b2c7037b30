"""nlstudy: ablation-study runner for non-local neural networks.

`nlstudy.train(config, overrides, runs_dir=...)` runs one training run in this process (see
`nlstudy.lit.cli.train`); it is imported on first use, so `import nlstudy` stays free of torch for
the sweep and report layers.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("train", "TrainResult"):
        from nlstudy.lit import cli

        return getattr(cli, name)
    raise AttributeError(f"module 'nlstudy' has no attribute {name!r}")
