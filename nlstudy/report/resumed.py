"""Runs in several directories made one: the parts of a run continued with `nlstudy fit --resume`, and copies of
one run directory."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nlstudy.report.schema import GLOBAL_STEP, RunRecord


def merge_resumed(records: Iterable[RunRecord]) -> list[RunRecord]:
    """One record per run id. A run continued with `nlstudy fit --resume` is one wandb run written offline
    in several directories (`offline-run-<time>-<id>`, one per part); its parts, in the order they were
    written (their directory names sort by start time), become one record: config and summary merged, a
    later part winning; each part's history up to the global step where the next part starts (the next
    one restarted from a checkpoint and logs those steps again), then the next's; the state, path and note
    of the last part.

    Directories of the same name (a run directory copied elsewhere under the root, perhaps while it was
    still being written) are copies of one part: the most complete copy counts (:func:`_completeness`),
    the note names the others."""
    parts: dict[str, dict[str, list[RunRecord]]] = {}
    for record in records:
        parts.setdefault(record.run_id, {}).setdefault(Path(record.path).name, []).append(record)
    merged = []
    for copies in parts.values():
        group = sorted((_most_complete(c) for c in copies.values()), key=lambda r: Path(r.path).name)
        last = group[-1]
        history: list[dict[str, Any]] = []
        for part, following in zip(group, [*group[1:], None]):
            rows = part.history
            restart = min((row[GLOBAL_STEP] for row in following.history if GLOBAL_STEP in row), default=None) \
                if following is not None else None
            if restart is not None:
                rows = [row for row in rows if row.get(GLOBAL_STEP, -1) < restart]
            history.extend(rows)
        merged.append(dataclasses.replace(
            last, config={k: v for r in group for k, v in r.config.items()},
            summary={k: v for r in group for k, v in r.summary.items()}, history=history,
            created_at=group[0].created_at or last.created_at))
    return merged


def _most_complete(copies: list[RunRecord]) -> RunRecord:
    """The copy that counts among copies of one run directory, its note naming the others."""
    if len(copies) == 1:
        return copies[0]
    best = max(sorted(copies, key=lambda r: r.path), key=_completeness)
    others = sorted(r.path for r in copies if r is not best)
    note = f"{len(others)} other copy(ies) of this run directory left out (less complete or the same): " \
           + ", ".join(others)
    return dataclasses.replace(best, note="; ".join(filter(None, [best.note, note])))


def _completeness(record: RunRecord) -> tuple:
    """How much of a run a copy of its log holds: an exit record first, then the logged rows and keys
    (a copy taken while the run was being written holds a prefix of the log)."""
    return (record.state in ("finished", "failed", "killed"), len(record.history), len(record.summary),
            len(record.config))
