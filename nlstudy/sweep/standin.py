"""The record of a stand-in, as a run of its own: what makes the tables from a runs root, from its `wandb/` folder
alone and from W&B (after `wandb sync`) the same.

When the agent reuses a finished run X for a run another sweep plans (`nlstudy.sweep.agent`: the same resolved
configuration), the sweep's state says so (`run.json`: ``reused_from``), but that state lives beside the runs, in
`<runs root>/sweeps/`, which neither a copied `wandb/` folder nor W&B has. So the agent also writes one small
offline wandb run per stand-in, `<runs root>/wandb/offline-run-<time>-<record id>`, under the reusing sweep's id:

    config   table: the table of the sweep that planned the run; reused_from: X's wandb id (keys.REUSED_FROM);
             that sweep's report.* settings (how its table compares rows), which the stand-in takes on
    files    nlstudy_stand_in.json ({"reused_from", "table", "sweep_id", "report"}: keys.STAND_IN_FILE, for
             readers of run directories that do not read wandb's log, nlstudy.analysis.study.runs_frame)

`wandb sync` uploads it with the others. Every reader files X once more under that table
(`nlstudy.report.standins.file_stand_ins`); the stand-in itself is no row of any table. It holds no metric: the
numbers are X's, read from X.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nlstudy import keys


def stand_in_record(record: Mapping[str, Any], sweep_id: str, table: str | None,
                    report: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a stand-in's own run records: the table and sweep that planned it (with that sweep's report.*
    settings), and the run that stands in."""
    return {keys.REUSED_FROM: record["wandb_id"], keys.TABLE: table, "sweep_id": sweep_id, "report": dict(report or {})}


def write(runs_root: str | os.PathLike, record: Mapping[str, Any], *, sweep_id: str, project: str,
          table: str | None, report: Mapping[str, Any] | None = None) -> Path:
    """Write the stand-in run of a reused record (its ``id`` names the run, its ``wandb_id`` is X) in this process,
    offline, and return its directory. wandb's service is started once per process and stopped by `close`;
    the runs an agent starts never attach to it (the agent drops $WANDB_SERVICE from their environment)."""
    import wandb

    facts = stand_in_record(record, sweep_id, table, report)
    settings = wandb.Settings(mode="offline", sweep_id=sweep_id, silent=True, console="off", save_code=False,
                              disable_git=True, x_disable_stats=True, x_disable_meta=True)
    config = {keys.TABLE: table, keys.REUSED_FROM: facts[keys.REUSED_FROM], **facts["report"]}
    run = wandb.init(dir=str(runs_root), project=project, id=record["id"], config=config, settings=settings,
                     reinit="create_new", notes=record.get("note"))
    try:
        Path(run.dir, keys.STAND_IN_FILE).write_text(json.dumps(facts) + "\n")
    finally:
        run.finish()
    return Path(run.dir).parent


def close() -> None:
    """Stop the wandb service `write` started in this process, if any (nothing when it started none)."""
    import sys

    if "wandb" in sys.modules:
        with contextlib.suppress(Exception):
            sys.modules["wandb"].teardown()
