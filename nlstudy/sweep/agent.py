"""The local agent: claim a run, launch it as `wandb agent` would (offline), watch it, record it.

One agent runs one run at a time. `--jobs J` starts J agent processes (``nlstudy.sweep.cli``); agents
started separately on the same sweep cooperate through the sweep's lock file: asking the engine for
the next run and recording it as pending happen under one lock, so no two agents run the same
configuration (a grid engine sees the pending run as taken).

A run's end state: exit code 0 -> finished (stopped, if early termination asked it to stop); an
exit code > 0 -> failed; killed by a signal the agent did not send -> crashed; interrupted because
the agent itself was asked to stop (Ctrl-C, SIGTERM) -> killed, and retried when the sweep is run
again, as are the runs of an agent that died (``SweepState.reap``). A failed run does not stop the
sweep.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nlstudy import keys
from nlstudy.sweep import command as cmd
from nlstudy.sweep import engine
from nlstudy.sweep.spec import EARLY_TERMINATE, Sweep, compact
from nlstudy.processes import process_start
from nlstudy.sweep.state import ENDED, HEARTBEAT_S, SweepState, new_id, now, read_progress, this_agent

# environment variables the run reads (names owned by nlstudy.cli and nlstudy.lit.callbacks)

KILL_DELAY_S = 30.0  # after asking a run to stop (Ctrl-C), how long before it is killed
POLL_S = 0.5


@dataclasses.dataclass
class Options:
    runs_root: Path
    project: str
    jobs: int = 1
    threads: int = 1
    count: int | None = None  # runs this command may start, over all its agents (None: no limit)
    session: str = dataclasses.field(default_factory=new_id)  # shared by the agents of one command
    started: float = dataclasses.field(default_factory=time.time)  # when the command started
    label: str = ""  # "[agent 2] " for the agents of --jobs


class Interrupt:
    """Counts SIGINT / SIGTERM received; the agent reads it between polls (no exception mid-write)."""

    def __init__(self) -> None:
        self.count = 0
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "Interrupt":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handle(self, signum: int, frame: Any) -> None:
        self.count += 1


def _die_with_parent(parent: int) -> Callable[[], None]:
    """preexec_fn: the child gets SIGTERM if this agent dies (Linux), so no run outlives its agent."""
    def setup() -> None:
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)
    return setup


def describe_config(sweep: Sweep, config: Mapping[str, Mapping[str, Any]]) -> str:
    """The values that vary in this sweep (constant parameters left out)."""
    fixed = {name for name, spec in (sweep.config.get("parameters") or {}).items()
             if isinstance(spec, Mapping) and "value" in spec}
    return " ".join(f"{k}={compact(v['value'])}" for k, v in config.items() if k not in fixed) or "(no parameters)"


def hms(seconds: float) -> str:
    return str(dt.timedelta(seconds=int(round(seconds))))


class Suite:
    """The sweeps one command works through (in order) and the progress line over all of them."""

    def __init__(self, items: Sequence[tuple[Sweep, SweepState]], options: Options):
        self.items, self.options = list(items), options

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
                if r.get("agent", {}).get("session") == self.options.session:
                    mine += 1
                    if ok:
                        durations.append(r["duration_s"])
        elapsed = time.time() - self.options.started
        left: int | None = None if total is None else total - done
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

    def _running_mine(self) -> int:
        n = 0
        for _, state in self.items:
            n += sum(r["state"] in ("pending", "running") and r.get("agent", {}).get("session") == self.options.session
                     for r in state.records())
        return n


class Agent:
    """Runs the runs of the suite's sweeps, one at a time, until none is left, --count is reached
    or it is interrupted."""

    def __init__(self, suite: Suite, out: Callable[[str], None] | None = None):
        self.suite, self.options = suite, suite.options
        self.out = out or (lambda line: print(line, flush=True))
        self.interrupt = Interrupt()
        self.failed = 0

    def say(self, line: str) -> None:
        self.out(f"{self.options.label}{line}")

    # -- the loop -----------------------------------------------------------------------------------
    def run(self) -> int:
        """0: every run this agent started finished; 1: some failed or crashed; 130: interrupted."""
        with self.interrupt:
            for sweep, state in self.suite.items:
                while not self.interrupt.count:
                    rec = self.claim(sweep, state)
                    if rec is None:
                        break
                    self.execute(sweep, state, rec)
                if self.interrupt.count or self.count_reached(state):
                    break
        if self.interrupt.count:
            self.say(f"interrupted: run the same command again to resume ({self.suite.progress()})")
            return 130
        self.say(f"agent done: {self.suite.progress()}")
        return 1 if self.failed else 0

    def count_reached(self, state: SweepState) -> bool:
        if self.options.count is None:
            return False
        mine = sum(r.get("agent", {}).get("session") == self.options.session
                   for _, s in self.suite.items for r in s.records())
        return mine >= self.options.count

    def claim(self, sweep: Sweep, state: SweepState) -> dict[str, Any] | None:
        """Under the sweep's lock: the next run (a retry of an interrupted run first, else the
        engine's proposal), recorded as pending and owned by this agent; None when there is none."""
        with state.lock():
            records = state.records()
            state.reap(records)
            if self.options.count is not None:
                mine = sum(r.get("agent", {}).get("session") == self.options.session
                           for _, s in self.suite.items for r in (records if s is state else s.records()))
                if mine >= self.options.count:
                    return None
            retry = next((r for r in records if r["state"] in ENDED and r.get("retry") and not r.get("retried_by")), None)
            if retry is not None:
                config = retry["config"]
            else:
                originals = [r for r in records if not r.get("retry_of")]
                if sweep.run_cap is not None and len(originals) >= sweep.run_cap:
                    return None
                config = engine.propose(sweep.engine_config, records)
                if config is None:
                    return None
                if sweep.method == "grid" and any(r["config"] == config for r in records):
                    raise RuntimeError(f"{sweep.path}: the grid engine proposed a configuration it already ran: {config}")
            rec = {
                "id": new_id(), "config": config, "state": "pending", "created_at": now(),
                "agent": this_agent(self.options.session), "heartbeat": now(),
                "retry_of": retry["id"] if retry is not None else None, "retried_by": None, "retry": False,
            }
            state.write(rec)
            if retry is not None:
                retry["retried_by"] = rec["id"]
                state.write(retry)
        return rec

    # -- one run ------------------------------------------------------------------------------------
    def environment(self, sweep: Sweep, state: SweepState, rec: Mapping[str, Any]) -> dict[str, str]:
        run_dir = state.run_dir(rec["id"])
        threads = str(self.options.threads)
        env = dict(os.environ)
        env.pop(keys.WANDB_API_KEY, None)  # the run is offline: it has no use for the key, so cannot leak it
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env.update({
            "WANDB_MODE": "offline",
            "WANDB_SILENT": env.get("WANDB_SILENT", "true"),
            "WANDB_SWEEP_ID": state.id,
            "WANDB_RUN_ID": rec["id"],
            "WANDB_SWEEP_PARAM_PATH": str(run_dir / "params.yaml"),
            "WANDB_PROJECT": self.options.project,
            "WANDB_DIR": str(state.runs_root),
            keys.RUNS_ENV: str(state.runs_root),
            keys.THREADS_ENV: threads,
            "OMP_NUM_THREADS": threads,
            keys.PROGRESS_ENV: str(run_dir / "progress.jsonl"),
            keys.STOP_ENV: str(run_dir / "stop"),
        })
        return env

    def command_line(self, sweep: Sweep, state: SweepState, rec: Mapping[str, Any]) -> list[str]:
        """Writes the run's parameter files and returns its command line."""
        run_dir = state.run_dir(rec["id"])
        run_dir.mkdir(parents=True, exist_ok=True)
        args = cmd.RunArgs(rec["config"], sweep.program, str(run_dir / "args.json"))
        (run_dir / "params.yaml").write_text(cmd.param_file_text(rec["config"]))
        if cmd.uses_args_json_file(sweep.command):
            (run_dir / "args.json").write_text(cmd.args_json_text(args))
        return [str(part) for part in cmd.expand(sweep.command, args)]

    def execute(self, sweep: Sweep, state: SweepState, rec: dict[str, Any]) -> None:
        run_dir = state.run_dir(rec["id"])
        argv = self.command_line(sweep, state, rec)
        env = self.environment(sweep, state, rec)
        position = self._position(sweep, state)
        retry = f" (retry of {rec['retry_of']})" if rec.get("retry_of") else ""
        self.say(f"[{sweep.name} {position}] run {rec['id']}{retry}: {describe_config(sweep, rec['config'])}")
        started = time.time()
        log = open(run_dir / "output.log", "ab")
        try:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True, preexec_fn=_die_with_parent(os.getpid()))
        except OSError as e:
            log.write(f"cannot start {argv[0]!r}: {e}\n".encode())
            log.close()
            self.finish(sweep, state, rec, "failed", 127, started, note=f"cannot start {argv[0]!r}: {e.strerror or e}")
            return
        state.update(rec["id"], state="running", started_at=now(), pid=proc.pid, pid_start=process_start(proc.pid),
                     command=argv, heartbeat=now())
        try:
            end_state, code = self.watch(sweep, state, rec, proc)
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
        return ("crashed" if code < 0 else "failed"), code

    def finish(self, sweep: Sweep, state: SweepState, rec: Mapping[str, Any], end_state: str, code: int,
               started: float, note: str | None = None) -> None:
        run_dir = state.run_dir(rec["id"])
        rows = read_progress(run_dir / "progress.jsonl")
        summary = {k: v for row in rows for k, v in row.items()}
        if note is None and end_state in ("failed", "crashed"):
            note = last_line(run_dir / "output.log") or None
        duration = time.time() - started
        state.update(rec["id"], state=end_state, exitcode=code, ended_at=now(), duration_s=round(duration, 3),
                     summary=summary, note=note, retry=end_state == "killed")
        if end_state in ("failed", "crashed"):
            self.failed += 1
        metric = (sweep.config.get("metric") or {}).get("name")
        result = f" ({metric}={summary[metric]:.4g})" if metric in summary and isinstance(summary[metric], (int, float)) else ""
        why = f" with exit code {code}" if end_state == "failed" else f" by signal {-code}" if end_state == "crashed" else ""
        self.say(f"[{sweep.name} {self._position(sweep, state)}] run {rec['id']} {end_state}{why} in {hms(duration)}"
                 f"{result} | {self.suite.progress()}")
        if end_state in ("failed", "crashed"):
            self.say(f"  {note or 'no output'}  (log: {run_dir / 'output.log'})")

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
