"""What a sweep plans, written where the report reads it: ``<sweep dir>/plan.json`` (the form: nlstudy.records).

The grid's points are what the engine will propose, in its order, each with its config key (so the report can
tell which of them an agent runs now from the records) and its values flattened (the table's columns). A random,
bayes or hyperband sweep plans no fixed set of runs, nor does a grid of more than MAX_PLANNED_RUNS points: their
plan's ``points`` is None. The plan is computed from the sweep.yaml the sweep keeps, once, when a sweep is made
or rejoined without one (`write_missing`: also what `nlstudy report` calls first on a runs root made before
plans were written, so that such a root reports as it did).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nlstudy import files, records
from nlstudy.sweep import engine
from nlstudy.sweep.state import write_json

MAX_PLANNED_RUNS = 100_000  # a grid larger than this is not expanded


def grid_points(config: Any) -> list[dict[str, Any]] | None:
    """The run configs (W&B form) a grid sweep's `config` plans, in the engine's order; None for another method,
    a grid over MAX_PLANNED_RUNS points, or a config the engine cannot expand."""
    if not isinstance(config, Mapping) or config.get("method") != "grid" or not config.get("parameters"):
        return None
    try:
        if not 0 < engine.grid_size(config) <= MAX_PLANNED_RUNS:
            return None
        return engine.grid_points(config)
    except (ValueError, TypeError, KeyError, AttributeError):  # not a sweep the engine can expand
        return None


def write(sweep_dir: str | os.PathLike) -> bool:
    """Write `sweep_dir`'s plan.json from its sweep.yaml (whole or not at all); False where the sweep file cannot
    be read as YAML (no plan is written: the plan stays unknown)."""
    sweep_dir = Path(sweep_dir)
    try:
        config = files.read_yaml(sweep_dir / records.SWEEP_FILE) or {}
    except (OSError, ValueError):
        return False
    method = config.get("method") if isinstance(config, Mapping) else None
    write_json(sweep_dir / records.PLAN_FILE, records.plan(sweep_dir.name, method, grid_points(config)))
    return True


def ensure(sweep_dir: str | os.PathLike) -> bool:
    """`sweep_dir` has its plan.json, written now where it had none (`write`); False where it could not be
    written (a read-only runs root, a full disk, an unreadable sweep.yaml): the plan stays unknown to the report,
    which says so."""
    if (Path(sweep_dir) / records.PLAN_FILE).is_file():
        return True
    with contextlib.suppress(OSError):
        return write(sweep_dir)
    return False


def write_missing(runs_root: str | os.PathLike) -> list[Path]:
    """`ensure` the plan of every sweep under `runs_root` (a runs root, a wandb dir or a run dir:
    ``records.find_sweep_files``); returns the sweep dirs whose plan stays unknown."""
    return [f.parent for f in records.find_sweep_files(runs_root) if not ensure(f.parent)]
