"""A tiny real grid sweep of `nlstudy fit` (experiments/demo.yaml shrunk to one short epoch), offline,
to completion across a session on a full disk, read back with the report's reader: the right runs, the right configurations, the
sweep id on every run, and the report's table complete."""

import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from nlstudy.records import find_sweep_files
from nlstudy.report.offline import read_offline
from nlstudy.report.sweeps import planned, read_local, with_stand_ins
from nlstudy.report.tables import build_table
from nlstudy.sweep.spec import load
from nlstudy.sweep.state import SweepState

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
NL_ROW = "      - {nonlocal_blocks: {res3: [1], res4: [1]}, nl: {pairwise: gaussian}}\n"


def full_disk() -> None:
    """preexec_fn: no file may grow past 1 KB (a disk that is full by then; Python gets EFBIG)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))


@pytest.mark.slow
def test_tiny_real_sweep_offline(tmp_path):
    """Two runs, then a session on a full disk (stops with one clear line, loses nothing), then the rest."""
    path, root = tmp_path / "tiny.yaml", tmp_path / "runs"
    path.write_text(TINY)

    def sweep(*args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "nlstudy", "sweep", str(path), "--runs-root", str(root),
                               "--project", "nlstudy-test", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=900, **kwargs)

    start = time.monotonic()
    first = sweep("--count", "2")
    assert first.returncode == 0, first.stdout + first.stderr
    # (no .pyc written there: Python would leave it truncated at 1 KB, breaking later imports)
    full = sweep(preexec_fn=full_disk, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    stopped = [line for line in full.stdout.splitlines() if line.startswith("stopped:")]
    assert full.returncode == 1 and len(stopped) == 1 and "File too large" in stopped[0], full.stdout + full.stderr
    assert "run the same command again" in stopped[0] and "Traceback" not in full.stdout + full.stderr
    # the state and the two finished runs are intact: every record reads, no half-written file is left
    sweep_dir = root / "sweeps" / load(path).default_id
    states = [json.loads(f.read_text())["state"] for f in sweep_dir.glob("runs/*/run.json")]
    assert states.count("finished") == 2 and not list(sweep_dir.rglob("*.tmp"))
    assert sorted(read_offline(root).runs["state"]) == ["finished", "finished"]
    proc = sweep()
    wall = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    print(f"tiny sweep: 4 runs in {wall:.1f} s\n{first.stdout}{full.stdout}{proc.stdout}")
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
    records = [f for f in (root / "sweeps" / sweep_id / "runs").glob("*/run.json")
               if json.loads(f.read_text())["state"] == "finished"]
    assert len(records) == 4
    assert all((r.parent / "progress.jsonl").read_text().strip() for r in records)

    # the report finds the plan and fills every row of the table
    files = find_sweep_files(root)
    assert [f.parent.name for f in files] == [sweep_id]
    table = build_table(runs, "2a", expected=planned(files))
    assert len(table) == 2 and list(table["n"]) == [2, 2] and list(table["n_missing"]) == [0, 0]
    assert bool(table["baseline"].iloc[0])

    # another table that plans the same baseline runs none again, even spelled otherwise (the depth demo.yaml
    # sets anyway: the same resolved configuration): the finished runs stand in for them
    other = tmp_path / "baseline.yaml"
    other.write_text(TINY.replace('table: {value: "2a"}', 'table: {value: "2c"}').replace(NL_ROW, "")
                     .replace("{nonlocal_blocks: none}", "{nonlocal_blocks: none, depth: 18}"))
    again = subprocess.run([sys.executable, "-m", "nlstudy", "sweep", str(other), "--runs-root", str(root),
                            "--project", "nlstudy-test"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.count("finished already as run") == 2, again.stdout + again.stderr
    reused = SweepState(root, load(other).default_id).records()
    baseline = runs[runs["model.backbone.nonlocal_blocks"] == "none"]
    assert sorted(r["wandb_id"] for r in reused) == sorted(baseline["run_id"])
    assert all(r["state"] == "finished" and r["reused_from"] for r in reused)
    # no new training run: each stand-in is a small wandb run of its own (nlstudy.sweep.standin) that the readers
    # turn into the run it names, filed under 2c, so the runs' wandb folder alone gives the 2c table too
    stand_in_dirs = sorted(p.parent.parent for p in (root / "wandb").glob("*run-*/files/nlstudy_stand_in.json"))
    assert sorted(p.name.rsplit("-", 1)[1] for p in stand_in_dirs) == sorted(r["id"] for r in reused)
    offline = read_offline(root).runs
    assert len(offline) == 6 and sorted(offline["run_id"]) == sorted([*runs["run_id"], *baseline["run_id"]])
    alone = tmp_path / "copied" / "wandb"
    shutil.copytree(root / "wandb", alone)
    from_wandb_folder = read_local(alone)
    assert sorted(from_wandb_folder.runs[from_wandb_folder.runs["table"] == "2c"]["run_id"]) == sorted(baseline["run_id"])
    both = with_stand_ins(read_offline(root), root).runs
    assert len(both) == 6  # the sweeps' records and the stand-ins' runs say the same: counted once
    # what the report and the tables notebook read for the second sweep alone: its two stand-in rows
    only_c = read_local(root, sweep=load(other).default_id)
    assert sorted(only_c.runs["run_id"]) == sorted(baseline["run_id"]) and set(only_c.runs["table"]) == {"2c"}
    assert set(only_c.history["run_id"]) == set(baseline["run_id"])
    table_c = build_table(both, "2c", expected=planned(find_sweep_files(root)))
    assert list(table_c["n"]) == [2] and list(table_c["n_missing"]) == [0]
    for metric in ("mean", "std", "val_top1_best"):
        assert table_c[metric].iloc[0] == table[metric].iloc[0]  # the same runs, the same numbers
    # --no-reuse runs them
    assert "--no-reuse" in subprocess.run([sys.executable, "-m", "nlstudy", "sweep", "--help"], capture_output=True,
                                          text=True).stdout

    # benchmarks/demo.py's figures from these records: 4 runs trained, 2 stood in for; a run's time from start
    # to exit holds its training (fit and test) and the rest (start-up, wandb, teardown)
    spec = importlib.util.spec_from_file_location("bench_demo", ROOT / "benchmarks" / "demo.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    trained, stood_in, times = bench.per_run(root)
    assert len(trained) == 4 and len(stood_in) == 2 and len(times) == 4
    assert all(duration > wall > 0 for duration, wall in times)
