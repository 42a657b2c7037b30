"""The private wandb names of nlstudy.adapters.wandb, checked against the installed wandb on a real offline run:
each test names what changed if it fails. And nothing else in nlstudy names them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nlstudy
from nlstudy.adapters import wandb as adapter

PACKAGE = Path(nlstudy.__file__).parent

RUN = """
import sys, wandb
run = wandb.init(dir=sys.argv[1], project="adapter", mode="offline", config={"a": 1, "b": {"c": "x"}},
                 settings=wandb.Settings(silent=True, console="off", disable_git=True))
run.log({"m": 1.0})
run.finish()
print(run.dir)
"""


def offline_run(tmp_path) -> Path:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    out = subprocess.run([sys.executable, "-c", RUN, str(tmp_path)], capture_output=True, text=True, env=env,
                         timeout=120, check=True).stdout
    return Path(out.strip().splitlines()[-1]).parent  # .../wandb/offline-run-<time>-<id>


def test_the_warm_imports_still_import(capsys):
    assert adapter.preload(), f"wandb changed: {adapter.WARM_IMPORTS} no longer import"
    assert capsys.readouterr().err == ""


def test_a_moved_warm_import_is_said_once_and_the_worker_goes_on(monkeypatch, capsys):
    monkeypatch.setattr(adapter, "WARM_IMPORTS", ("wandb.sdk.no_such_module",))
    assert adapter.preload() is False
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "wandb.sdk.no_such_module" in err and "nlstudy/adapters/wandb.py" in err


def test_debug_log_holds_the_runs_config_and_pid_as_read(tmp_path):
    run_dir = offline_run(tmp_path)
    text = adapter.read_debug_log(run_dir)
    assert text, f"wandb changed: no logs/debug.log in {run_dir}"
    config = adapter.config_from_debug_log(text)
    assert config is not None, "wandb changed: debug.log has no 'config: {...}' line"
    assert config.get("a") == 1 and config.get("b") == {"c": "x"}
    assert isinstance(adapter.pid_from_debug_log(text), int), "wandb changed: no 'Configure stats pid to N' line"
    assert adapter.read_debug_log(tmp_path / "none") == "" and adapter.config_from_debug_log("") is None


def test_wandb_cores_inspector_reads_a_run_log_as_the_cli_does(tmp_path):
    run_dir = offline_run(tmp_path)
    command = adapter.inspector_command()
    assert Path(command[0]).is_file(), f"wandb changed: get_core_path() gives {command[0]}"
    run_file = next(run_dir.glob("*.wandb"))
    ours = subprocess.run([*command, "--run-file", str(run_file), str(run_dir.parent)], capture_output=True,
                          text=True, timeout=60)
    cli = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_file)],
                         capture_output=True, text=True, timeout=120)
    assert ours.returncode == 0, f"wandb changed: the inspector's flags {adapter.INSPECT_FLAGS}: {ours.stderr[:300]}"
    assert ours.stdout == cli.stdout and '"m"' in ours.stdout


def test_no_other_module_names_wandbs_private_modules_or_files():
    names = ("wandb.sdk.", "get_core_path", "debug.log\")", "Configure stats pid")
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "adapters":
            continue
        code = "\n".join(l for l in path.read_text().splitlines() if not l.lstrip().startswith(("#", '"', "``")))
        for name in names:
            assert f"import {name}" not in code and f"from {name}" not in code and f"{name}(" not in code, (
                f"{path.relative_to(PACKAGE)} names {name}: move it to nlstudy/adapters/wandb.py")
