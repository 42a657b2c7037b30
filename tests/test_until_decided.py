"""`nlstudy sweep FILE --until-decided`: seeds added to the undecided rows, in rounds, as ordinary runs of the
same table, then the report; on stand-in runs that log real offline wandb runs (tests/fixtures/sweep/
toy_wandb_run.py), read back by the report itself."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from nlstudy import keys, until_decided
from nlstudy.report import stats
from nlstudy.sweep.spec import load

TOY = Path(__file__).parent / "fixtures" / "sweep" / "toy_wandb_run.py"
ROOT = Path(__file__).resolve().parents[1]

STUDY = """\
name: toy study
method: grid
metric: {name: test/top1, goal: maximize}
parameters:
  table: {value: toy}
  seed_everything: {values: [0, 1, 2]}
  model.backbone:
    values:
      - {nonlocal_blocks: none}
      - {nonlocal_blocks: 1-block}
      - {nonlocal_blocks: res3}
"""


def study_file(tmp_path: Path, body: str = STUDY) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(f"command: [python, {TOY}, '${{args_json_file}}']\n" + textwrap.dedent(body))
    return path


def test_the_first_look_is_the_files_seeds_and_the_looks_travel_with_every_run(tmp_path):
    sweep = load(study_file(tmp_path))
    assert until_decided.seed_values(sweep) == [0, 1, 2]
    study = until_decided.Study([sweep], tmp_path / "runs", max_seeds=10)
    assert study.looks == {"toy": (3, 6, 10)}
    (first,) = study.first_round()
    assert first.config["parameters"][keys.REPORT_LOOKS] == {"value": [3, 6, 10]}
    assert first.config["parameters"]["model.backbone"] == sweep.config["parameters"]["model.backbone"]
    assert first.default_id != sweep.default_id  # a sweep of its own: the plain file's runs are reused, not its id


@pytest.mark.parametrize("body, message", [
    (STUDY.replace("method: grid", "method: random"), "adds seeds to a grid sweep"),
    (STUDY.replace("seed_everything: {values: [0, 1, 2]}", "seed_everything: {value: 0.5}"), "integer values"),
    (STUDY.replace("  table: {value: toy}\n", ""), "needs parameters.table"),
])
def test_a_file_it_cannot_add_seeds_to_is_refused_in_one_line(tmp_path, body, message, capsys):
    path = study_file(tmp_path, body)
    assert until_decided.main([str(path), "--until-decided", "--runs-root", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs" / "sweeps").exists()  # nothing ran


def test_new_seeds_skip_every_seed_given_before():
    assert until_decided.new_seeds({0, 1, 2}, 3) == [3, 4, 5]
    assert until_decided.new_seeds({0, 2, 3}, 2) == [1, 4]  # a seed that failed is not given again


@pytest.mark.slow  # 15 stand-in runs, each a real offline wandb run
def test_seeds_are_added_until_each_row_is_decided(tmp_path):
    path, root, out = study_file(tmp_path), tmp_path / "runs", tmp_path / "report"
    done = subprocess.run([sys.executable, "-m", "nlstudy", "sweep", str(path), "--until-decided", "--runs-root",
                           str(root), "--out", str(out), "--jobs", "2", "--project", "toy"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "round 1: more seeds for the undecided rows" in done.stdout
    table = pd.read_csv(out / "toy.csv").set_index("label")
    lines = pd.read_csv(out / "toy_runs.csv")
    # the clear gain is decided at the first look; the row as good as the baseline needs the second look (6 seeds)
    # to show it equivalent within the margin, and its baseline gets the seeds with it
    one, same = table.loc["NL C2D 1-block"], table.loc["NL C2D res3"]
    assert (one["verdict"], one["n"]) == ("better", 3)
    assert (same["verdict"], same["n"]) == ("equivalent", 6)
    assert table.loc["C2D baseline", "n"] == 6
    assert same["alpha_share"] == pytest.approx(stats.alpha_share(6, 6, (3, 6, 10)))
    assert one["alpha_share"] == pytest.approx(stats.alpha_share(6, 3, (3, 6, 10)))  # the baseline went on
    assert "res3 (all): 3 -> 6 seeds" in done.stdout or "NL C2D res3: 3 -> 6 seeds" in done.stdout
    # every added seed is an ordinary run of the same table, counted once, with the looks in its config
    assert lines["counted"].all() and not lines.duplicated(["label", "seed"]).any()
    assert sorted(lines[lines["label"] == "NL C2D res3"]["seed"]) == list(range(int(same["n"])))
    assert set(table["alpha_share"].dropna()) <= set(stats.look_shares((3, 6, 10)).ravel())
    assert "Seeds were added until decided, with looks planned at n = 3, 6, 10" in (out / "toy.md").read_text()
    # run again: nothing new trains, the same report
    before = (out / "toy.csv").read_text()
    again = subprocess.run([sys.executable, "-m", "nlstudy", "sweep", str(path), "--until-decided", "--runs-root",
                            str(root), "--out", str(out), "--project", "toy"],
                           cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and "round 1" not in again.stdout, again.stdout[-2000:]
    assert (out / "toy.csv").read_text() == before
    runs = [json.loads(p.read_text()) for p in root.glob("sweeps/*/runs/*/run.json")]
    trained = [r for r in runs if not r.get("reused_from")]
    assert len(trained) == len({(json.dumps(r["config"].get("model.backbone")), r["config"][keys.SEED]["value"])
                                for r in trained})  # no configuration and seed trained twice
