"""`nlstudy sweep --online`: W&B's own server and agent, unchanged.

The sweep is created on the server from the same file (``wandb.sweep``; or rejoined with
``--sweep-id``), then ``--jobs`` copies of ``wandb agent`` run it here; any machine can add agents
with the printed command. Runs log online (``WANDB_MODE=online``: the training CLI logs offline
unless told otherwise). Needs a W&B login and network, so the tests here only build these calls.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nlstudy import interrupts, keys
from nlstudy.sweep.spec import Sweep


def sweep_command(sweep: Sweep, project: str, entity: str | None) -> list[str]:
    """The `wandb sweep` call that creates this sweep on the server."""
    return ["wandb", "sweep", "--project", project, *(["--entity", entity] if entity else []), str(sweep.path)]


def agent_command(sweep_id: str, project: str, entity: str | None, count: int | None) -> list[str]:
    """The `wandb agent` call that runs it (on this or any other machine)."""
    path = "/".join(p for p in (entity, project, sweep_id) if p)
    return ["wandb", "agent", *(["--count", str(count)] if count else []), path]


def agent_environment(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update({"WANDB_MODE": "online", keys.THREADS_ENV: str(threads), "OMP_NUM_THREADS": str(threads)})
    return env


def create(sweep: Sweep, project: str, entity: str | None) -> str:
    import wandb

    return wandb.sweep(sweep.config, entity=entity, project=project)


def run(
    sweeps: Sequence[Sweep], *, project: str, entity: str | None, sweep_id: str | None, count: int | None,
    jobs: int, threads: int, out: Callable[[str], None],
    create_sweep: Callable[[Sweep, str, str | None], str] = create,
    start: Callable[..., Any] = subprocess.Popen,
) -> int:
    """Create (or rejoin) each sweep on the server, then run `jobs` W&B agents on it until they end."""
    code = 0
    for sweep in sweeps:
        if sweep_id is None:
            out(f"{sweep.path}: creating the sweep on W&B (same as: {shlex.join(sweep_command(sweep, project, entity))})")
            try:
                sid = create_sweep(sweep, project, entity)
            except Exception as e:  # no login, no network, refused config: say what to run by hand
                out(f"nlstudy sweep: --online: cannot create the sweep on W&B ({' '.join(str(e).split())[:200]}); "
                    f"by hand: {shlex.join(sweep_command(sweep, project, entity))}")
                return 1
        else:
            sid = sweep_id
        argv = agent_command(sid, project, entity, count)
        out(f"{sweep.path}: sweep {sid}; starting {jobs} agent(s): {shlex.join(argv)}  (more machines: the same command)")
        procs = [start(argv, env=agent_environment(threads)) for _ in range(jobs)]
        try:
            for proc in procs:
                code = max(code, proc.wait() or 0)
        except KeyboardInterrupt as e:  # SIGTERM / SIGHUP to this command alone reach its agents too (Ctrl-C
            signum = interrupts.signal_of(e)  # reaches them from the terminal already: a second one kills runs)
            if signum != signal.SIGINT:
                for proc in procs:
                    if proc.poll() is None:
                        proc.send_signal(signum)
            for proc in procs:
                proc.wait()
            raise
    return code
