"""A local sweep's records as the sweep writes them and the report reads them: the file names, the fields, how a
run config becomes its key, whether the agent that owns a record is alive. Both sides import this module, so
neither reads the other's code (the report never imports nlstudy.sweep).

    <runs root>/sweeps/<sweep id>/
        sweep.yaml           the sweep file as given
        plan.json            what the sweep plans (written by the sweep: nlstudy.sweep.plan), read by the report:
                             {"sweep_id", "method", "points"}; ``points`` is None for a sweep that plans no fixed
                             set of runs (random, bayes, hyperband; a grid over the limit), else one entry per grid
                             point in the engine's order: {"key": config_key(config), "values": flat_values(config)}
                             (``table`` among the values where the sweep sets it)
        runs/<run id>/run.json   one run's record (the fields: nlstudy.sweep.state)

A sweep made before plan.json existed has none: its plan is unknown to the report (`nlstudy report` writes
the missing ones first, through the sweep layer: nlstudy.cli). Nothing here imports torch.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nlstudy import keys
from nlstudy.processes import alive

SWEEPS_DIR = "sweeps"  # under a runs root: one folder per sweep id
SWEEP_FILE = "sweep.yaml"
PLAN_FILE = "plan.json"
RECORD_FILE = "run.json"  # under <sweep>/runs/<run id>/
LIVE = ("pending", "running")  # a record's states while its agent has it
STALE_S = 600.0  # a record from another host without a heartbeat for this long is taken as orphaned


def config_key(config: Mapping[str, Any]) -> str:
    """A run config (W&B form) as text, the same for equal configs: what the check's resolved keys, the plan's
    points and the records' configs are matched by."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)


def flat_values(run_config: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A run config in W&B's format ({name: {"value": v}}) -> {dotted key: value} (:func:`nlstudy.keys.flatten`):
    ``model.backbone: {value: {nl: {pairwise: x}}}`` reads ``model.backbone.nl.pairwise = x``."""
    return keys.flatten({name: spec["value"] for name, spec in run_config.items()})


def read_record(path: Path) -> dict[str, Any] | None:
    """A run.json record (or plan.json), or None where it cannot be read (both are written whole, so only a
    vanished or foreign file fails)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def find_sweep_files(runs_root: str | os.PathLike) -> list[Path]:
    """``sweeps/*/sweep.yaml`` under `runs_root`; when `runs_root` is a wandb dir or one run dir, also under the
    runs root above it."""
    root = Path(runs_root)
    candidates = [root]
    if root.name == "wandb" or root.name.startswith(("offline-run-", "run-")):
        candidates.append(root.parent)
        if root.parent.name == "wandb":
            candidates.append(root.parent.parent)
    found: set[Path] = set()
    for base in candidates:
        found.update(p.resolve() for p in (base / SWEEPS_DIR).glob(f"*/{SWEEP_FILE}") if p.is_file())
    return sorted(found)


def sweep_records(sweep_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The readable run records of one sweep, in file-name order."""
    found = (read_record(path) for path in sorted(Path(sweep_dir).glob(f"runs/*/{RECORD_FILE}")))
    return [rec for rec in found if rec is not None]


def all_records(runs_root: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of every sweep under `runs_root` (without their progress rows), each with the ``sweep_id``
    of its sweep."""
    found = ((path, read_record(path)) for path in sorted(Path(runs_root).glob(f"{SWEEPS_DIR}/*/runs/*/{RECORD_FILE}")))
    return [{**rec, "sweep_id": path.parent.parent.parent.name} for path, rec in found if rec is not None]


def agent_alive(agent: Mapping[str, Any] | None, heartbeat: str | None) -> bool:
    """Is the agent that owns a record still there? Same host: its process exists (pid and start token). Another
    host: its heartbeat is recent."""
    if not agent:
        return False
    if agent.get("host") == socket.gethostname():
        return alive(agent.get("pid"), agent.get("pid_start"))
    if not heartbeat:
        return False
    age = time.time() - dt.datetime.fromisoformat(heartbeat).timestamp()
    return age < STALE_S


def plan(sweep_id: str, method: str | None, points: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    """plan.json's content: `points` (run configs, W&B form, in the engine's order) or None (no fixed set)."""
    return {"sweep_id": sweep_id, "method": method,
            "points": None if points is None else [{"key": config_key(p), "values": flat_values(p)} for p in points]}


def read_plan(sweep_dir: str | os.PathLike) -> dict[str, Any] | None:
    """A sweep's plan.json, or None where it has none (a sweep made before plans were written) or it does not
    read as one."""
    found = read_record(Path(sweep_dir) / PLAN_FILE)
    if not isinstance(found, dict) or not (found.get("points") is None or isinstance(found.get("points"), list)):
        return None
    return found
