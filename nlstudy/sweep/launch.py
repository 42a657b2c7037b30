"""One run of a sweep, from its claimed record to its end state: its files and environment (as `wandb agent`
would set them, offline), its launch (warm, forked from a worker that imported torch once, where its command is
`nlstudy fit|validate|test`: :mod:`nlstudy.warm`), watching it (the agent's Ctrl-C, early termination, the
heartbeat) and recording how it ended (``nlstudy.sweep.agent`` says what each end state means). The
:class:`Launcher` holds what lasts from one run to the next: the warm worker and the count of failed runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nlstudy import files, interrupts, keys
from nlstudy.choices import TRAIN_COMMANDS
from nlstudy.processes import process_start
from nlstudy.sweep import command as cmd
from nlstudy.sweep.progress import Suite, hms, position
from nlstudy.sweep.signals import Interrupt, _die_with_parent
from nlstudy.sweep.spec import EARLY_TERMINATE, Sweep, compact
from nlstudy.sweep.state import HEARTBEAT_S, SweepState, now, read_progress

KILL_DELAY_S = 30.0  # after asking a run to stop (Ctrl-C), how long before it is killed
POLL_S = 0.5


def describe_config(sweep: Sweep, config: Mapping[str, Mapping[str, Any]]) -> str:
    """The values that vary in this sweep (constant parameters left out)."""
    fixed = {name for name, spec in (sweep.config.get("parameters") or {}).items()
             if isinstance(spec, Mapping) and "value" in spec}
    return " ".join(f"{k}={compact(v['value'])}" for k, v in config.items() if k not in fixed) or "(no parameters)"


class Launcher:
    """Launches, watches and records the runs an agent claims, one at a time; `say` prints a line of the agent's,
    `interrupt` counts the signals the agent was sent."""

    def __init__(self, suite: Suite, say: Callable[[str], None], interrupt: Interrupt):
        self.suite, self.say, self.interrupt = suite, say, interrupt
        self.failed = 0  # runs that failed or crashed
        self.worker: subprocess.Popen | None = None  # the warm-start worker, once a run needs it
        self.worker_dir: str | None = None

    # -- warm starts --------------------------------------------------------------------------------
    def warm_command(self, argv: list[str], env: Mapping[str, str]) -> list[str]:
        """`nlstudy fit ...` (a training command of this nlstudy) as its warm start; others unchanged."""
        if not (self.suite.options.warm and len(argv) > 1 and Path(argv[0]).name == "nlstudy"
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

    # -- the run's files and environment -------------------------------------------------------------------
    def environment(self, sweep: Sweep, state: SweepState, rec: Mapping[str, Any]) -> dict[str, str]:
        run_dir = state.run_dir(rec["id"])
        threads = str(self.suite.options.threads)
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
            "WANDB_PROJECT": self.suite.options.project,
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
        where = position(sweep, state)
        retry = f" ({'resuming' if rec.get('resumes') else 'retry of'} {rec['retry_of']})" if rec.get("retry_of") else ""
        self.say(f"[{sweep.name} {where}] run {rec['id']}{retry}: {describe_config(sweep, rec['config'])}")
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
                     not_retried_by=self.suite.options.session if crashed else None)
        if end_state in ("failed", "crashed") or crashed:
            self.failed += 1
        metric = (sweep.config.get("metric") or {}).get("name")
        result = f" ({metric}={summary[metric]:.4g})" if metric in summary and isinstance(summary[metric], (int, float)) else ""
        why = f" with exit code {code}" if end_state == "failed" else f" by signal {-code}" if end_state == "crashed" else ""
        self.say(f"[{sweep.name} {position(sweep, state)}] run {rec['id']} {end_state}{why} in {hms(duration)}"
                 f"{result} | {self.suite.progress()}")
        if end_state in ("failed", "crashed"):
            self.say(f"  {note or 'no output'}  (log: {run_dir / 'output.log'})")
        if end_state == "killed" and crashed:
            self.say(f"  {note}")
        if crashed:
            self.say("  it is retried (resumed from its last checkpoint, if it has one) when the sweep is run again")


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
