"""The private wandb names nlstudy relies on, in one place. tests/test_adapters_wandb.py checks each one against
the installed wandb (a real offline run), so an upgrade that moves or changes one fails there, by name, instead of
a warm start that silently starts cold or a report that reads a run's state wrong.

    WARM_IMPORTS          modules `wandb.init` imports on every run (pydantic models, about a second): the warm
                          worker (nlstudy.lit.worker) imports them once before forking runs; `preload()`
    inspector_command()   wandb-core's run-log inspector, started the way `wandb leet inspect --json` starts it
                          (wandb.util.get_core_path and the flags that CLI passes for an offline read)
    debug.log             a run's `logs/debug.log`, where wandb writes the run's config (`config: {...}`) and
                          its process (`Configure stats pid to N`): `read_debug_log`, `config_from_debug_log`,
                          `pid_from_debug_log` (the report's reader uses them for runs whose log was cut short)
"""

from __future__ import annotations

import ast
import functools
import importlib
import re
import sys
from pathlib import Path
from typing import Any

WARM_IMPORTS = ("wandb.sdk.launch.inputs.internal",)
INSPECT_FLAGS = ("leet", "inspect", "--no-observability", "--json")
CONFIG_LINE = re.compile(r"^config: (\{.*\})\s*$", flags=re.M)
PID_LINE = re.compile(r"Configure stats pid to (\d+)")


def preload() -> bool:
    """Import WARM_IMPORTS; where one no longer imports (wandb moved it), say so once, on stderr, and go on: each
    run then imports it itself (about a second more a run), which is slower but not wrong."""
    for name in WARM_IMPORTS:
        try:
            importlib.import_module(name)
        except ImportError as err:
            import wandb

            print(f"nlstudy: warm start: {name} no longer imports in wandb {wandb.__version__} ({err}); runs start "
                  f"without it, about a second slower each (nlstudy/adapters/wandb.py names it)", file=sys.stderr)
            return False
    return True


@functools.cache
def inspector_command() -> tuple[str, ...]:
    """wandb-core's inspector with the flags `wandb leet inspect --json` passes; add `--run-file FILE WANDB_DIR`."""
    from wandb.util import get_core_path  # local import: wandb loads only once there is a log to read

    return (get_core_path(), *INSPECT_FLAGS)


def read_debug_log(run_dir: str | Path) -> str:
    """The text of a run directory's `logs/debug.log` ("" when there is none)."""
    try:
        return Path(run_dir, "logs", "debug.log").read_text(errors="replace")
    except OSError:
        return ""


def config_from_debug_log(text: str) -> dict[str, Any] | None:
    """The run's config as wandb logged it in debug.log, or None."""
    for match in CONFIG_LINE.finditer(text):
        try:
            value = ast.literal_eval(match.group(1))
        except (ValueError, SyntaxError):
            continue
        if isinstance(value, dict):
            return value
    return None


def pid_from_debug_log(text: str) -> int | None:
    """The process id of the run that wrote debug.log, or None."""
    match = PID_LINE.search(text)
    return int(match.group(1)) if match else None


__all__ = ["WARM_IMPORTS", "config_from_debug_log", "inspector_command", "pid_from_debug_log", "preload",
           "read_debug_log"]
