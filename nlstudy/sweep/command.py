"""A sweep's ``command`` expanded for one run exactly as ``wandb agent`` does it (wandb 0.31:
``wandb_agent.Agent._command_run`` with ``wandb.sdk.launch.sweeps.utils.create_sweep_command`` and
``create_sweep_command_args``; the tests compare against that code).

What wandb does, and therefore what happens here:

- ``${envvar:NAME}`` (NAME in ``[A-Z0-9_]``) is replaced anywhere inside an element by the variable's
  value, or by ``NAME`` itself when it is unset.
- Every other macro must be a whole element ``${name}``; it is replaced by zero or more elements
  (:data:`MACROS`). An unknown ``${name}`` disappears (``nlstudy.sweep.spec`` rejects it first).
- Values are written with ``str()`` (``--k=None``, ``--k=True``, ``--k={'a': 1}``, Python reprs),
  except in ``${args_json}`` / ``${args_json_file}``, which hold ``json.dumps`` of ``{name: value}``:
  the one form that keeps None, booleans, ints, lists and nested dicts intact.
- ``${args_no_boolean_flags}`` writes ``--k`` for True and drops False; ``${args_dict}`` adds the
  parameter *names* (wandb extends the list with a dict).
- No ``command`` means ``${env} ${interpreter} ${program} ${args}``; ``${interpreter}`` is the literal
  ``python`` found on PATH and ``${env}`` is ``/usr/bin/env`` (not on Windows).

The run also gets wandb's parameter file (``WANDB_SWEEP_PARAM_PATH``): :func:`param_file_text`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml

DEFAULT_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]
ENVVAR = re.compile(r"\$\{envvar\:([A-Z0-9_]*)\}")
ARGS_JSON_FILE = "${args_json_file}"


@dataclasses.dataclass(frozen=True)
class RunArgs:
    """What one run's command is built from: the run config in W&B's ``{name: {"value": v}}`` form,
    the sweep's ``program``, and where the ``${args_json_file}`` file goes."""

    args: Mapping[str, Mapping[str, Any]]
    program: str | None = None
    args_json_file: str = ""

    @property
    def values(self) -> dict[str, Any]:
        return {name: spec["value"] for name, spec in self.args.items()}


def _flags(a: RunArgs) -> list[str]:
    return [f"--{k}={v}" for k, v in a.values.items()]


def _no_equals(a: RunArgs) -> list[str]:
    return [part for k, v in a.values.items() for part in (f"--{k}", str(v))]


def _no_boolean_flags(a: RunArgs) -> list[str]:
    out = []
    for k, v in a.values.items():
        if isinstance(v, bool):
            if v:
                out.append(f"--{k}")
        else:
            out.append(f"--{k}={v}")
    return out


def args_json_text(a: RunArgs) -> str:
    """The text of ``${args_json}`` and of the ``${args_json_file}`` file."""
    return json.dumps(a.values)


# macro name -> the elements it becomes
MACROS: dict[str, Callable[[RunArgs], list[Any]]] = {
    "env": lambda a: [] if platform.system() == "Windows" else ["/usr/bin/env"],
    "interpreter": lambda a: ["python"],
    "program": lambda a: [a.program],
    "args": _flags,
    "args_no_equals": _no_equals,
    "args_no_hyphens": lambda a: [f"{k}={v}" for k, v in a.values.items()],
    "args_no_boolean_flags": _no_boolean_flags,
    "args_json": lambda a: [args_json_text(a)],
    "args_json_file": lambda a: [a.args_json_file],
    "args_dict": lambda a: list(a.values),
    "args_append_hydra": lambda a: [f"+{k}={v}" for k, v in a.values.items()],
    "args_override_hydra": lambda a: [f"++{k}={v}" for k, v in a.values.items()],
}


def macro_name(element: Any) -> str | None:
    """``"${args}"`` -> ``"args"``; None for an element that is not a whole-element macro."""
    text = str(element)
    return text[2:-1] if text.startswith("${") and text.endswith("}") else None


def substitute_envvars(template: Sequence[Any] | None, environ: Mapping[str, str] | None = None) -> list[Any]:
    """The template (or the default command) with ``${envvar:NAME}`` replaced, as wandb does."""
    environ = os.environ if environ is None else environ
    out = list(template or DEFAULT_COMMAND)
    for i, chunk in enumerate(out):
        if isinstance(chunk, str) and ENVVAR.search(chunk):
            for m in list(ENVVAR.finditer(chunk))[::-1]:
                value = environ.get(m.group(1), m.group(1))
                out[i] = f"{out[i][: m.start()]}{value}{out[i][m.end():]}"
    return out


def expand(template: Sequence[Any] | None, run: RunArgs, environ: Mapping[str, str] | None = None) -> list[Any]:
    """The command line of one run."""
    out: list[Any] = []
    for element in substitute_envvars(template, environ):
        name = macro_name(element)
        if name is None:
            out.append(str(element))
        elif name in MACROS:
            out.extend(MACROS[name](run))
    return out


def uses_args_json_file(template: Sequence[Any] | None, environ: Mapping[str, str] | None = None) -> bool:
    return ARGS_JSON_FILE in substitute_envvars(template, environ)


def param_file_text(args: Mapping[str, Mapping[str, Any]]) -> str:
    """The file ``WANDB_SWEEP_PARAM_PATH`` names: wandb's config-file form of the run config
    (``wandb.sdk.lib.config_util.save_config_file_from_dict``)."""
    text = "wandb_version: 1"
    if args:
        text += "\n\n" + yaml.dump(dict(args), Dumper=yaml.SafeDumper, default_flow_style=False,
                                   allow_unicode=True, sort_keys=False)
    return text
