"""The local agent: claim a run, have it launched as `wandb agent` would (offline), watched and recorded
(:mod:`nlstudy.sweep.launch`), and claim the next.

One agent runs one run at a time. `--jobs J` starts J agent processes (``nlstudy.sweep.cli``); agents
started separately on the same sweep cooperate through the sweep's lock file: asking the engine for
the next run and recording it as pending happen under one lock, so no two agents run the same
configuration (a grid engine sees the pending run as taken).

A run's end state: exit code 0 -> finished (stopped, if early termination asked it to stop); an
exit code > 0 -> failed; killed by a signal the agent did not send (SIGKILL, the OOM killer) ->
crashed, and retried when the sweep is run again; interrupted because the agent itself was asked to
stop (Ctrl-C, SIGTERM) -> killed, and retried when the sweep is run again, as are the runs of an
agent that died (``SweepState.reap``), which any agent of the sweep retries. A failed run does not
stop the sweep, and is not retried (it would fail again).

A retry whose run left a resumable checkpoint (``nlstudy fit``'s files/checkpoints/last.ckpt)
continues it: the retry logs under the interrupted run's wandb id (its record's ``wandb_id``) and
gets $NLSTUDY_RESUME (``resumes``: that run directory), which `nlstudy fit` reads as `--resume`. So
the run ends as one wandb run, counted once by the report, with the metrics of an uninterrupted run.
A retry without a checkpoint (checkpointing off, or killed in its first epoch) starts afresh, under the
same wandb id too: the report reads the run's last part, so the interrupted start is not counted as a
second, failed run.

A run whose command is `nlstudy fit|validate|test ...` starts warm (``Options.warm``; `--no-warm` turns
it off): the agent keeps one worker that imported torch, Lightning and wandb once, and the run is forked
from it (:mod:`nlstudy.warm`), saving the seconds of imports each run would spend. The run is still its
own process and wandb run, with its own environment, log and exit code; the record's ``command`` is the
sweep's command, and ``warm`` says it started warm.

A run whose configuration already finished under the same runs root, in this sweep or another, is
not run again (``Options.reuse``; `nlstudy sweep --no-reuse` turns it off): its record is written
finished at once, with the summary of the run that stands in for it, ``reused_from`` (that record)
and ``wandb_id`` (that wandb run); the report counts that run in this sweep's table too. "The same
configuration" is :func:`reuse_key`: the same resolved configuration as the training CLI resolves it
(defaults, config files and arguments merged, ``table`` left out: ``nlstudy.lit.record.resolved_key``, which
the sweep's check reports for every grid point) and the same thread count. So the demo's baseline, which
every table plans, runs once, and so does `{nonlocal_blocks: 1-block}` in one table and the same block
spelled out with its default pairwise function in another. A config the check did not see (a random or
bayes proposal, a command that does not call nlstudy) compares the command, its files by content and its
parameter values instead. Deterministic runs make this exact. It does not see a change of nlstudy's own
code: after one, run with --no-reuse or a new runs root.

When the engine's next config is running in another sweep (the agents reach a shared config together),
the agent takes the engine's next config instead, or goes on with the other sweeps and comes back: the
run that finishes then stands in for it, rather than the same run training twice.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nlstudy import interrupts, keys
from nlstudy.errors import one_line
from nlstudy.records import LIVE, agent_alive, all_records, flat_values
from nlstudy.sweep import engine, standin
from nlstudy.sweep.launch import POLL_S, Launcher, describe_config
from nlstudy.sweep.progress import Suite, position
from nlstudy.sweep.reuse import resumable, reuse_key, stand_in_for
from nlstudy.sweep.signals import Interrupt
from nlstudy.sweep.spec import Sweep
from nlstudy.sweep.state import ENDED, SweepState, now, record_id, this_agent

BLOCKED = "blocked"  # Agent.claim: every config left in this sweep is running in another sweep for now


class Agent:
    """Runs the runs of the suite's sweeps, one at a time, until none is left, --count is reached
    or it is interrupted."""

    def __init__(self, suite: Suite, out: Callable[[str], None] | None = None):
        self.suite, self.options = suite, suite.options
        self.out = out or (lambda line: print(line, flush=True))
        self.interrupt = Interrupt()
        self.launcher = Launcher(suite, self.say, self.interrupt)  # launches, watches and records each run
        self.stopped: str | None = None  # why this agent stopped early (the first runs all failed the same way)

    def say(self, line: str) -> None:
        self.out(f"{self.options.label}{line}")

    # -- the loop -----------------------------------------------------------------------------------
    def run(self) -> int:
        """0: every run this agent started finished; 1: some failed or crashed, or the runs root could not
        be written (a full disk); 128 + the signal when interrupted (130: Ctrl-C)."""
        with self.interrupt, contextlib.ExitStack() as stack:
            stack.callback(self.launcher.stop_worker)
            stack.callback(standin.close)  # the wandb service of the stand-ins' runs, if one was started
            try:
                self.work()
            except OSError as e:  # records are written whole or not at all: what was written stays readable
                self.say(f"stopped: cannot write {e.filename or self.options.runs_root} ({e.strerror or e}); the "
                         "sweep's state and its finished runs are intact: free space (or make the runs root "
                         "writable) and run the same command again to go on")
                return 1
        if self.interrupt.count:
            self.say(f"interrupted: run the same command again to resume ({self.suite.progress()})")
            return interrupts.exit_code(self.interrupt.signum or signal.SIGINT)
        if self.stopped is not None:
            return 1
        self.say(f"agent done: {self.suite.progress()}")
        return 1 if self.launcher.failed else 0

    def work(self) -> None:
        """The sweeps in order, each until it has no config left; a sweep whose configs left are all running
        elsewhere for now (BLOCKED) is come back to after the others, waiting only when nothing else is left."""
        blocked: list[tuple[Sweep, SweepState]] = []
        for sweep, state in self.suite.items:
            if self.work_on(sweep, state) == BLOCKED:
                blocked.append((sweep, state))
            if self.interrupt.count or self.count_reached() or self.stopped is not None:
                return
        if blocked:
            self.say(f"waiting: what is left of {', '.join(sweep.name for sweep, _ in blocked)} is running in "
                     "another sweep, whose runs will stand in for it")
        while blocked and not self.interrupt.count and not self.count_reached():
            time.sleep(POLL_S)
            blocked = [(sweep, state) for sweep, state in blocked if self.work_on(sweep, state) == BLOCKED]

    def work_on(self, sweep: Sweep, state: SweepState) -> str | None:
        """Run the sweep's runs until it has none left (None) or those left are running elsewhere (BLOCKED)."""
        while not self.interrupt.count:
            if self.same_failure() is not None:
                return None
            rec = self.claim(sweep, state)
            if rec is None or rec == BLOCKED:
                return rec
            if rec["state"] == "finished":  # reused: another run stands in for it
                self.record_stand_in(state, rec)
                self.say(f"[{sweep.name} {position(sweep, state)}] run {rec['id']}: "
                         f"{describe_config(sweep, rec['config'])} finished already as run "
                         f"{rec['wandb_id']}, which stands in for it | {self.suite.progress()}")
                continue
            self.launcher.execute(sweep, state, rec)
        return None

    def same_failure(self) -> str | None:
        """Why the sweep stops, when the first `Options.same_failures` runs this command started (over all its
        agents) ended, every one failed, and with the same last log line: the rest would fail so too (a GPU
        this machine lacks, a missing data root). Their records are marked to run again when the command is run
        again, and the agent says so once; None while the runs do not all fail alike."""
        if self.stopped is not None or not self.options.same_failures:
            return self.stopped
        n = self.options.same_failures
        ended = sorted((r for _, st in self.suite.items for r in st.records()
                        if r.get("agent", {}).get("session") == self.options.session and not r.get("reused_from")
                        and r["state"] in ENDED and not r.get("retried_by")),
                       key=lambda r: (r.get("started_at") or r.get("created_at") or "", r["id"]))[:n]
        notes = {r.get("note") for r in ended}
        if len(ended) < n or any(r["state"] != "failed" for r in ended) or len(notes) != 1 or None in notes:
            return None
        self.stopped = notes.pop()
        for sweep, state in self.suite.items:  # the next session runs them again, once the cause is fixed
            for r in ended:
                if state.record_file(r["id"]).is_file():
                    state.update(r["id"], retry=True, not_retried_by=self.options.session)
        self.say(f"stopped: the first {n} runs failed the same way ({self.stopped}); the others would too. Fix "
                 f"that, then run the same command again: these {n} runs run again ({self.suite.progress()})")
        return self.stopped

    def record_stand_in(self, state: SweepState, rec: Mapping[str, Any]) -> None:
        """The stand-in's own small offline wandb run (`nlstudy.sweep.standin`), so that the tables from the runs'
        `wandb/` folder alone, and from W&B once synced, count the reused run in this sweep's table too."""
        values = flat_values(rec["config"])
        try:
            standin.write(state.runs_root, rec, sweep_id=state.id, project=self.options.project,
                          table=values.get(keys.TABLE), report={k: v for k, v in values.items() if k.startswith(keys.REPORT)})
        except Exception as e:  # noqa: BLE001 - the sweep's own record (run.json) still says it
            self.say(f"  note: the stand-in's own wandb run was not written ({one_line(e)}); a report of this runs "
                     "root still counts it, one of its wandb/ folder alone or of W&B does not")

    def count_reached(self) -> bool:
        if self.options.count is None:
            return False
        return self.started_by_me([r for _, s in self.suite.items for r in s.records()]) >= self.options.count

    def started_by_me(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Runs this command started (a reused run starts nothing)."""
        return sum(r.get("agent", {}).get("session") == self.options.session and not r.get("reused_from")
                   for r in records)

    def claim(self, sweep: Sweep, state: SweepState) -> dict[str, Any] | str | None:
        """Under the sweep's lock: the next run (a retry of an interrupted run first, else the
        engine's proposal), recorded as pending and owned by this agent; None when there is none, BLOCKED
        when the configs left are running in other sweeps for now (their runs will stand in for them)."""
        with state.lock():
            records = state.records()
            state.reap(records)
            if self.options.count is not None:
                mine = self.started_by_me([r for _, s in self.suite.items for r in (records if s is state else s.records())])
                if mine >= self.options.count:
                    return None
            retry = next((r for r in records if r["state"] in ENDED and r.get("retry") and not r.get("retried_by")
                          and r.get("not_retried_by") != self.options.session), None)
            resolved = state.resolved()
            elsewhere = all_records(state.runs_root) if self.options.reuse else []
            resumes: Path | None = None
            if retry is not None:
                config = retry["config"]
                resumes = resumable(state.runs_root, retry.get("wandb_id") or retry["id"])
            else:
                originals = [r for r in records if not r.get("retry_of")]
                if sweep.run_cap is not None and len(originals) >= sweep.run_cap:
                    return None
                config = self.propose(sweep, records, resolved, elsewhere)
                if config is None or config == BLOCKED:
                    return config
            ids = {r["id"] for r in records} | {r.get("wandb_id") for r in records}
            rec_id = record_id(state.id, config, lambda i: i in ids or bool(keys.run_dirs(i, state.runs_root)))
            rec = {
                "id": rec_id, "config": config, "state": "pending", "created_at": now(),
                "agent": this_agent(self.options.session), "heartbeat": now(),
                "retry_of": retry["id"] if retry is not None else None, "retried_by": None, "retry": False,
                # a retry logs under the wandb id of the run it retries, with or without a checkpoint to resume
                # from: the report reads one run, its last part (collect.merge_resumed), not a killed one beside it
                "wandb_id": (retry.get("wandb_id") or retry["id"]) if retry is not None else rec_id,
                "resumes": str(resumes) if resumes is not None else None,
                "reuse_key": reuse_key(sweep, config, self.options.threads, resolved),
            }
            stand_in = stand_in_for(rec["reuse_key"], elsewhere, state.runs_root) if resumes is None else None
            if stand_in is not None:
                rec.update(state="finished", exitcode=0, started_at=now(), ended_at=now(), duration_s=0.0,
                           summary=stand_in.get("summary") or {}, wandb_id=stand_in["wandb_id"],
                           reused_from=stand_in["id"], note=f"reused run {stand_in['wandb_id']}: the same configuration")
            state.write(rec)
            if retry is not None:
                retry["retried_by"] = rec["id"]
                state.write(retry)
        return rec

    def propose(self, sweep: Sweep, records: list[dict[str, Any]], resolved: Mapping[str, str],
                elsewhere: Sequence[Mapping[str, Any]]) -> dict[str, Any] | str | None:
        """The engine's next config that is not running in another sweep under the runs root (`elsewhere`:
        their records; empty without reuse); BLOCKED when each config left is, None when none is left."""
        running = {r.get("reuse_key") for r in elsewhere
                   if r["state"] in LIVE and agent_alive(r.get("agent"), r.get("heartbeat"))}
        deferred: list[dict[str, Any]] = []  # taken, as far as the engine is told, until their twins end
        while True:
            config = engine.propose(sweep.engine_config, records + deferred)
            if config is None:
                return BLOCKED if deferred else None
            if sweep.method == "grid" and any(r["config"] == config for r in records):
                raise RuntimeError(f"{sweep.path}: the grid engine proposed a configuration it already ran: {config}")
            if reuse_key(sweep, config, self.options.threads, resolved) not in running:
                return config
            if sweep.method != "grid":  # another draw may differ; this one waits for its twin
                return BLOCKED
            deferred.append({"id": f"deferred-{len(deferred)}", "config": config, "state": "pending"})
