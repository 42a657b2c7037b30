"""The progress line of one agent command over its sweeps: runs done, failed, elapsed and the time-left estimate."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence

from nlstudy.records import all_records
from nlstudy.sweep import engine
from nlstudy.sweep.options import Options
from nlstudy.sweep.reuse import reuse_key
from nlstudy.sweep.spec import MAX_GRID_CHECKED, Sweep
from nlstudy.sweep.state import ENDED, SweepState


def hms(seconds: float) -> str:
    return str(dt.timedelta(seconds=int(round(seconds))))


def position(sweep: Sweep, state: SweepState) -> str:
    """How far one sweep is: its runs ended (not to be retried) over the runs it plans ("?" when unbounded)."""
    records = state.records()
    done = sum(r["state"] in ENDED and not r.get("retry") for r in records)
    planned = sweep.planned_count()
    return f"{done}/{planned if planned is not None else '?'}"


class Suite:
    """The sweeps one command works through (in order) and the progress line over all of them."""

    def __init__(self, items: Sequence[tuple[Sweep, SweepState]], options: Options):
        self.items, self.options = list(items), options
        self._planned_keys: list[str] | None = None

    def progress(self) -> str:
        done = failed = 0
        total: int | None = 0
        mine, durations, all_durations = 0, [], []
        for sweep, state in self.items:
            records = state.records()
            ended = [r for r in records if r["state"] in ENDED and not r.get("retry")]
            done += len(ended)
            failed += sum(r["state"] in ("failed", "crashed") for r in ended)
            planned = sweep.planned_count()
            total = None if total is None or planned is None else total + max(planned, len(ended))
            for r in records:
                ok = r["state"] in ("finished", "stopped") and r.get("duration_s")
                if ok:
                    all_durations.append(r["duration_s"])
                if r.get("agent", {}).get("session") == self.options.session and not r.get("reused_from"):
                    mine += 1
                    if ok:
                        durations.append(r["duration_s"])
        elapsed = time.time() - self.options.started
        left: int | None = None if total is None else total - done
        if left is not None and self.options.reuse:
            left = self.distinct_left(left)
        if self.options.count is not None:
            budget = self.options.count - mine + self._running_mine()
            left = budget if left is None else min(left, budget)
        text = f"{done}/{total if total is not None else '?'} runs done"
        if failed:
            text += f" ({failed} failed)"
        text += f", elapsed {hms(elapsed)}"
        sample = durations or all_durations
        if left is not None and sample:
            eta = sum(sample) / len(sample) * max(left, 0) / max(self.options.jobs, 1)
            text += f", about {hms(eta)} left"
        return text

    def distinct_left(self, left: int) -> int:
        """Of the `left` planned runs not ended, how many will train: the distinct reuse keys among them that no
        finished run under the runs root has (the rest will be stood in for). Grid sweeps of at most
        MAX_GRID_CHECKED points only (the check resolves no more; a line of progress must not cost more than
        the runs done: a grid of 10^6 points took minutes and 2 GB here); else `left`."""
        if self._planned_keys is None:
            if any(sweep.method != "grid" or sweep.run_cap is not None
                   or engine.grid_size(sweep.engine_config) > MAX_GRID_CHECKED for sweep, _ in self.items):
                return left
            self._planned_keys = [reuse_key(sweep, config, self.options.threads, state.resolved())
                                  for sweep, state in self.items for config in engine.grid_points(sweep.engine_config)]
        ended = {r.get("reuse_key") for r in all_records(self.options.runs_root)
                 if r["state"] in ENDED and not r.get("retry")}
        return min(left, len(set(self._planned_keys) - ended))

    def _running_mine(self) -> int:
        n = 0
        for _, state in self.items:
            n += sum(r["state"] in ("pending", "running") and r.get("agent", {}).get("session") == self.options.session
                     for r in state.records())
        return n
