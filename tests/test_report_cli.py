"""`nlstudy report` on bad input (one line on stderr, exit code 2, before any work) and the no-torch rule."""

import os
import subprocess
import sys
import textwrap

import pytest

from nlstudy.report import cli


def run_main(capsys, *argv):
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_missing_directory(capsys, tmp_path):
    code, out, err = run_main(capsys, "--runs", str(tmp_path / "nope"))
    assert code == 2 and out == ""
    assert err == f"nlstudy report: --runs: no such directory: {tmp_path / 'nope'}\n"


def test_directory_without_runs(capsys, tmp_path):
    (tmp_path / "wandb" / "offline-run-x").mkdir(parents=True)
    code, _, err = run_main(capsys, "--runs", str(tmp_path), "--out", str(tmp_path / "out"))
    assert code == 2
    assert err == f"nlstudy report: --runs: no wandb runs under {tmp_path} (looked for run-*.wandb)\n"
    assert not (tmp_path / "out").exists()


def test_unknown_table_is_reported_before_reading_anything(capsys, tmp_path):
    # the runs directory does not even exist: the table ids are checked first
    code, _, err = run_main(capsys, "--runs", str(tmp_path / "nope"), "--tables", "2a,2x")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("nlstudy report: --tables: unknown table '2x'; valid choices: '2a', '2b', '2c'")
    assert "'locality'" in err


def test_bad_project_path(capsys):
    code, _, err = run_main(capsys, "--wandb", "just-a-project")
    assert code == 2 and err == "nlstudy report: --wandb: expected ENTITY/PROJECT, got 'just-a-project'\n"


def test_source_is_required(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--out", "x"])
    assert exc.value.code == 2
    assert "one of the arguments --runs --wandb is required" in capsys.readouterr().err


@pytest.mark.slow  # starts `nlstudy report` in a subprocess
def test_no_wandb_credentials(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(tmp_path), WANDB_CONFIG_DIR=str(tmp_path), WANDB_MODE="offline")
    proc = subprocess.run(
        [sys.executable, "-c", "from nlstudy.report.cli import main; raise SystemExit(main(['--wandb', 'e/p']))"],
        env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("nlstudy report: --wandb: cannot reach the W&B API")
    assert proc.stderr.count("\n") == 1


@pytest.mark.slow  # starts a Python subprocess
def test_the_report_layer_imports_no_torch(tmp_path):
    """Everything the report does -- readers, tables, renderers, figures, the CLI, wandb's API
    classes -- runs without torch being imported, not even indirectly."""
    code = textwrap.dedent(f"""
        import sys
        import pandas as pd
        import wandb.apis.public
        from nlstudy import keys
        from nlstudy.report import cli, offline, paper, plots, render, specs, stats, sweeps, tables, text, wandb_api
        runs = pd.DataFrame([{{"run_id": "a", "state": "finished", "table": "2c", "created_at": None,
                              "sweep_id": None, keys.NONLOCAL_BLOCKS: "none", keys.SEED: 0,
                              keys.FLOPS: 1e6, keys.VAL_TOP1_BEST: 50.0, keys.VAL_TOP5_BEST: 80.0}}])
        table = tables.build_table(runs, "2c")
        render.to_markdown(table), render.to_latex(table), render.to_csv(table)
        plots.save(plots.plot_bars(table), {str(tmp_path / "bars")!r})
        plots.save(plots.plot_accuracy_vs_flops(table), {str(tmp_path / "flops")!r})
        loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith(("torch.", "torchvision", "lightning")))
        assert not loaded, loaded
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
    assert (tmp_path / "bars.png").exists()
