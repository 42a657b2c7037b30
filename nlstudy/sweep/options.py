"""What one agent command was asked to do (Options): shared by the agent and its progress line."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from nlstudy.sweep.state import new_id

SAME_FAILURES = 3  # the sweep stops when the first this many runs a command starts all fail the same way


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
    reuse: bool = True  # a configuration that already finished under the runs root is not run again
    warm: bool = True  # `nlstudy fit` runs start warm, forked from a worker that imported torch once (nlstudy.warm)
    same_failures: int = SAME_FAILURES  # stop once the first this many runs all failed the same way (0: never)
