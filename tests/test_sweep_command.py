"""The local agent expands `command` exactly as `wandb agent` does: compared with wandb's own agent
code (wandb_agent.Agent._command_run, with its process start replaced by a recorder) for every macro."""

import json
import os
from pathlib import Path

import pytest
import wandb.wandb_agent as wandb_agent
import yaml

from nlstudy.sweep import command as cmd

# values that trip naive expansions: None, booleans, ints, floats, strings with spaces, lists, nested dicts
ARGS = {
    "seed_everything": {"value": 3},
    "model.backbone": {"value": {"nonlocal_blocks": {"res3": [0, 1]}, "nl": {"pairwise": "gaussian", "scale": False}}},
    "trainer.max_epochs": {"value": 1},
    "model.optim.lr": {"value": 0.0005},
    "data.synthetic.task": {"value": "far"},
    "flag_on": {"value": True},
    "flag_off": {"value": False},
    "nothing": {"value": None},
    "a list": {"value": [1, "two", None]},
    "text": {"value": "two words"},
}

TEMPLATES = {
    "default (no command)": None,
    "every macro": ["${env}", "${interpreter}", "${program}", "${args}", "${args_no_equals}", "${args_no_hyphens}",
                    "${args_no_boolean_flags}", "${args_json}", "${args_json_file}", "${args_dict}",
                    "${args_append_hydra}", "${args_override_hydra}"],
    "nlstudy form": ["nlstudy", "fit", "--config", "experiments/demo.yaml", "--config", "${args_json_file}"],
    "envvars": ["${envvar:NLSTUDY_TEST_SET}", "--x=${envvar:NLSTUDY_TEST_SET}/${envvar:NLSTUDY_TEST_UNSET}",
                "${envvar:NLSTUDY_TEST_UNSET}", 7, "plain"],
    "unknown macro dropped": ["nlstudy", "${no_such_macro}", "${args}"],
}


class Recorder:
    """Stands in for wandb's AgentProcess: keeps the command line and environment."""

    calls: list = []

    def __init__(self, command=None, env=None, **kwargs):
        Recorder.calls.append({"command": command, "env": env})


def wandb_expansion(template, args, program, tmp_path, monkeypatch):
    """What wandb's own agent runs for one run, and the files it writes."""
    monkeypatch.setattr(wandb_agent, "AgentProcess", Recorder)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SWEEP_ID", "swp12345")
    # wandb's agent sets these two in this process's environment too: monkeypatch takes them back after the
    # test (left set, every later wandb run this test process started took the param file's keys into its
    # config: under pytest-xdist, test_report_faults' runs did)
    for name in ("WANDB_RUN_ID", "WANDB_SWEEP_PARAM_PATH"):
        monkeypatch.setenv(name, os.environ.get(name, ""))
    Recorder.calls.clear()
    agent = wandb_agent.Agent(api=None, queue=None, sweep_id="swp12345")
    agent._sweep_command = list(template) if template is not None else []
    agent._command_run({"run_id": "run12345", "program": program, "args": args})
    call = Recorder.calls[-1]
    json_path = tmp_path / "wandb" / "sweep-swp12345" / "config-run12345.json"
    yaml_path = tmp_path / "wandb" / "sweep-swp12345" / "config-run12345.yaml"
    return call, json_path, yaml_path


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_expansion_equals_wandb_agent(name, tmp_path, monkeypatch):
    monkeypatch.setenv("NLSTUDY_TEST_SET", "value/with/slashes")
    monkeypatch.delenv("NLSTUDY_TEST_UNSET", raising=False)
    template = TEMPLATES[name]
    call, json_path, yaml_path = wandb_expansion(template, ARGS, "train.py", tmp_path, monkeypatch)

    ours_json = tmp_path / "ours" / "args.json"
    run = cmd.RunArgs(ARGS, "train.py", str(ours_json))
    ours = cmd.expand(template, run)
    # the same command line, the ${args_json_file} path aside
    assert [str(json_path) if c == str(ours_json) else c for c in ours] == call["command"]
    # the same files: the args JSON (when the macro is used) and the WANDB_SWEEP_PARAM_PATH file
    assert cmd.uses_args_json_file(template) == json_path.exists()
    if json_path.exists():
        assert cmd.args_json_text(run) == json_path.read_text()
        assert json.loads(json_path.read_text())["model.backbone"] == ARGS["model.backbone"]["value"]
    assert cmd.param_file_text(ARGS) == yaml_path.read_text()
    assert call["env"]["WANDB_SWEEP_PARAM_PATH"] == str(yaml_path)
    assert call["env"]["WANDB_RUN_ID"] == "run12345"


def test_every_macro_is_covered():
    """If wandb adds a macro, the list above (and MACROS) must learn it."""
    from wandb.sdk.launch.sweeps import utils

    produced = set(utils.create_sweep_command_args({"args": ARGS}))
    agent_only = {"env", "interpreter", "program", "args_json_file"}  # set in Agent._command_run
    assert set(cmd.MACROS) == produced | agent_only
    assert {cmd.macro_name(m) for m in TEMPLATES["every macro"]} == set(cmd.MACROS)


def test_values_reach_the_run_intact(tmp_path):
    """${args_json_file} keeps None, booleans, ints and nested values; ${args} writes Python reprs."""
    run = cmd.RunArgs(ARGS, None, str(tmp_path / "a.json"))
    assert json.loads(cmd.args_json_text(run)) == {k: v["value"] for k, v in ARGS.items()}
    flags = cmd.expand(["${args}"], run)
    assert "--nothing=None" in flags and "--flag_off=False" in flags
    assert "--model.backbone={'nonlocal_blocks': {'res3': [0, 1]}, 'nl': {'pairwise': 'gaussian', 'scale': False}}" in flags
    assert cmd.expand(["${args_no_boolean_flags}"], run).count("--flag_on") == 1
    assert not any(f.startswith("--flag_off") for f in cmd.expand(["${args_no_boolean_flags}"], run))
    params = yaml.safe_load(cmd.param_file_text(ARGS))
    assert params.pop("wandb_version") == 1 and params == ARGS


def test_envvar_default_is_the_name(monkeypatch):
    monkeypatch.delenv("NLSTUDY_TEST_UNSET", raising=False)
    assert cmd.substitute_envvars(["a${envvar:NLSTUDY_TEST_UNSET}b"]) == ["aNLSTUDY_TEST_UNSETb"]
    assert cmd.substitute_envvars(["${envvar:HOME}"], {"HOME": "/h"}) == ["/h"]
    assert os.environ.get("NLSTUDY_TEST_UNSET") is None
