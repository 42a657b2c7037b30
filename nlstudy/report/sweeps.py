"""What the sweeps planned: the runs a grid sweep will launch, so the report can mark rows that never ran.

The local sweep agent keeps each sweep's YAML at ``<runs root>/sweeps/<sweep id>/sweep.yaml``.
Only grid sweeps are expanded (random / bayes / hyperband sweeps plan no fixed set of runs); a
missing or unreadable layout simply means "no plan known". Nothing here imports torch.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from nlstudy import keys
from nlstudy.report.collect import flatten_config

MAX_PLANNED_RUNS = 100_000  # a grid larger than this is not expanded


def find_sweep_files(runs_root: str | os.PathLike) -> list[Path]:
    """``sweeps/*/sweep.yaml`` under `runs_root`; when `runs_root` is a wandb dir or one run dir,
    also under the runs root above it."""
    root = Path(runs_root)
    candidates = [root]
    if root.name == "wandb" or root.name.startswith(("offline-run-", "run-")):
        candidates.append(root.parent)
        if root.parent.name == "wandb":
            candidates.append(root.parent.parent)
    found: set[Path] = set()
    for base in candidates:
        found.update(p.resolve() for p in (base / "sweeps").glob("*/sweep.yaml") if p.is_file())
    return sorted(found)


def grid_parameters(parameters: Mapping[str, Any], prefix: str = "") -> dict[str, list[Any]] | None:
    """A sweep's ``parameters`` -> {dotted key: list of values}; None if some parameter is a
    distribution (nothing fixed to expand). Nested ``parameters:`` blocks become dotted keys."""
    out: dict[str, list[Any]] = {}
    for name, spec in (parameters or {}).items():
        key = f"{prefix}{name}"
        if not isinstance(spec, Mapping):
            return None
        if "parameters" in spec:
            inner = grid_parameters(spec["parameters"], key + ".")
            if inner is None:
                return None
            out.update(inner)
        elif "value" in spec:
            out[key] = [spec["value"]]
        elif "values" in spec:
            out[key] = list(spec["values"])
        else:
            return None
    return out


def planned_runs(sweep_file: str | os.PathLike) -> pd.DataFrame:
    """The runs one grid sweep plans: one row per combination, columns ``sweep_id`` plus the
    swept keys (``table`` and ``seed_everything`` among them when the sweep sets them)."""
    path = Path(sweep_file)
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return pd.DataFrame()
    if not isinstance(config, Mapping) or config.get("method") != "grid":
        return pd.DataFrame()
    grid = grid_parameters(config.get("parameters") or {})
    if not grid:
        return pd.DataFrame()
    total = 1
    for values in grid.values():
        total *= max(len(values), 1)
    if total > MAX_PLANNED_RUNS:
        return pd.DataFrame()
    names = list(grid)
    rows = [dict(flatten_config(dict(zip(names, combo))), sweep_id=path.parent.name)
            for combo in itertools.product(*grid.values())]
    return pd.DataFrame.from_records(rows)


def planned(sweep_files: Iterable[str | os.PathLike], *, sweep: str | None = None) -> pd.DataFrame:
    """Every planned run of the given sweep files (optionally one sweep id) in one frame, with a
    ``table`` column (None where the sweep does not set it)."""
    frames = [planned_runs(f) for f in sweep_files if sweep is None or Path(f).parent.name == sweep]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=["sweep_id", keys.TABLE])
    out = pd.concat(frames, ignore_index=True)
    if keys.TABLE not in out.columns:
        out[keys.TABLE] = None
    out[keys.TABLE] = out[keys.TABLE].map(lambda v: None if v is None or v != v else str(v))
    return out
