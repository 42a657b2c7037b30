"""A tiny real grid sweep of `nlstudy fit` (experiments/demo.yaml shrunk to one short epoch), offline,
to completion, read back with the report's reader: the right runs, the right configurations, the
sweep id on every run, and the report's table complete."""

import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from nlstudy.report.collect import read_offline
from nlstudy.report.sweeps import find_sweep_files, planned
from nlstudy.report.tables import build_table
from nlstudy.sweep.spec import load

ROOT = Path(__file__).parent.parent

TINY = """\
method: grid
metric: {name: val/top1_best, goal: maximize}
command: [nlstudy, fit, --config, experiments/demo.yaml, --config, "${args_json_file}"]
parameters:
  table: {value: "2a"}
  seed_everything: {values: [0, 1]}
  trainer.max_epochs: {value: 1}
  data.synthetic.train_samples: {value: 64}
  data.synthetic.val_samples: {value: 64}
  data.synthetic.test_samples: {value: 64}
  model.backbone:
    values:
      - {nonlocal_blocks: none}
      - {nonlocal_blocks: {res3: [1], res4: [1]}, nl: {pairwise: gaussian}}
"""


@pytest.mark.slow
def test_tiny_real_sweep_offline(tmp_path):
    path, root = tmp_path / "tiny.yaml", tmp_path / "runs"
    path.write_text(TINY)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "nlstudy", "sweep", str(path), "--runs-root", str(root),
                           "--project", "nlstudy-test"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    wall = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    print(f"tiny sweep: 4 runs in {wall:.1f} s\n{proc.stdout}")
    assert "4/4 runs done" in proc.stdout

    sweep_id = load(path).default_id
    runs = read_offline(root).runs
    assert len(runs) == 4
    assert set(runs["state"]) == {"finished"}
    assert set(runs["sweep_id"]) == {sweep_id}  # the sweep id on every run
    assert set(runs["table"]) == {"2a"} and set(runs["project"]) == {"nlstudy-test"}
    # the right configurations: each row with each seed, the base config kept where the row is silent
    got = sorted((r["model.backbone.nonlocal_blocks"] if isinstance(r["model.backbone.nonlocal_blocks"], str)
                  else "map", int(r["seed_everything"])) for _, r in runs.iterrows())
    assert got == [("map", 0), ("map", 1), ("none", 0), ("none", 1)]
    nl = runs[runs["model.backbone.nonlocal_blocks"].map(lambda v: isinstance(v, dict))]
    assert all(v == {"res3": [1], "res4": [1]} for v in nl["model.backbone.nonlocal_blocks"])
    assert set(nl["model.backbone.nl.pairwise"]) == {"gaussian"} and set(nl["derived.nl_count"]) == {2.0}
    assert set(runs["model.backbone.depth"]) == {18.0} and set(runs["model.backbone.width"]) == {16.0}
    assert set(runs["trainer.max_epochs"]) == {1.0} and set(runs["data.synthetic.train_samples"]) == {64.0}
    assert runs["val/top1_best"].notna().all() and runs["test/top1"].notna().all()
    # the sweep's own records agree, and each run wrote its progress rows
    records = list((root / "sweeps" / sweep_id / "runs").glob("*/run.json"))
    assert len(records) == 4
    assert all((r.parent / "progress.jsonl").read_text().strip() for r in records)

    # the report finds the plan and fills every row of the table
    files = find_sweep_files(root)
    assert [f.parent.name for f in files] == [sweep_id]
    table = build_table(runs, "2a", expected=planned(files))
    assert len(table) == 2 and list(table["n"]) == [2, 2] and list(table["n_missing"]) == [0, 0]
    assert bool(table["baseline"].iloc[0])
