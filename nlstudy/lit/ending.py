"""How a run ends, and the line that says so: done (`ended_line`), failed (`finish_failed`: the reason kept in
the wandb run's summary, exit code 1) or stopped by a signal (`interrupt_of`, `finish_interrupted`,
`stop_interrupted`: logged as killed, exit code 128 + the signal)."""

from __future__ import annotations

import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

from pytorch_lightning.utilities.exceptions import SIGTERMException

from nlstudy import interrupts, keys
from nlstudy.errors import one_line
from nlstudy.lit.callbacks import shown_path


def finish_failed(error: BaseException) -> str:
    """`error` as the one line that says why the run failed ("NonFiniteLossError: train/loss became nan at
    step 37 (epoch 2)"); the open wandb run, if any, keeps it in its summary (`keys.FAILURE`, which the
    report shows) and finishes as failed (exit code 1)."""
    import wandb

    reason = one_line(f"{type(error).__name__}: {error}".rstrip(": "))
    if wandb.run is not None:
        wandb.run.summary[keys.FAILURE] = reason
        wandb.finish(exit_code=1)
    return reason


def interrupt_of(error: BaseException) -> int | None:
    """The signal behind `error` when it ends a run because someone stopped it, else None: a KeyboardInterrupt
    (Ctrl-C; SIGTERM and SIGHUP under `interrupts.raising`), the SystemExit Lightning raises once it has
    handled one (`sys.exit(1)` in its except clause: the interrupt is its context), or Lightning's own
    SIGTERMException."""
    if isinstance(error, KeyboardInterrupt):
        return interrupts.signal_of(error)
    if isinstance(error, SIGTERMException):
        return signal.SIGTERM
    if isinstance(error, SystemExit) and isinstance(error.__context__, KeyboardInterrupt):
        return interrupts.signal_of(error.__context__)
    return None


def finish_interrupted(signum: int) -> str:
    """The open wandb run, if any, finishes as stopped by `signum`: its summary keeps why (`keys.FAILURE`,
    "interrupted by SIGTERM"), its exit code is 128 + the signal (130 for Ctrl-C), which the report reads
    as killed, not failed (``nlstudy.report.runstate``). Returns the reason."""
    import wandb

    reason = f"interrupted by {interrupts.name(signum)}"
    if wandb.run is not None:
        # the signal may have stopped wandb's service too (SLURM signals every process of a job): then the log
        # ends without its exit record, which the report reads as crashed, and the run is retried all the same
        with contextlib.suppress(Exception):
            wandb.run.summary[keys.FAILURE] = reason
            wandb.finish(exit_code=interrupts.exit_code(signum))
    return reason


def stop_interrupted(command: str, signum: int) -> int:
    """A run stopped by a signal: its wandb run finished as killed (`finish_interrupted`), one line saying so
    and how to go on, and the exit code 128 + the signal. Later signals are ignored while it finishes."""
    import wandb

    for sig in interrupts.SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    run = wandb.run
    run_id, run_dir = (run.id, Path(run.dir).parent) if run is not None else (None, None)
    reason = finish_interrupted(signum)
    line = f"nlstudy {command}: {reason}"
    if run_id is not None:
        line += f"; run {run_id} is logged as killed"
        if command == "fit" and keys.checkpoint_file(run_dir).is_file():
            line += f"; `nlstudy fit --resume {run_id}` continues it from its last checkpoint"
    with contextlib.suppress(OSError):
        sys.stdout.flush()
        print(line, file=sys.stderr, flush=True)
    return interrupts.exit_code(signum)


def ended_line(command: str, result: Any) -> str:
    """The run's last line: its id, its best validation and test top-1 where it has them, and its directory
    (`result`: a nlstudy.lit.train.TrainResult)."""
    summary = {k: result.summary.get(k) for k in (keys.VAL_TOP1_BEST, keys.TEST_TOP1)}
    shown = ", ".join(f"{k} {v:.1f}" for k, v in summary.items() if isinstance(v, (int, float)))
    return f"nlstudy {command}: run {result.run_id} done{': ' + shown if shown else ''} ({shown_path(result.run_dir)})"
