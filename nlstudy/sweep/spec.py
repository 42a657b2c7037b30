"""Load a sweep file and validate it before anything runs.

Order: the file reads (UTF-8; a BOM and CRLF line ends are fine) and is a YAML mapping that gives no key
twice; keys the W&B server accepts but the ``sweeps`` schema does not know (``run_cap``) are checked here
and set aside; the W&B schema
(``sweeps.schema_violations_from_proposed_config``); the method and early-termination type are ones
this agent runs; every ``${...}`` in ``command`` is a macro ``wandb agent`` knows, and no
``${envvar:NAME}`` names a secret (``keys.is_secret``: its value would be written into the run's
records); the engine accepts the parameters (a grid of continuous values fails here, not after the
first run). Whether each parameter is a real training-CLI key with an allowed value is checked by
``nlstudy.sweep.check``.

Every problem is a :class:`SweepError` whose message is one line naming the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from nlstudy import files, keys
from nlstudy.errors import one_line, yaml_problem
from nlstudy.registry import lookup
from nlstudy.sweep import command as cmd
from nlstudy.sweep import engine
from nlstudy.sweep.state import digest_id


class SweepError(ValueError):
    """A sweep file (or an option about it) that cannot run; the message is one line."""


def _positive_int(name: str):
    def check(value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return check


# top-level keys the W&B server accepts that sweeps 0.2.0's schema rejects -> their check
SERVER_KEYS = {"run_cap": _positive_int("run_cap")}

MAX_GRID_CHECKED = 2000  # a larger grid is checked one value at a time, not point by point


def _grid_candidates(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    if engine.grid_size(config) <= MAX_GRID_CHECKED:
        return engine.grid_points(config)
    return engine.one_at_a_time(config)


# search methods this agent runs -> the run configs that validation checks against the training CLI
# (W&B's "custom" needs a custom controller and is not run here)
METHODS = {"grid": _grid_candidates, "random": engine.one_at_a_time, "bayes": engine.one_at_a_time}

# early-termination types -> the engine call that decides which runs to stop
EARLY_TERMINATE = {"hyperband": engine.to_stop}


@dataclasses.dataclass(frozen=True)
class Sweep:
    """One sweep file: where it is, its text (kept as the sweep's sweep.yaml) and its config."""

    path: Path
    text: str
    config: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def method(self) -> str:
        return self.config["method"]

    @property
    def run_cap(self) -> int | None:
        return self.config.get("run_cap")

    @property
    def command(self) -> list[Any] | None:
        return self.config.get("command")

    @property
    def program(self) -> str | None:
        return self.config.get("program")

    @property
    def engine_config(self) -> dict[str, Any]:
        """The config as the ``sweeps`` engine takes it (server-only keys set aside)."""
        return {k: v for k, v in self.config.items() if k not in SERVER_KEYS}

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.config, sort_keys=True, default=str).encode()).hexdigest()

    @property
    def default_id(self) -> str:
        """The sweep id used when none is given: derived from the config, so running the same file
        again rejoins its sweep and an edited file starts a new one. Eight letters and digits, like
        W&B's ids."""
        return digest_id(self.fingerprint)

    def planned_count(self) -> int | None:
        """How many runs the sweep will start: the grid size (capped by run_cap), or run_cap."""
        if self.method == "grid":
            n = engine.grid_size(self.engine_config)
            return min(n, self.run_cap) if self.run_cap else n
        return self.run_cap


def fail(path: os.PathLike | str, message: str) -> SweepError:
    return SweepError(f"{path}: {message}")


def load(path: str | os.PathLike) -> Sweep:
    """Read and validate one sweep file (all but the CLI-key check)."""
    path = Path(path)
    try:
        text = files.read_text(path)  # from any editor: a BOM, CRLF line ends; not UTF-8 is one line
    except OSError as e:
        raise fail(path, f"cannot read the sweep file ({e.strerror or e})") from None
    except files.FileProblem as e:
        raise fail(path, e.problem) from None
    try:
        config = files.load_yaml(text)  # a key given twice is refused, not silently the last one
    except yaml.YAMLError as e:
        raise fail(path, yaml_problem(e)) from None
    if not isinstance(config, dict):
        raise fail(path, f"a sweep file is a YAML mapping (method, metric, parameters, ...), got {type(config).__name__}")
    sweep = Sweep(path, text, config)
    validate(sweep)
    return sweep


def validate(sweep: Sweep) -> None:
    path, config = sweep.path, sweep.config
    for key, check in SERVER_KEYS.items():
        if key in config:
            try:
                check(config[key])
            except ValueError as e:
                raise fail(path, str(e)) from None
    try:  # before the schema, whose messages list W&B's choices (custom), not the ones run here
        if isinstance(config.get("method"), str):
            lookup(METHODS, config["method"], "method")
        if isinstance(config.get("early_terminate"), dict):
            lookup(EARLY_TERMINATE, config["early_terminate"].get("type"), "early_terminate type")
    except ValueError as e:
        raise fail(path, str(e)) from None
    violations = engine.schema_violations(sweep.engine_config)
    if violations:
        more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        where = violation_key(config, violations[0])
        raise fail(path, f"not a valid W&B sweep config: {where + ': ' if where else ''}"
                         f"{one_line(violations[0])}{more}")
    lookup(METHODS, config["method"], "method")  # the schema requires one
    _check_command(sweep)
    _check_engine(sweep)


def violation_key(config: Mapping[str, Any], message: str) -> str | None:
    """The dotted key a schema message is about: the key whose value (or name) the message quotes, the longest
    quote winning (jsonschema's messages quote the value, "'maximise' is not one of [...]", not its path)."""
    found: list[tuple[int, str]] = []

    def walk(prefix: str, tree: Mapping[str, Any]) -> None:
        for key, value in tree.items():
            name = f"{prefix}{key}"
            for quoted in (repr(value), repr(key)):
                if quoted in message:
                    found.append((len(quoted), name))
            if isinstance(value, Mapping):
                walk(name + ".", value)

    walk("", config)
    return max(found)[1] if found else None


def _check_command(sweep: Sweep) -> None:
    template = sweep.command
    if template is None:
        template = cmd.DEFAULT_COMMAND
    for element in template:
        if isinstance(element, (dict, list)) or element is None:
            raise fail(sweep.path, f"command: each element is a string, got {element!r}")
        name = cmd.macro_name(element)
        if name is not None and not name.startswith("envvar:"):
            try:
                lookup(cmd.MACROS, name, "command macro")
            except ValueError as e:
                raise fail(sweep.path, f"command: {e}") from None
        elif "${" in str(element) and not cmd.ENVVAR.search(str(element)):
            raise fail(sweep.path, f"command: {element!r}: wandb agent replaces a macro only as a whole element "
                                   "(or ${envvar:NAME} inside one)")
        secret = next((m.group(1) for m in cmd.ENVVAR.finditer(str(element)) if keys.is_secret(m.group(1))), None)
        if secret is not None:
            raise fail(sweep.path, f"command: ${{envvar:{secret}}} would put a secret on the run's command line, "
                                   "which the run's records (run.json, wandb's args) and ps show; let the program "
                                   f"read {secret} from its environment instead")
    if any(cmd.macro_name(e) == "program" for e in template) and not sweep.program:
        raise fail(sweep.path, "command uses ${program} but the sweep sets no program")


def _check_engine(sweep: Sweep) -> None:
    try:
        engine.propose(sweep.engine_config, [])
    except (ValueError, TypeError, KeyError, AssertionError) as e:
        raise fail(sweep.path, f"the sweeps engine rejects the parameters: {one_line(e)}") from None


def candidates(sweep: Sweep) -> list[dict[str, Any]]:
    """The run configs to check against the training CLI: every point of a grid (up to
    MAX_GRID_CHECKED), otherwise each value of each parameter with the others at their first values."""
    return METHODS[sweep.method](sweep.engine_config)


def compact(value: Any) -> str:
    """A parameter value as message text: dicts and lists as compact JSON, anything else as str()."""
    return json.dumps(value, separators=(",", ":")) if isinstance(value, (dict, list)) else str(value)

