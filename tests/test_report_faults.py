"""Reports over a runs root that has everything wrong at once (issue 10, case 7): finished, failed,
crashed (SIGKILLed) and still-running runs; one run copied whole into a second place and another
copied while it was still being written (the same run id twice); a log cut off mid-record; an
empty run directory; a run directory of garbage; an empty log. The report must not crash, every
number must be the runs' own (their logged summaries, here the specs they were made from), and
the failed, crashed, running and missing rows must say so. The reader's cache must never serve
what a log held before it changed (a cut log that grows back is read again).

The runs are real offline wandb runs (tests/fixtures/report/offline_run.py), made once per module.
"""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from nlstudy import keys
from nlstudy.report import cli, offline, wandb_log
from nlstudy.report.logcache import LogCache, Stamp
from nlstudy.sweep import plan

pytestmark = pytest.mark.slow  # makes real wandb runs in subprocesses

SWEEP = "swpF"
BASE = {
    keys.TABLE: "2a", keys.DATASET: "synthetic", keys.FRAMES: 8, keys.SIZE: 32, keys.TASK: "far",
    keys.ARCH: "c2d", keys.DEPTH: 18, keys.WIDTH: 8, keys.BLOCK: "nonlocal", keys.PAIRWISE: "embedded_gaussian",
    keys.NONLOCAL_BLOCKS: "none", keys.PARAMS: 11200, keys.FLOPS: 5_100_000,
}
PAIRWISE = ("gaussian", "embedded_gaussian", "dot_product", "concatenation")
OLD = time.time() - 3600  # runs that ended an hour ago (their logs are older than the cache's racy window)


def spec(run_id, pairwise, seed, top1, end="finish"):
    """A run of table 2a: the baseline (pairwise None) or a 1-block run; two epochs, then its summary."""
    config = dict(BASE, **{keys.SEED: seed})
    if pairwise is not None:
        config.update({keys.NONLOCAL_BLOCKS: "1-block", keys.PAIRWISE: pairwise, keys.PARAMS: 11800,
                       keys.FLOPS: 5_600_000})
    epochs = [{keys.VAL_TOP1: top1 - 10.0, keys.VAL_TOP5: top1 + 20.0},
              {keys.VAL_TOP1: top1, keys.VAL_TOP5: top1 + 30.0}]
    summary = {keys.VAL_TOP1_BEST: top1, keys.VAL_TOP5_BEST: top1 + 30.0, keys.TEST_TOP1: top1 - 1.0,
               keys.TEST_TOP5: top1 + 29.5}
    return {"id": run_id, "name": run_id, "sweep": SWEEP, "end": end, "config": config, "epochs": epochs,
            "summary": summary}


WRITTEN = [  # by one process, one after the other
    spec("base0", None, 0, 45.25), spec("base1", None, 1, 44.0),
    spec("dot0", "dot_product", 0, 55.5), spec("dot1", "dot_product", 1, 52.75),
    spec("gau0", "gaussian", 0, 47.0, end="fail"), spec("emb1", "embedded_gaussian", 1, 51.0),
]
KILLED = spec("gau1", "gaussian", 1, 48.0, end="kill")
RUNNING = spec("emb0", "embedded_gaussian", 0, 50.0, end="hang")
FINISHED = {s["id"]: s for s in WRITTEN if s["end"] == "finish" and s["id"] != "emb1"}  # emb1's log gets cut
STATES = {"base0": "finished", "base1": "finished", "dot0": "finished", "dot1": "finished", "gau0": "failed",
          "gau1": "crashed", "emb0": "running", "emb1": "crashed", "junk0": "crashed", "zero0": "crashed"}


def run_dir(root, run_id):
    [found] = (root / "wandb").glob(f"offline-run-*-{run_id}")
    return found


def log_of(directory):
    [found] = directory.glob("run-*.wandb")
    return found


def cut(log, fraction):
    """Cut `log` mid-record at `fraction` of its length (as a copy taken while wandb-core wrote it); the
    cut-off bytes are returned."""
    data = log.read_bytes()
    at = int(len(data) * fraction) | 1  # an odd offset: records are not byte-aligned there by any chance
    log.write_bytes(data[:at])
    return data[at:]


@pytest.fixture(scope="module")
def faulty_root(tmp_path_factory, launch_run):
    """The runs root; yields (root, the bytes cut off emb1's log). emb0 runs until the module ends."""
    root = tmp_path_factory.mktemp("faulty")
    writer = launch_run(WRITTEN, root)
    killed = launch_run(KILLED, root)
    running = launch_run(RUNNING, root, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.wait(timeout=180) == 0
        assert killed.wait(timeout=180) == -signal.SIGKILL
        assert running.stdout.readline().strip() == "ready"

        # the same run twice: dot0 copied whole; base1 copied while it was still being written
        shutil.copytree(run_dir(root, "dot0"), root / "backup" / "wandb" / run_dir(root, "dot0").name)
        partial = root / "zz-partial" / "wandb" / run_dir(root, "base1").name  # sorts after the complete one
        shutil.copytree(run_dir(root, "base1"), partial)
        cut(log_of(partial), 0.5)
        cut_off = cut(log_of(run_dir(root, "emb1")), 0.6)
        # an empty run directory, one of garbage, and a log with no bytes at all
        (root / "wandb" / "offline-run-20261120_100000-empty0").mkdir()
        junk = root / "wandb" / "offline-run-20261120_100001-junk0"
        (junk / "files").mkdir(parents=True)
        rng = np.random.default_rng(0)
        (junk / "run-junk0.wandb").write_bytes(rng.bytes(5000))
        (junk / "files" / "output.log").write_bytes(rng.bytes(300))
        (junk / "notes.txt").write_text("not a run\n")
        (junk / "run-notalog.wandb").mkdir()  # a directory with a log's name
        zero = root / "wandb" / "offline-run-20261120_100002-zero0"
        zero.mkdir()
        (zero / "run-zero0.wandb").write_bytes(b"")
        for log in root.rglob("run-*.wandb"):
            if log.is_file() and "emb0" not in log.name:
                os.utime(log, (OLD, OLD))
        # the sweep planned every pairwise function: concatenation never started
        sweep_dir = root / "sweeps" / SWEEP
        sweep_dir.mkdir(parents=True)
        (sweep_dir / "sweep.yaml").write_text(yaml.safe_dump({
            "program": "nlstudy", "method": "grid", "metric": {"name": keys.VAL_TOP1_BEST, "goal": "maximize"},
            "parameters": {"table": {"value": "2a"}, keys.SEED: {"values": [0, 1]},
                           keys.NONLOCAL_BLOCKS: {"values": ["none", "1-block"]},
                           keys.PAIRWISE: {"values": list(PAIRWISE)}}}))
        assert plan.write(sweep_dir)  # as the sweep agent writes it
        yield root, cut_off
    finally:
        for proc in (writer, killed, running):
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=60)


def test_report_over_a_faulty_root(faulty_root, tmp_path, capsys):
    root, _ = faulty_root
    out = tmp_path / "results"
    assert cli.main(["--runs", str(root), "--out", str(out), "--no-cache"]) == 0
    assert capsys.readouterr().out.startswith("### Table 2a")

    runs = offline.read_offline(root, cache=None).runs.set_index("run_id")
    assert runs["state"].to_dict() == STATES  # one row per run id: the copies are one run; empty0 has no log
    for run_id, s in FINISHED.items():  # each finished run's numbers are the ones it logged
        for key, value in {**s["summary"], **s["epochs"][-1]}.items():
            assert runs.loc[run_id, key] == value, (run_id, key)
    # of the two copies of base1 the complete one counts, and the note says so
    assert runs.loc["base1", "path"] == str(run_dir(root, "base1").resolve())
    assert "zz-partial" in runs.loc["base1", "note"]
    assert runs.loc["junk0", "note"].startswith("unreadable log") and pd.isna(runs.loc["junk0", "table"])
    assert runs.loc["zero0", "note"] == "log holds no records (killed early)"
    # emb0's log may or may not hold its first records yet (wandb-core writes in blocks); either way it runs
    assert "killed" not in str(runs.loc["emb0", "note"]) and runs.loc["emb0", keys.PAIRWISE] == "embedded_gaussian"

    table = pd.read_csv(out / "2a.csv").set_index("label")
    assert table.index.tolist() == ["C2D baseline", *(f"NL C2D 1-block {p}" for p in PAIRWISE)]
    assert table["status"].tolist() == ["ok", "failed", "running", "ok", "missing"]
    assert table["n"].tolist() == [2, 0, 0, 2, 0]
    assert table["n_failed"].tolist() == [0, 2, 1, 0, 0]  # failed + crashed; the cut log is a crashed run
    assert table["n_running"].tolist() == [0, 0, 1, 0, 0]
    assert table["n_missing"].tolist() == [0, 0, 0, 0, 2]
    assert table["n_dup"].tolist() == [0] * 5  # a copied directory is not a second seed

    def mean(ids, key):
        return np.mean([FINISHED[i]["summary"][key] for i in ids])

    base, dot = table.loc["C2D baseline"], table.loc["NL C2D 1-block dot_product"]
    for column, key in (("mean", keys.TEST_TOP1), ("val_top1_best", keys.VAL_TOP1_BEST),
                        ("val_top5_best", keys.VAL_TOP5_BEST), ("test_top5", keys.TEST_TOP5)):
        assert base[column] == pytest.approx(mean(["base0", "base1"], key), abs=1e-9)
        assert dot[column] == pytest.approx(mean(["dot0", "dot1"], key), abs=1e-9)
    assert base["std"] == pytest.approx(np.std([45.25 - 1.0, 44.0 - 1.0], ddof=1))
    assert dot["delta"] == pytest.approx(mean(["dot0", "dot1"], keys.TEST_TOP1) - mean(["base0", "base1"], keys.TEST_TOP1))
    assert dot["params_rel"] == pytest.approx(11800 / 11200) and dot["flops_rel"] == pytest.approx(5.6 / 5.1)
    assert table.loc[table["status"] != "ok", ["mean", "val_top1_best", "delta"]].isna().all().all()

    readme = (out / "README.md").read_text()
    assert "From 10 runs (4 finished, 4 crashed, 1 failed, 1 running)" in readme
    assert "2 run(s) carry no `table` config key" in readme


def test_the_cut_log_is_what_it_held_and_is_read_again_when_it_grows(faulty_root, tmp_path, monkeypatch):
    root, cut_off = faulty_root
    reads = []
    real = wandb_log.inspect_records
    monkeypatch.setattr(wandb_log, "inspect_records", lambda f: reads.append(Path(f).parent.name) or real(f))
    cache = LogCache(tmp_path / "cache")

    cold = offline.read_offline(root, cache=cache)
    assert len(reads) == 12  # every log once: the copies and the garbage included
    reads.clear()
    warm = offline.read_offline(root, cache=cache)
    # read again: the garbage log (an unreadable log is never cached) and perhaps the running run's, if
    # it wrote in the cache's racy window; the others came from the cache
    assert "offline-run-20261120_100001-junk0" in reads and len(reads) <= 2
    # a damaged entry (cut short, or of another shape) is read again and rewritten
    base0 = log_of(run_dir(root, "base0"))
    cache.entry(base0).write_text(cache.entry(base0).read_text()[:100])
    dot1 = log_of(run_dir(root, "dot1"))
    assert cache.put(dot1, Stamp.of(dot1), [1], read_since_ns=time.time_ns())
    reads.clear()
    mended = offline.read_offline(root, cache=cache)
    assert {run_dir(root, "base0").name, run_dir(root, "dot1").name} <= set(reads) and len(reads) <= 4
    assert cache.get(base0, Stamp.of(base0)) is not None
    uncached = offline.read_offline(root, cache=None)
    for got in (warm, mended, uncached):
        pd.testing.assert_frame_equal(got.runs, cold.runs)
        pd.testing.assert_frame_equal(got.history, cold.history)

    # emb1's cut log held its first records: a prefix of what it logged, and no exit record
    history = cold.history[cold.history["run_id"] == "emb1"]
    full = [e[keys.VAL_TOP1] for e in WRITTEN[5]["epochs"]]
    logged = history.loc[history["metric"] == keys.VAL_TOP1, "value"].tolist()
    assert logged == full[:len(logged)] and len(logged) < len(full)

    # the writer goes on: the log grows (its mtime even kept), so the cache must not answer
    log = log_of(run_dir(root, "emb1"))
    before = log.stat()
    with log.open("ab") as f:
        f.write(cut_off)
    os.utime(log, ns=(before.st_atime_ns, before.st_mtime_ns))
    reads.clear()
    grown = offline.read_offline(root, cache=cache).runs.set_index("run_id")
    assert reads.count(run_dir(root, "emb1").name) == 1
    assert grown.loc["emb1", "state"] == "finished" and grown.loc["emb1", keys.VAL_TOP1_BEST] == 51.0


def test_the_reader_prints_what_wandbs_cli_prints(faulty_root):
    root, _ = faulty_root
    for log in (log_of(run_dir(root, "dot1")), log_of(root / "zz-partial" / "wandb" / run_dir(root, "base1").name)):
        assert wandb_log.inspect_records(log) == wandb_log.inspect_records(log, via_cli=True)
