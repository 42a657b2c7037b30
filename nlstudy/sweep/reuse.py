"""Reuse keys: what makes two runs the same run, the finished run that stands in for one, the run dir to resume."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nlstudy import keys
from nlstudy.records import config_key, flat_values
from nlstudy.sweep import command as cmd
from nlstudy.sweep.spec import Sweep


def stand_in_for(key: str, records: Sequence[Mapping[str, Any]], runs_root: Path) -> dict[str, Any] | None:
    """Among `records` (every sweep's under the runs root), a finished one with this reuse key whose wandb run
    is still there, as the record that stands in (its ``id`` and ``wandb_id`` those of the run itself)."""
    for rec in records:
        if (rec.get("reuse_key") == key and rec["state"] == "finished" and rec.get("exitcode") == 0
                and keys.run_dirs(rec.get("wandb_id") or rec["id"], runs_root)):
            return {**rec, "id": rec.get("reused_from") or rec["id"], "wandb_id": rec.get("wandb_id") or rec["id"]}
    return None


def reuse_key(sweep: Sweep, config: Mapping[str, Mapping[str, Any]], threads: int,
              resolved: Mapping[str, str] | None = None) -> str:
    """What makes two runs the same run: the resolved configuration (`resolved`: {config text: key} from the
    sweep's check, ``nlstudy.lit.record.resolved_key``) and the torch thread count; for a config the check did
    not resolve, the command (environment macros expanded, every file it names by content), the program,
    the parameter values other than ``table``, and the thread count."""
    found = (resolved or {}).get(config_key(config))
    if found:
        return hashlib.sha256(json.dumps(["resolved", found, threads]).encode()).hexdigest()[:32]
    values = {k: v for k, v in flat_values(config).items() if k != keys.TABLE}
    template = [str(e) for e in cmd.substitute_envvars(sweep.command)]
    files = {}
    for name in [*template, sweep.program or ""]:
        path = Path(name)
        if name and cmd.macro_name(name) is None and path.is_file():
            files[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    text = json.dumps([template, sweep.program, files, sorted(values.items()), threads], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def resumable(runs_root: Path, wandb_id: str) -> Path | None:
    """The newest wandb directory of run `wandb_id` that holds a resumable checkpoint, or None."""
    return next((d for d in reversed(keys.run_dirs(wandb_id, runs_root)) if keys.checkpoint_file(d).is_file()), None)
