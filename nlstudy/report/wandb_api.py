"""The W&B API reader: a project's runs (``ENTITY/PROJECT``) through ``wandb.Api()``, as the same frames as the
offline reader's (nlstudy.report.schema). wandb is imported only when no `api` is given."""

from __future__ import annotations

from typing import Any

from nlstudy import keys
from nlstudy.report.schema import Collection, RunRecord, config_from_wandb, of_sweep


def read_wandb(path: str, *, sweep: str | None = None, api: Any = None) -> Collection:
    """Read the runs of a W&B project ``ENTITY/PROJECT`` (optionally only one sweep's) via ``wandb.Api``.

    Config comes as wandb's public-API classes parse it ({"key": {"value": ...}} unwrapped),
    the summary from ``summaryMetrics`` and the history from the run's full (unsampled up to
    ``historyLineCount`` rows) history.
    """
    if api is None:
        import wandb  # local import: the offline path does not need it loaded

        api = wandb.Api()
    filters = {"sweep": sweep} if sweep else {}
    records = [_api_record(run) for run in api.runs(path, filters=filters, lazy=False)]
    have = {r.run_id for r in records}
    missing = sorted({r.config.get(keys.REUSED_FROM) for r in records} - {None} - have)
    if missing:  # runs that stand in for some of this sweep's, logged under another sweep
        records += [_api_record(run) for run in api.runs(path, filters={"name": {"$in": missing}}, lazy=False)]
    return of_sweep(records, sweep)


def _api_record(run: Any) -> RunRecord:
    """One run of the public API as a RunRecord (its full history: `historyLineCount` rows)."""
    lines = max(int(getattr(run, "history_line_count", 0) or 0), 1)  # the GraphQL field historyLineCount
    rows = run.history(samples=lines, pandas=False)
    return RunRecord(
        run_id=run.id,
        state=run.state,
        config=config_from_wandb(run.config),
        summary=keys.flatten(run.summary_metrics),
        history=list(rows),
        source="wandb",
        path="/".join(run.path),
        name=run.name or None,
        sweep_id=run.sweep_name or None,
        project=run.project,
        created_at=run.created_at,
    )
