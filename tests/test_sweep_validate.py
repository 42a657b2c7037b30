"""Bad input is rejected before anything runs: one line on stderr naming the file (and the key, with
the valid choices where there are some), exit code 2, no sweep state and no run."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nlstudy.sweep import cli

NLSTUDY_CMD = "command: [nlstudy, fit, --config, experiments/demo.yaml, --config, '${args_json_file}']\n"
GOOD = """\
method: grid
metric: {name: val/top1_best, goal: maximize}
parameters:
  table: {value: "2a"}
  seed_everything: {values: [0]}
"""


def params(*lines: str) -> str:
    """Lines added under `parameters:` (two spaces in)."""
    return "".join(f"  {line}\n" for line in lines)


def reject(tmp_path, capsys, text: str | None, *extra: str) -> str:
    """Run `nlstudy sweep` on a file with this text; assert the rejection shape; return the line."""
    path = tmp_path / "bad.yaml"
    if text is not None:
        path.write_text(textwrap.dedent(text))
    root = tmp_path / "runs"
    code = cli.main([str(path), "--runs-root", str(root), *extra])
    captured = capsys.readouterr()
    assert code == 2, captured
    assert captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith(f"nlstudy sweep: {path}: ") or captured.err.startswith("nlstudy sweep: error:")
    assert not root.exists()  # nothing was created, nothing ran
    return captured.err.strip()


def test_missing_file(tmp_path, capsys):
    assert "cannot read the sweep file (No such file or directory)" in reject(tmp_path, capsys, None)


def test_broken_yaml(tmp_path, capsys):
    err = reject(tmp_path, capsys, "method: grid\nparameters: {a: {values: [1, 2}\n")
    assert "not valid YAML (line 2" in err


def test_not_a_mapping(tmp_path, capsys):
    assert "a sweep file is a YAML mapping" in reject(tmp_path, capsys, "- method\n- grid\n")


def test_schema_violation_names_the_valid_methods(tmp_path, capsys):
    err = reject(tmp_path, capsys, GOOD.replace("method: grid", "method: gird"))
    assert err.endswith("unknown method 'gird'; valid choices: 'grid', 'random', 'bayes'; did you mean 'grid'?")


def test_method_this_agent_does_not_run(tmp_path, capsys):
    err = reject(tmp_path, capsys, GOOD.replace("method: grid", "method: custom"))
    assert err.endswith("unknown method 'custom'; valid choices: 'grid', 'random', 'bayes'")


def test_bad_parameter_spec(tmp_path, capsys):
    err = reject(tmp_path, capsys, GOOD + "  lr: {valuez: [1]}\n")
    assert "not a valid W&B sweep config: parameters.lr: " in err and "(and 1 more)" in err


def test_run_cap_must_be_positive(tmp_path, capsys):
    assert "run_cap must be a positive integer, got 0" in reject(tmp_path, capsys, GOOD + "run_cap: 0\n")


def test_unknown_macro(tmp_path, capsys):
    err = reject(tmp_path, capsys, GOOD + "command: [nlstudy, fit, '${argz}']\n")
    assert "command: unknown command macro 'argz'; valid choices: 'env', 'interpreter', 'program', 'args'," in err


def test_macro_inside_an_element(tmp_path, capsys):
    err = reject(tmp_path, capsys, GOOD + "command: [nlstudy, fit, '--config=${args_json_file}']\n")
    assert "replaces a macro only as a whole element" in err


def test_program_macro_without_program(tmp_path, capsys):
    assert "command uses ${program} but the sweep sets no program" in reject(tmp_path, capsys, GOOD)


def test_grid_over_a_continuous_range(tmp_path, capsys):
    err = reject(tmp_path, capsys, GOOD + "  lr: {min: 0.001, max: 0.1}\n" + NLSTUDY_CMD)
    assert "the sweeps engine rejects the parameters: Parameter lr is a disallowed type with grid search" in err


def test_sweep_id_with_several_files(tmp_path, capsys):
    path = tmp_path / "ok.yaml"
    path.write_text(GOOD + NLSTUDY_CMD)
    code = cli.main([str(path), str(path), "--sweep-id", "x", "--runs-root", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and err == "nlstudy sweep: --sweep-id: give one sweep file with a sweep id\n"


@pytest.mark.parametrize("argv", [["--jobs", "0"], ["--count", "x"], ["--no-such-option"]])
def test_bad_options(tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as exc:
        cli.main([str(tmp_path / "x.yaml"), *argv])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and err.startswith("nlstudy sweep: error: ")


@pytest.mark.slow  # starts the training CLI in a subprocess (torch + LightningCLI): seconds
def test_unknown_key_names_the_key_and_the_valid_ones(tmp_path, capsys):
    err = reject(tmp_path, capsys, GOOD + params(
        "model.backbone:",
        "  values:",
        "    - {nonlocal_blocks: none}",
        "    - {nonlocal_blocks: 1-block, nl: {pairwse: gaussian}}") + NLSTUDY_CMD)
    assert ("parameter model.backbone (model.backbone.nl.pairwse=gaussian): model.backbone.nl.pairwse: unknown key "
            "(did you mean model.backbone.nl.pairwise?); ") in err
    valid = err.split("valid keys under model.backbone.nl: ")[1].split(", ")
    assert {"pairwise", "mode", "subsample", "subsample_order", "inter_ratio", "scale"} <= set(valid)
    assert valid == sorted(valid) and "pairwse" not in valid


@pytest.mark.slow  # starts the training CLI in a subprocess (torch + LightningCLI): seconds
def test_value_the_cli_rejects(tmp_path, capsys):
    err = reject(tmp_path, capsys, GOOD + params(
        "model.backbone.depth: {values: [18, 7]}",
        "model.backbone.nonlocal_blocks: {values: [none, 1-block]}") + NLSTUDY_CMD)
    # the first rejected run is named, with the valid choices; the other one is counted
    assert err.endswith('parameter model.backbone.depth: Parser key "model.backbone.depth": Expected a '
                        "typing.Literal[18, 34, 50, 101]. Got value: 7 (1 more run(s) rejected)")


@pytest.mark.slow  # starts the training CLI in a subprocess (torch + LightningCLI): seconds
def test_value_from_a_registry_lists_the_valid_choices(tmp_path, capsys):
    err = reject(tmp_path, capsys, GOOD + "  model.backbone.nonlocal_blocks: {values: [none, 7-block]}\n" + NLSTUDY_CMD)
    assert err.endswith("parameter model.backbone.nonlocal_blocks: unknown model.backbone.nonlocal_blocks preset "
                        "'7-block'; valid choices: 'none', '1-block', '5-block', '10-block', 'res2', 'res3', 'res4', 'res5'")


@pytest.mark.slow  # starts the training CLI in a subprocess (torch + LightningCLI): seconds
def test_random_sweep_checks_each_value(tmp_path, capsys):
    """random / bayes: each value of each categorical with the others at their first values."""
    err = reject(tmp_path, capsys, GOOD.replace("method: grid", "method: random") + params(
        "model.optim.lr: {distribution: log_uniform_values, min: 0.0001, max: 0.1}",
        "data.synthetic.task: {values: [far, near, middle]}") + NLSTUDY_CMD)
    assert "parameter data.synthetic.task" in err and "middle" in err


@pytest.mark.slow  # starts the training CLI in a subprocess (torch + LightningCLI): seconds
def test_sweep_layer_imports_no_torch():
    code = textwrap.dedent("""
        import sys, pkgutil, importlib
        import nlstudy.sweep
        for m in pkgutil.iter_modules(nlstudy.sweep.__path__):
            importlib.import_module("nlstudy.sweep." + m.name)
        from nlstudy.cli import main
        assert main(["sweep", "--check", "sweeps/demo/2a_pairwise.yaml"]) == 0
        assert "torch" not in sys.modules, "nlstudy.sweep imported torch"
        assert "pytorch_lightning" not in sys.modules
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).parent.parent)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow  # starts the training CLI in a subprocess (torch + LightningCLI): seconds
def test_a_gpu_sweep_on_a_machine_without_one_is_refused_at_check_and_at_start(tmp_path, capsys, monkeypatch):
    """The files are fine, the machine is not: --check and a start both refuse in one line before any run (the
    check's processes see no GPU: CUDA_VISIBLE_DEVICES is empty); --check-only-config checks the files alone."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    gpu = GOOD.replace("seed_everything: {values: [0]}", "seed_everything: {values: [0, 1]}") + params(
        "trainer.accelerator: {value: gpu}") + NLSTUDY_CMD
    for extra in (["--check"], []):
        err = reject(tmp_path, capsys, gpu, *extra)
        assert err.endswith("bad.yaml: this machine cannot run any of its 2 run(s): trainer.accelerator: the config "
                            "asks for 'gpu', but this machine has no GPU (torch finds no CUDA or MPS device; it has "
                            f"{cli.cores()} CPU cores); to run on the CPU: --trainer.accelerator=cpu; on a login node, "
                            "--check-only-config checks the file without this machine"), err
    path = tmp_path / "bad.yaml"
    assert cli.main([str(path), "--runs-root", str(tmp_path / "runs"), "--check", "--check-only-config"]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: ok, grid sweep, 2 run(s)")
