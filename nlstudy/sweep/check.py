"""Is every parameter of a sweep a real training-CLI key with a value the CLI accepts?

Each candidate run config (``spec.candidates``: every grid point, or each value of each parameter)
is expanded into its command line exactly as it will run, and the training part of it (what follows
``nlstudy`` or ``-m nlstudy``) is handed to ``nlstudy check`` -- one subprocess for every file and
every candidate, so the training CLI's own parser and model builder (on the meta device) judge the
values, and this process never imports torch. A command that does not call nlstudy is not checked.
The check also hands back each checked run's resolved key (``nlstudy.lit.record.resolved_key``): the agent
reuses a finished run whose resolved configuration is the same (``nlstudy.sweep.reuse.reuse_key``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlstudy.processes import cores
from nlstudy.records import config_key, flat_values
from nlstudy.sweep import command as cmd
from nlstudy.sweep.spec import Sweep, SweepError, candidates, compact

CHECK_TIMEOUT_S = 900
CONFIG_ONLY = "--config-only"  # nlstudy check's flag (nlstudy.lit.check.CONFIG_ONLY): leave this machine unchecked
CHECK_ONLY_CONFIG = "--check-only-config"  # nlstudy sweep's flag for it
PER_PROCESS = 24  # argument lists a check process gets at least (its imports take seconds)
DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.\w+)+|seed_everything|table")


def training_args(command: Sequence[str]) -> list[str] | None:
    """The arguments after ``nlstudy`` (the console script) or ``-m nlstudy``; None if the command
    does not call nlstudy."""
    for i, part in enumerate(command):
        if Path(str(part)).name == "nlstudy":
            return [str(p) for p in command[i + 1:]]
        if part == "-m" and i + 1 < len(command) and command[i + 1] == "nlstudy":
            return [str(p) for p in command[i + 2:]]
    return None


def run_nlstudy_check(arg_lists: list[list[str]], processes: int | None = None, *,
                      machine: bool = True) -> list[dict[str, Any]]:
    """``nlstudy check`` on many argument lists: one {"ok", "error", "key", "machine"} per list, in order (with
    `machine` false, ``--config-only``: whether this machine can run them is not checked). The lists are
    shared out over `processes` subprocesses run side by side (default: one per core, each with at least
    PER_PROCESS lists: a process spends seconds importing before it checks anything)."""
    if processes is None:
        processes = min(cores(), max(1, len(arg_lists) // PER_PROCESS))
    size = -(-len(arg_lists) // max(1, processes))
    chunks = [arg_lists[i:i + size] for i in range(0, len(arg_lists), size)] or [[]]
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true")
    with tempfile.TemporaryDirectory(prefix="nlstudy-check-") as tmp:
        procs = []
        for i, chunk in enumerate(chunks):
            request = Path(tmp, f"check-{i}.json")
            request.write_text(json.dumps(chunk))
            only = [] if machine else [CONFIG_ONLY]
            procs.append(subprocess.Popen([sys.executable, "-m", "nlstudy", "check", *only, str(request)], env=env, text=True,
                                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        try:
            outputs = [proc.communicate(timeout=CHECK_TIMEOUT_S) for proc in procs]
        except subprocess.TimeoutExpired:
            raise SweepError(f"nlstudy check did not answer within {CHECK_TIMEOUT_S} s") from None
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    return [result for chunk, proc, (out, err) in zip(chunks, procs, outputs)
            for result in check_results(chunk, proc.returncode, out, err)]


def check_results(arg_lists: list[list[str]], code: int, stdout: str, stderr: str) -> list[dict[str, Any]]:
    """The results one ``nlstudy check`` printed for `arg_lists` (its last JSON line of that length)."""
    for line in reversed(stdout.splitlines()):
        try:
            results = json.loads(line)
        except ValueError:
            continue
        if isinstance(results, list) and len(results) == len(arg_lists):
            return results
    last = next((l for l in reversed(stderr.splitlines()) if l.strip()), f"exit code {code}")
    raise SweepError(f"nlstudy check failed: {last.strip()}")


@dataclass
class Checked:
    """What checking the sweeps found: notes (sweeps whose command does not call nlstudy) and, per sweep, the
    resolved key of each checked run config (``config_key(config)`` -> ``nlstudy.lit.record.resolved_key``)."""

    notes: list[str]
    resolved: list[dict[str, str]]


def check_sweeps(sweeps: Sequence[Sweep], *, machine: bool = True) -> Checked:
    """Check every candidate run of every sweep in one ``nlstudy check``, and (unless `machine` is false: a
    login node checking files for other machines) that this machine can run them; raise a SweepError (one
    line, the first problem found) or return what was found (`Checked`)."""
    notes: list[str] = []
    resolved: list[dict[str, str]] = [{} for _ in sweeps]
    with tempfile.TemporaryDirectory(prefix="nlstudy-sweep-") as tmp:
        jobs: list[tuple[int, Sweep, dict[str, Any], list[str]]] = []
        for s_index, sweep in enumerate(sweeps):
            uses_file = cmd.uses_args_json_file(sweep.command)
            found = False
            for c_index, config in enumerate(candidates(sweep)):
                json_file = str(Path(tmp, f"{s_index}-{c_index}.json"))
                run = cmd.RunArgs(config, sweep.program, json_file)
                if uses_file:
                    Path(json_file).write_text(cmd.args_json_text(run))
                argv = training_args(cmd.expand(sweep.command, run))
                if argv is None:
                    break
                found = True
                jobs.append((s_index, sweep, config, argv))
            if not found:
                notes.append(f"{sweep.path}: the command does not call nlstudy; its parameters are not checked "
                             "against the training CLI")
        if not jobs:
            return Checked(notes, resolved)
        results = run_nlstudy_check([argv for *_, argv in jobs], machine=machine)
        bad = [(job, r["error"]) for job, r in zip(jobs, results) if not r.get("ok") and not r.get("machine")]
        machine_bad = [(job, r["error"]) for job, r in zip(jobs, results) if not r.get("ok") and r.get("machine")]
        if machine_bad and not bad:  # the runs are fine, but not for this machine
            (_, sweep, _, _), error = machine_bad[0]
            rejected, total = (sum(job[1] is sweep for job in js) for js in ([j for j, _ in machine_bad], jobs))
            which = "any of its" if rejected == total else f"{rejected} of its"
            raise SweepError(f"{sweep.path}: this machine cannot run {which} {total} run(s): {error}; on a login "
                             f"node, {CHECK_ONLY_CONFIG} checks the file without this machine")
        if bad:
            (_, sweep, config, _), error = bad[0]
            more = f" ({len(bad) - 1} more run(s) rejected)" if len(bad) > 1 else ""
            raise SweepError(f"{sweep.path}: {describe(config, error)}{more}")
        for (s_index, _, config, _), result in zip(jobs, results):
            if result.get("key"):
                resolved[s_index][config_key(config)] = result["key"]
    return Checked(notes, resolved)


SUBJECT = re.compile(r'Parser key "([^"]+)"|([A-Za-z_][\w.]*): ')  # the key an error starts with


def describe(config: Mapping[str, Mapping[str, Any]], error: str) -> str:
    """'parameter NAME: ERROR' for the parameter the error is about (the key it starts with, else the first key
    it names before its lists of guesses and valid keys), else 'run {values}: ERROR'."""
    flat = flat_values(config)
    error = error or ""
    about = re.split(r" \(did you mean|; did you mean|; valid ", error, maxsplit=1)[0]  # not the keys it suggests
    subject = SUBJECT.match(error)
    named = [k for k in (subject.groups() if subject else ()) if k] + DOTTED.findall(about)
    for key in named:
        for name, spec in config.items():
            if key == name or key.startswith(name + "."):
                value = flat.get(key, spec["value"])
                where = name if key == name else f"{name} ({key}={compact(value)})"
                return f"parameter {where}: {error}"
    for name in config:  # a parameter named as it is (an unknown top-level key has no dot)
        if re.search(rf"(?<![\w.]){re.escape(name)}(?![\w.])", about):
            return f"parameter {name}: {error}"
    values = ", ".join(f"{k}={compact(v['value'])}" for k, v in config.items())
    return f"run with {values}: {error}"
