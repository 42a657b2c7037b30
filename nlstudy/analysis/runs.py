"""Reloading a logged run: its network with the weights it saved, and its resolved configuration.

A `nlstudy fit` run keeps (unless `save_weights: false`) `files/weights/final.pt` (the weights at the end
of training, the ones its test metrics come from) and `files/weights/best.pt` (at its best validation
top-1) in its wandb run directory, beside `files/nlstudy_config.yaml`, the resolved configuration.
Weights are read with `torch.load(weights_only=True)` (`nlstudy.models.weights`): tensors and plain values
only; a file that names other code is refused and nothing in it runs.
"""

from __future__ import annotations

import os
from typing import Any

from nlstudy import files, keys
from nlstudy.keys import find_run  # torch-free, shared with the training CLI (--resume, model.init_from)
from nlstudy.models import VideoResNet, as_spec, build_model
from nlstudy.models.weights import load_weights
from nlstudy.registry import lookup


def run_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's resolved configuration as {dotted key: value}, the keys the CLI and sweep files use."""
    path = keys.config_file(run_dir)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; is {run_dir} an nlstudy run directory?")
    return keys.flatten(files.read_yaml(path) or {})  # not UTF-8, not YAML: a ValueError naming the file


def load_run(run: str | os.PathLike, weights: str = "final", *,
             runs_root: str | os.PathLike | None = None) -> tuple[VideoResNet, dict[str, Any]]:
    """(model, config): the run's network in eval mode with its `weights` ("final": the end of training,
    which the test metrics come from; "best": the best validation top-1) on the CPU, and its resolved
    configuration as a flat dict of dotted keys (plus `run_dir` and the saved `weights.*` facts)."""
    lookup(keys.WEIGHTS_FILES, weights, "weights")
    run_dir = find_run(run, runs_root)
    path = keys.weights_file(run_dir, weights)
    if not path.is_file():
        raise FileNotFoundError(f"run {run_dir.name} has no saved weights ({path.relative_to(run_dir)} is missing): "
                                "it ran with save_weights=false, or before nlstudy kept weights; train it again")
    saved = load_weights(path, f"run {run_dir.name}")
    # the run's own weights replace the backbone's start: not its ImageNet file again (nor needing it here)
    model = build_model(as_spec(**{**saved["backbone"], "pretrained": ""}))
    model.load_state_dict(saved["state_dict"])
    config = run_config(run_dir)
    config.update(keys.flatten({"model": {"backbone": saved["backbone"]}}))  # as built: num_classes resolved
    config.update({"run_dir": str(run_dir), "weights.file": str(path), "weights.epochs": saved.get("epochs"),
                   "weights.step": saved.get("step"), f"weights.{keys.VAL_TOP1}": saved.get(keys.VAL_TOP1)})
    return model.eval(), config
