"""The local agent: claim a run, launch it as `wandb agent` would (offline), watch it, record it.

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
(defaults, config files and arguments merged, ``table`` left out: ``nlstudy.lit.cli.resolved_key``, which
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
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nlstudy import files, interrupts, keys
from nlstudy.choices import TRAIN_COMMANDS
from nlstudy.errors import one_line
from nlstudy.sweep import command as cmd
from nlstudy.sweep import engine, standin
from nlstudy.sweep.spec import EARLY_TERMINATE, Sweep, compact, flat_values
from nlstudy.processes import process_start
from nlstudy.sweep.options import SAME_FAILURES, Options  # noqa: F401 (re-exported)
from nlstudy.sweep.progress import Suite, hms  # noqa: F401 (re-exported)
from nlstudy.sweep.reuse import resumable, reuse_key, stand_in_for  # noqa: F401 (re-exported)
from nlstudy.sweep.signals import Interrupt, _die_with_parent  # noqa: F401 (re-exported)
from nlstudy.sweep.state import (ENDED, HEARTBEAT_S, LIVE, SweepState, agent_alive, now, record_id, read_progress,
                                 this_agent)

# environment variables the run reads (names owned by nlstudy.cli and nlstudy.lit.callbacks)

KILL_DELAY_S = 30.0  # after asking a run to stop (Ctrl-C), how long before it is killed
POLL_S = 0.5
BLOCKED = "blocked"  # Agent.claim: every config left in this sweep is running in another sweep for now


def describe_config(sweep: Sweep, config: Mapping[str, Mapping[str, Any]]) -> str:
    """The values that vary in this sweep (constant parameters left out)."""
    fixed = {name for name, spec in (sweep.config.get("parameters") or {}).items()
             if isinstance(spec, Mapping) and "value" in spec}
    return " ".join(f"{k}={compact(v['value'])}" for k, v in config.items() if k not in fixed) or "(no parameters)"


class Agent:
    """Runs the runs of the suite's sweeps, one at a time, until none is left, --count is reached
    or it is interrupted."""

    def __init__(self, suite: Suite, out: Callable[[str], None] | None = None):
        self.suite, self.options = suite, suite.options
        self.out = out or (lambda line: print(line, flush=True))
        self.interrupt = Interrupt()
        self.failed = 0
        self.worker: subprocess.Popen | None = None  # the warm-start worker, once a run needs it
        self.worker_dir: str | None = None
        self.stopped: str | None = None  # why this agent stopped early (the first runs all failed the same way)

    def say(self, line: str) -> None:
        self.out(f"{self.options.label}{line}")

    # -- the loop -----------------------------------------------------------------------------------
    def run(self) -> int:
        """0: every run this agent started finished; 1: some failed or crashed, or the runs root could not
        be written (a full disk); 128 + the signal when interrupted (130: Ctrl-C)."""
        with self.interrupt, contextlib.ExitStack() as stack:
            stack.callback(self.stop_worker)
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
        return 1 if self.failed else 0

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
                self.say(f"[{sweep.name} {self._position(sweep, state)}] run {rec['id']}: "
                         f"{describe_config(sweep, rec['config'])} finished already as run "
                         f"{rec['wandb_id']}, which stands in for it | {self.suite.progress()}")
                continue
            self.execute(sweep, state, rec)
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
            elsewhere = SweepState.all_records(state.runs_root) if self.options.reuse else []
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

    # -- warm starts --------------------------------------------------------------------------------
    def warm_command(self, argv: list[str], env: Mapping[str, str]) -> list[str]:
        """`nlstudy fit ...` (a training command of this nlstudy) as its warm start; others unchanged."""
        if not (self.options.warm and len(argv) > 1 and Path(argv[0]).name == "nlstudy"
                and argv[1] in TRAIN_COMMANDS):
            return argv
        if self.worker is None or self.worker.poll() is not None:
            self.stop_worker()
            self.worker_dir = tempfile.mkdtemp(prefix="nlstudy-warm-")
            worker_env = {k: v for k, v in env.items() if k in (keys.THREADS_ENV, "OMP_NUM_THREADS", "PATH")}
            self.worker = subprocess.Popen(
                [sys.executable, "-m", "nlstudy.lit.worker", str(Path(self.worker_dir, "socket"))],
                env={**{k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}, **worker_env},
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent(os.getpid()))
        return [sys.executable, "-m", "nlstudy.warm", str(Path(self.worker_dir, "socket")), *argv[1:]]

    def stop_worker(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.worker.wait(timeout=10)
            if self.worker.poll() is None:
                self.worker.kill()
        self.worker = None
        if self.worker_dir is not None:
            shutil.rmtree(self.worker_dir, ignore_errors=True)
            self.worker_dir = None

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

    # -- one run ------------------------------------------------------------------------------------
    def environment(self, sweep: Sweep, state: SweepState, rec: Mapping[str, Any]) -> dict[str, str]:
        run_dir = state.run_dir(rec["id"])
        threads = str(self.options.threads)
        env = dict(os.environ)
        env.pop(keys.WANDB_API_KEY, None)  # the run is offline: it has no use for the key, so cannot leak it
        env.pop("WANDB_SERVICE", None)  # the run starts its own wandb service, not one a wandb.init here left behind
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env.update({
            "WANDB_MODE": "offline",
            "WANDB_SILENT": env.get("WANDB_SILENT", "true"),
            "WANDB_SWEEP_ID": state.id,
            "WANDB_RUN_ID": rec.get("wandb_id") or rec["id"],
            "WANDB_SWEEP_PARAM_PATH": str(run_dir / "params.yaml"),
            "WANDB_PROJECT": self.options.project,
            "WANDB_DIR": str(state.runs_root),
            keys.RUNS_ENV: str(state.runs_root),
            keys.THREADS_ENV: threads,
            "OMP_NUM_THREADS": threads,
            keys.PROGRESS_ENV: str(run_dir / "progress.jsonl"),
            keys.STOP_ENV: str(run_dir / "stop"),
        })
        env.pop(keys.RESUME_ENV, None)
        if rec.get("resumes"):
            env[keys.RESUME_ENV] = rec["resumes"]
        return env

    def command_line(self, sweep: Sweep, state: SweepState, rec: Mapping[str, Any]) -> list[str]:
        """Writes the run's parameter files and returns its command line."""
        run_dir = state.run_dir(rec["id"])
        run_dir.mkdir(parents=True, exist_ok=True)
        if rec.get("resumes") and rec.get("retry_of"):  # the run goes on: so does its validation history
            before = state.run_dir(rec["retry_of"]) / "progress.jsonl"
            if before.is_file():
                files.copy(before, run_dir / "progress.jsonl")
        args = cmd.RunArgs(rec["config"], sweep.program, str(run_dir / "args.json"))
        files.write_text(run_dir / "params.yaml", cmd.param_file_text(rec["config"]))  # whole, or the run is not started
        if cmd.uses_args_json_file(sweep.command):
            files.write_text(run_dir / "args.json", cmd.args_json_text(args))
        return [str(part) for part in cmd.expand(sweep.command, args)]

    def execute(self, sweep: Sweep, state: SweepState, rec: dict[str, Any]) -> None:
        run_dir = state.run_dir(rec["id"])
        argv = self.command_line(sweep, state, rec)
        env = self.environment(sweep, state, rec)
        position = self._position(sweep, state)
        retry = f" ({'resuming' if rec.get('resumes') else 'retry of'} {rec['retry_of']})" if rec.get("retry_of") else ""
        self.say(f"[{sweep.name} {position}] run {rec['id']}{retry}: {describe_config(sweep, rec['config'])}")
        started = time.time()
        log = open(run_dir / "output.log", "ab")
        launch = self.warm_command(argv, env)
        try:
            proc = subprocess.Popen(launch, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True, preexec_fn=_die_with_parent(os.getpid()))
        except OSError as e:
            log.write(f"cannot start {argv[0]!r}: {e}\n".encode())
            log.close()
            self.finish(sweep, state, rec, "failed", 127, started, note=f"cannot start {argv[0]!r}: {e.strerror or e}")
            return
        try:
            state.update(rec["id"], state="running", started_at=now(), pid=proc.pid,
                         pid_start=process_start(proc.pid), command=argv, warm=launch is not argv, heartbeat=now())
            end_state, code = self.watch(sweep, state, rec, proc)
        except BaseException:  # the record cannot be kept (a full disk): no run goes on unwatched
            proc.kill()
            proc.wait()
            raise
        finally:
            log.close()
        self.finish(sweep, state, rec, end_state, code, started)

    def watch(self, sweep: Sweep, state: SweepState, rec: Mapping[str, Any], proc: subprocess.Popen) -> tuple[str, int]:
        run_dir = state.run_dir(rec["id"])
        progress, stop = run_dir / "progress.jsonl", run_dir / "stop"
        stopper = EARLY_TERMINATE.get((sweep.config.get("early_terminate") or {}).get("type"))
        seen_rows, beat = 0, time.monotonic()
        asked_at: float | None = None
        handled = 0
        while (code := proc.poll()) is None:
            if self.interrupt.count > handled:  # first: ask the run to stop; again: kill it
                handled = self.interrupt.count
                if asked_at is None:
                    asked_at = time.monotonic()
                    self.say(f"stopping run {rec['id']} (again to kill it)")
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(signal.SIGINT)
                else:
                    proc.kill()
            if asked_at is not None and time.monotonic() - asked_at > KILL_DELAY_S:
                proc.kill()
            if stopper is not None and not stop.exists():
                rows = len(read_progress(progress))
                if rows > seen_rows:
                    seen_rows = rows
                    if rec["id"] in stopper(sweep.engine_config, state.records()):
                        stop.touch()
                        self.say(f"run {rec['id']}: early termination after {rows} validation(s); "
                                 "it stops at the end of this epoch")
            if time.monotonic() - beat > HEARTBEAT_S:
                beat = time.monotonic()
                state.update(rec["id"], heartbeat=now())
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=POLL_S)
        if asked_at is not None:
            return "killed", code
        if code == 0:
            return ("stopped" if stop.exists() else "finished"), code
        if code in interrupts.EXIT_CODES:  # `nlstudy fit` stopped by a signal sent to it, not by this agent
            return "interrupted", code
        return ("crashed" if code < 0 else "failed"), code

    def finish(self, sweep: Sweep, state: SweepState, rec: Mapping[str, Any], end_state: str, code: int,
               started: float, note: str | None = None) -> None:
        run_dir = state.run_dir(rec["id"])
        rows = read_progress(run_dir / "progress.jsonl")
        summary = {k: v for row in rows for k, v in row.items()}
        if note is None and end_state in ("failed", "crashed"):
            note = last_line(run_dir / "output.log") or None
        duration = time.time() - started
        if end_state == "interrupted":  # SIGTERM (SLURM's preemption, `kill`) or SIGHUP to the run itself
            end_state = "killed"
            note = note or f"stopped by {interrupts.name(interrupts.EXIT_CODES[code])}, not sent by its agent"
            crashed = True
        else:  # a signal nobody here sent (SIGKILL, the OOM killer): the next session retries it
            crashed = end_state == "crashed"
        state.update(rec["id"], state=end_state, exitcode=code, ended_at=now(), duration_s=round(duration, 3),
                     summary=summary, note=note, retry=end_state == "killed" or crashed,
                     not_retried_by=self.options.session if crashed else None)
        if end_state in ("failed", "crashed") or crashed:
            self.failed += 1
        metric = (sweep.config.get("metric") or {}).get("name")
        result = f" ({metric}={summary[metric]:.4g})" if metric in summary and isinstance(summary[metric], (int, float)) else ""
        why = f" with exit code {code}" if end_state == "failed" else f" by signal {-code}" if end_state == "crashed" else ""
        self.say(f"[{sweep.name} {self._position(sweep, state)}] run {rec['id']} {end_state}{why} in {hms(duration)}"
                 f"{result} | {self.suite.progress()}")
        if end_state in ("failed", "crashed"):
            self.say(f"  {note or 'no output'}  (log: {run_dir / 'output.log'})")
        if end_state == "killed" and crashed:
            self.say(f"  {note}")
        if crashed:
            self.say("  it is retried (resumed from its last checkpoint, if it has one) when the sweep is run again")

    def _position(self, sweep: Sweep, state: SweepState) -> str:
        records = state.records()
        done = sum(r["state"] in ENDED and not r.get("retry") for r in records)
        planned = sweep.planned_count()
        return f"{done}/{planned if planned is not None else '?'}"


def last_line(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            tail = f.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [l.strip() for l in tail.replace("\r", "\n").splitlines() if l.strip()]
    return lines[-1][:300] if lines else ""
