"""The sweeps package's names of nlstudy.adapters.sweeps, checked against the installed sweeps: each test names
what changed if it fails. And nothing else in nlstudy imports sweeps."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import nlstudy
from nlstudy.adapters import sweeps as adapter

PACKAGE = Path(nlstudy.__file__).parent
NESTED = {"method": "grid", "parameters": {"model": {"parameters": {"lr": {"values": [0.1, 0.2]}}},
                                           "seed": {"values": [0, 1]}}}


def test_nested_parameters_have_the_internal_names_the_agent_looks_up():
    names = sorted(p.name for p in adapter.HyperParameterSet.from_config(dict(NESTED["parameters"])))
    assert any(adapter.NEST in n and n.endswith("lr") for n in names), (
        f"sweeps changed: a nested parameter's internal name is not '<top>{adapter.NEST}...lr': {names}")
    kinds = {p.type for p in adapter.HyperParameterSet.from_config({"a": {"values": [1, 2]}, "b": {"value": 3}})}
    assert kinds == {adapter.HyperParameter.CATEGORICAL, adapter.HyperParameter.CONSTANT}


def test_sweeprun_keeps_history_and_summary_given_by_their_aliases():
    run = adapter.SweepRun(name="r", state="finished", config={}, **{adapter.HISTORY: [{"m": 1.0}],
                                                                     adapter.SUMMARY: {"m": 1.0}})
    assert run.history == [{"m": 1.0}] and run.summary_metrics == {"m": 1.0}, (
        f"sweeps changed: SweepRun's aliases {adapter.HISTORY}, {adapter.SUMMARY}")


def test_the_grid_hashes_values_as_the_lazy_walk_does_and_proposes_each_point_once():
    assert adapter.yaml_hash(0.1) == adapter.yaml_hash(0.1) != adapter.yaml_hash(0.2)
    config = {"method": "grid", "parameters": {"a": {"values": [1, 2]}, "b": {"values": ["x", "y"]}}}
    runs = adapter.next_runs(config, [], validate=False, n=4)
    points = {(r.config["a"]["value"], r.config["b"]["value"]) for r in runs}
    assert points == {(1, "x"), (1, "y"), (2, "x"), (2, "y")}, "sweeps changed: next_runs of a 2x2 grid"
    done = [adapter.SweepRun(name=f"r{i}", state="finished", config=r.config) for i, r in enumerate(runs)]
    assert adapter.next_run(config, done, validate=False) is None, "sweeps changed: an exhausted grid proposes more"
    hyperband = {**config, "metric": {"name": "m", "goal": "maximize"},
                 "early_terminate": {"type": "hyperband", "min_iter": 1}}
    assert adapter.stop_runs(hyperband, done, validate=False) == []  # ended runs are not stopped
    assert list(adapter.schema_violations_from_proposed_config(config)) == []
    assert list(adapter.schema_violations_from_proposed_config({"method": "nope", "parameters": {}}))


def test_no_other_module_imports_sweeps():
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "adapters":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            assert not any(n == "sweeps" or n.startswith("sweeps.") for n in names), (
                f"{path.relative_to(PACKAGE)} imports sweeps: go through nlstudy/adapters/sweeps.py")


def test_the_sweep_layer_still_loads_no_torch():
    code = "import sys, nlstudy.sweep.engine, nlstudy.sweep.agent; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
