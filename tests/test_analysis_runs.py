"""Reloadable runs and the notebooks: real tiny runs (tests/fixtures/analysis/make_runs.py, the study's
tables and the demo's Table 2a shrunk to seconds) reloaded with `load_run`, and every notebook executed end to end on
them with nbclient, as `make analysis` executes them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

import nlstudy
from nlstudy import keys
from nlstudy.analysis import find_run, load_run, study
from nlstudy.analysis.notebooks import declared_parameters, execute, inject, main as notebooks_main
from nlstudy.report import offline

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ENV = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "NLSTUDY_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("analysis-runs")
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "fixtures" / "analysis" / "make_runs.py"), str(root)],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


@pytest.fixture(scope="module")
def runs(runs_root):
    return offline.read_offline(runs_root).runs


# --- the notebooks as stored ---


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_clean(path):
    text = path.read_text()
    nb = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") and not cell.get("execution_count") for cell in nb.cells if cell.cell_type == "code")
    params = declared_parameters(nb)
    assert "figures_dir" in params and params["figures_dir"] is None
    assert "runs_root" in params or "runs_roots" in params
    assert not re.search(r"[\"'](/|[A-Za-z]:\\\\)", text), "an absolute path in the stored notebook"


def test_the_five_notebooks_exist():
    assert [p.stem[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05"]


def test_injecting_an_unknown_parameter_names_the_declared_ones(tmp_path):
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    with pytest.raises(ValueError, match=r"unknown notebook parameter\(s\) \['runs_rot'\]; this notebook declares"):
        inject(nb, {"runs_rot": "x"}, tmp_path)
    bare = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    with pytest.raises(ValueError, match="no cell tagged 'parameters'"):
        inject(bare, {}, tmp_path)


def test_injected_paths_are_relative_to_the_notebook(tmp_path):
    nb = nbformat.read(NOTEBOOKS[2], as_version=4)  # 03 declares runs_root
    inject(nb, {"runs_root": tmp_path / "runs", "figures_dir": tmp_path / "figs"}, tmp_path / "notebooks")
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "runs_root = '../runs'" in injected.source and "figures_dir = '../figs'" in injected.source


def test_the_runner_refuses_a_missing_runs_root_in_one_line(tmp_path, capsys):
    assert notebooks_main(["--runs", str(tmp_path / "nothing"), "--demo-runs", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nothing does not exist" in err


# --- runs, weights, nlstudy.train ---


@pytest.mark.slow
def test_final_weights_reproduce_the_runs_test_metrics(runs_root, runs):
    done = runs[(runs["table"] == "reach") & (runs["state"] == "finished")]
    row = done.iloc[0]
    model, config = load_run(row["run_id"], runs_root=runs_root)
    assert not model.training and config[keys.TABLE] == "reach"
    assert config[keys.DISTANCE] == row[keys.DISTANCE] and config["model.backbone.num_classes"] == 2
    clips, labels = study.clips_for(config, split="test", n=10_000)
    with torch.no_grad():
        top1 = 100 * (model(clips).argmax(1) == labels).float().mean().item()
    assert top1 == pytest.approx(row[keys.TEST_TOP1])
    best, best_config = load_run(row["path"], "best")
    assert best_config["weights.step"] <= config["weights.step"] == 8  # trainer.max_steps
    assert best_config[f"weights.{keys.VAL_TOP1}"] == pytest.approx(row[keys.VAL_TOP1_BEST])


@pytest.mark.slow
def test_a_run_without_weights_is_a_one_line_error(runs_root, tmp_path):
    run_dir = find_run(sorted((runs_root / "wandb").glob("offline-run-*"))[0])
    copy = tmp_path / run_dir.name
    (copy / "files").mkdir(parents=True)
    (copy / "files" / "nlstudy_config.yaml").write_text((run_dir / "files" / "nlstudy_config.yaml").read_text())
    with pytest.raises(FileNotFoundError, match=r"has no saved weights \(files/weights/final.pt is missing\)") as e:
        load_run(copy)
    assert "\n" not in str(e.value)
    with pytest.raises(FileNotFoundError, match="no run 'nosuchid'"):
        load_run("nosuchid", runs_root=runs_root)
    with pytest.raises(ValueError, match="unknown weights 'last'; valid choices: 'final', 'best'"):
        load_run(run_dir, "last")


@pytest.mark.slow
def test_train_in_process_returns_the_run_and_refuses_bad_keys_before_any_run(tmp_path):
    script = f"""
import json, nlstudy
r = nlstudy.train({str(ROOT / 'experiments' / 'demo.yaml')!r}, {{"trainer.max_epochs": 1,
    "data.synthetic.train_samples": 32, "data.synthetic.val_samples": 16, "data.synthetic.test_samples": 16,
    "model.backbone.width": 4, "save_weights": False}}, runs_dir={str(tmp_path / 'runs')!r})
print(json.dumps({{"dir": str(r.run_dir), "id": r.run_id, "status": r.status, "summary": r.summary}}))
try:
    nlstudy.train({str(ROOT / 'experiments' / 'demo.yaml')!r}, {{"model.backbone.nonlocal_blocks": "7-block"}},
                  runs_dir={str(tmp_path / 'bad')!r})
except ValueError as e:
    print(json.dumps({{"error": str(e)}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result, error = (json.loads(line) for line in proc.stdout.strip().splitlines()[-2:])
    assert result["status"] == "finished" and Path(result["dir"]).name.endswith(result["id"])
    assert {keys.VAL_TOP1_BEST, keys.TEST_TOP1, keys.WALL_S} <= set(result["summary"])
    assert not (Path(result["dir"]) / "files" / "weights").exists()  # save_weights: false
    assert "model.backbone.nonlocal_blocks preset '7-block'; valid choices" in error["error"]
    assert not (tmp_path / "bad").exists()
    assert hasattr(nlstudy, "train") and "torch" not in subprocess.run(
        [sys.executable, "-c", "import sys, nlstudy; print(' '.join(sys.modules))"], capture_output=True, text=True,
        env=ENV).stdout.split()


@pytest.mark.slow  # the runs fixture trains
def test_a_reused_run_counts_in_the_table_that_planned_it(runs_root):
    """The fixture, as `make analysis`, stands data_steps' 64-clip runs in with reach's distance-4 runs of seed 0
    (the same resolved configuration): the data_steps frame and table still hold their 64-clip rows, from those
    runs, filed under data_steps."""
    from nlstudy.report.tables import build_table

    frame = study.runs_frame(runs_root, "data_steps")
    assert len(frame) == 8 and set(frame[keys.TABLE]) == {"data_steps"}
    reused = frame[frame["data.synthetic.train_samples"] == 64]
    assert len(reused) == 2 and set(reused["run_id"]) <= set(study.runs_frame(runs_root, "reach")["run_id"])
    collection = study.table_runs(runs_root, "data_steps")
    assert len(collection.runs) == 8 and set(collection.runs[keys.TABLE]) == {"data_steps"}
    assert set(collection.history["run_id"]) == set(frame["run_id"])
    table = build_table(collection.runs, "data_steps")
    assert len(table) == 8 and list(table["n"]) == [1] * 8


# --- every notebook end to end ---


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_end_to_end(path, runs_root, tmp_path):
    declared = declared_parameters(nbformat.read(path, as_version=4))
    values = {"runs_roots": [runs_root]} if "runs_roots" in declared else {"runs_root": runs_root}
    values["figures_dir"] = tmp_path / "figures"
    html = tmp_path / f"{path.stem}.html"
    nb = execute(path, values, html=html)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    conclusion = "".join(o.get("data", {}).get("text/markdown", "") for o in nb.cells[-1].outputs)
    assert conclusion.strip(), "the last cell prints the computed conclusion"
    figures = sorted(p.name for p in (tmp_path / "figures").glob("*.png"))
    assert figures, "the notebook saves its figures"
    text = html.read_text()
    assert f"'{runs_root}" not in text and f"'{tmp_path}" not in text  # paths were handed in relative
    # every figure is shown as an image, once: none as its text alone ("<Figure size 700x380 with 1 Axes>")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    as_text = [o for o in outputs if "<Figure" in o.get("data", {}).get("text/plain", "") + o.get("text", "")]
    assert not as_text and len(images) == len(figures), (len(as_text), len(images), figures)
    assert text.count("<img") == len(images) and "&lt;Figure size" not in text


# --- every notebook on one run of the user's own ---


@pytest.fixture(scope="module")
def own_run(tmp_path_factory) -> Path:
    """One run as README's "One experiment" makes it (`nlstudy fit --config experiments/demo.yaml
    --model.backbone.nonlocal_blocks=1-block`, shrunk to seconds): no table, one seed, its own runs root."""
    root = tmp_path_factory.mktemp("own-runs")
    script = (f"import nlstudy; r = nlstudy.train({str(ROOT / 'experiments' / 'demo.yaml')!r}, {{'trainer.max_epochs': 2, "
              "'data.synthetic.train_samples': 64, 'data.synthetic.val_samples': 32, 'data.synthetic.test_samples': 32, "
              f"'model.backbone.width': 4, 'model.backbone.nonlocal_blocks': '1-block'}}, runs_dir={str(root)!r}); "
              "assert r.status == 'finished'")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_one_run_of_the_users_own(path, own_run, tmp_path):
    """Only the runs root changes (and the figures folder): each notebook runs to its end, says what that one run
    shows and what it would need for more (which runs, and the sweep that makes them), and shows its figures."""
    declared = declared_parameters(nbformat.read(path, as_version=4))
    values = {"runs_roots": [own_run]} if "runs_roots" in declared else {"runs_root": own_run}
    values["figures_dir"] = tmp_path / "figures"
    nb = execute(path, values)
    conclusion = "".join(o.get("data", {}).get("text/markdown", "") for o in nb.cells[-1].outputs)
    said, _, needs = conclusion.partition("**For more, this notebook needs:**")
    assert said.strip() and needs.strip(), conclusion
    assert "`nlstudy sweep sweeps/demo/" in needs, needs
    if path.stem != "01-ablation-tables":
        assert "1-block" in said or "embedded_gaussian" in said, said  # it speaks of that run
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == len(list((tmp_path / "figures").glob("*.png"))) > 0


@pytest.mark.slow
def test_report_on_runs_without_a_table_says_why_and_writes_a_generic_table(own_run, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "nlstudy", "report", "--runs", str(own_run), "--out", str(tmp_path),
                           "--no-cache"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == ("nlstudy report: 1 of 1 run(s) carry no `table` key (the sweep files set it; "
                                   "`nlstudy fit --table=NAME` names one): they make the generic table 'untabled'")
    assert (tmp_path / "untabled.md").is_file() and "NL C2D 1-block" in (tmp_path / "untabled.md").read_text()
