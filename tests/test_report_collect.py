"""Readers: offline run directories (real wandb runs, made here) and the W&B API (recorded responses).

The real runs (tests/fixtures/report/runs.json, made by offline_run.py in subprocesses: finished,
failed, SIGKILLed mid-way, killed before its first log block, still running) are built once per
module and only for the tests marked slow. The API reader is fed wandb_api.json, the GraphQL
responses for the same runs, through wandb's real public-API classes with only the transport
(ServiceApi.execute_graphql) replaced.
"""

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nlstudy import keys, records
from nlstudy.report import offline, resumed, runstate, schema, sweeps, wandb_api
from nlstudy.report.cli import main
from nlstudy.sweep import plan

FIXTURES = Path(__file__).parent / "fixtures" / "report"
SPECS = json.loads((FIXTURES / "runs.json").read_text())
SOURCE_SPECIFIC = ["source", "path", "created_at"]  # where a run lives and when each side stamped it
EXPECTED_STATES = {"base0": "finished", "base1": "finished", "dot0": "finished", "dot1": "failed",
                   "gau0": "crashed", "cus0": "finished"}
SWEEP_YAML = {
    "program": "nlstudy", "method": "grid", "metric": {"name": keys.VAL_TOP1_BEST, "goal": "maximize"},
    "parameters": {
        "table": {"value": "2a"},
        keys.SEED: {"values": [0, 1]},
        "model": {"parameters": {"backbone": {"parameters": {
            "nonlocal_blocks": {"values": ["none", "1-block"]},
            "nl": {"parameters": {"pairwise": {"values": ["gaussian", "embedded_gaussian", "dot_product"]}}},
        }}}},
    },
}


# --------------------------------------------------------------------------------------------------
# the W&B API, replayed
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def recorded_api(monkeypatch):
    """wandb.Api() answered from wandb_api.json; returns the list of (operation, variables) asked."""
    from wandb.apis.public.service_api import ServiceApi

    recorded = json.loads((FIXTURES / "wandb_api.json").read_text())
    calls = []

    def execute_graphql(self, query, variables=None, timeout=None, *, parse=json.loads, **rewrites):
        operation = re.search(r"(?:query|mutation)\s+(\w+)", query).group(1)
        variables = dict(variables or {})
        calls.append((operation, variables))
        for response in recorded["responses"]:
            if response["operation"] == operation and all(
                    variables.get(k) == v for k, v in response["variables"].items()):
                return parse(json.dumps(response["data"]))
        raise AssertionError(f"no recorded response for {operation} {variables}")

    monkeypatch.setattr(ServiceApi, "execute_graphql", execute_graphql)
    monkeypatch.setattr(ServiceApi, "authenticate", lambda self, *args, **kwargs: None)
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    monkeypatch.delenv("WANDB_ENTITY", raising=False)
    return calls


def test_api_reader_parses_config_summary_history_and_pages(recorded_api):
    got = wandb_api.read_wandb("nlstudy-lab/nlstudy-test")
    runs = got.runs.set_index("run_id")
    assert sorted(runs.index) == sorted(EXPECTED_STATES)
    assert runs["state"].to_dict() == EXPECTED_STATES
    assert [op for op, _ in recorded_api].count("Runs") == 2  # followed the cursor to the second page
    assert runs.loc["dot0", "sweep_id"] == "swp2a" and pd.isna(runs.loc["cus0", "sweep_id"])
    assert runs.loc["dot0", "name"] == "dot-s0" and runs.loc["cus0", "table"] == "custom"
    # {"key": {"value": ...}} unwrapped; the flat key wins over the nested copy; nested-only keys flattened
    assert runs.loc["dot0", keys.NONLOCAL_BLOCKS] == "1-block"
    assert runs.loc["dot1", keys.PAIRWISE] == "dot_product"
    assert runs.loc["cus0", keys.NONLOCAL_BLOCKS] == {"res3": [1, 3], "res4": [1, 3, 5]}
    assert runs.loc["base0", keys.DEPTH] == 18.0 and runs[keys.DEPTH].dtype == "float64"
    assert runs.loc["base0", keys.NL_POSITIONS] == []
    assert not [c for c in runs.columns if c.startswith("_") or c in ("model", "model.backbone")]
    assert runs.loc["base0", keys.VAL_TOP1_BEST] == 45.0 and runs.loc["base0", keys.TEST_TOP5] == 84.5
    assert runs.loc["base1", keys.VAL_TOP1] == 41.0  # the summary keeps the last logged value
    assert pd.isna(runs.loc["dot1", keys.VAL_TOP1_BEST]) and runs.loc["dot1", keys.VAL_TOP1] == 34.0
    config_columns = got.runs.attrs["config_columns"]
    assert keys.PARAMS in config_columns and keys.SEED in config_columns and keys.VAL_TOP1 not in config_columns

    history = got.history
    assert list(history.columns) == list(schema.HISTORY_COLUMNS)
    val = history[(history["run_id"] == "base0") & (history["metric"] == keys.VAL_TOP1)]
    assert val["epoch"].tolist() == [0.0, 1.0, 2.0] and val["value"].tolist() == [30.0, 40.0, 45.0]
    loss = history[(history["run_id"] == "base0") & (history["metric"] == keys.TRAIN_LOSS)]
    assert len(loss) == 6 and loss["global_step"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_api_reader_sweep_filter(recorded_api):
    got = wandb_api.read_wandb("nlstudy-lab/nlstudy-test", sweep="swp2a")
    assert sorted(got.runs["run_id"]) == ["base0", "base1", "dot0", "dot1", "gau0"]
    assert ("Runs", {"project": "nlstudy-test", "entity": "nlstudy-lab", "order": "+created_at",
                     "filters": '{"sweep": "swp2a"}', "perPage": 50, "cursor": None}) in recorded_api


def test_cli_from_the_api(recorded_api, tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["--wandb", "nlstudy-lab/nlstudy-test", "--out", str(out), "--tables", "2a,2c"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("### Table 2a")
    assert "| NL C2D 1-block gaussian | failed |" in printed
    assert sorted(p.name for p in out.iterdir()) == ["2a.csv", "2a.md", "2a.tex", "2a_runs.csv", "2c.csv", "2c.md",
                                                     "2c.tex", "2c_runs.csv", "README.md", "figures"]
    assert "_no runs_" in (out / "2c.md").read_text()  # asked for, none logged: said so, no crash
    table = pd.read_csv(out / "2a.csv")
    assert table["label"].tolist() == ["C2D baseline", "NL C2D 1-block gaussian", "NL C2D 1-block dot_product"]
    assert table["n"].tolist() == [2, 0, 1] and table["n_failed"].tolist() == [0, 1, 1]
    assert table["val_top1_best"].iloc[0] == 44.5 and pd.isna(table["val_top1_best"].iloc[1])
    assert table["val_top1_best"].iloc[2] == 55.0
    readme = (out / "README.md").read_text()
    assert "    nlstudy report --wandb nlstudy-lab/nlstudy-test --out " in readme
    assert "6 runs (4 finished, 1 failed, 1 crashed)" in readme


# --------------------------------------------------------------------------------------------------
# pieces that need no run
# --------------------------------------------------------------------------------------------------


def test_state_of_a_run_without_exit_record_from_another_host(tmp_path):
    log = tmp_path / "run-x.wandb"
    log.write_bytes(b"\x00" * 7)
    assert runstate.still_writing(log, "elsewhere", "", stale_after_s=60)
    old = time.time() - 3600
    os.utime(log, (old, old))
    assert not runstate.still_writing(log, "elsewhere", "", stale_after_s=60)
    # on this host the writer's pid decides: this process is alive, pid 2**22 + 1 is not
    assert runstate.still_writing(log, None, f"Configure stats pid to {os.getpid()}", stale_after_s=60)
    assert not runstate.still_writing(log, None, "Configure stats pid to 4194305", stale_after_s=60)


def test_a_running_run_whose_log_holds_no_records_yet(tmp_path):
    run_dir = tmp_path / "wandb" / "offline-run-20261120_100000-live1"
    (run_dir / "logs").mkdir(parents=True)
    (run_dir / "run-live1.wandb").write_bytes(b"")  # wandb-core has not written its first block yet
    (run_dir / "logs" / "debug.log").write_text(
        f"Configure stats pid to {os.getpid()}\nconfig: {{'table': '2a', 'seed_everything': 3}}\n")
    got = offline.read_offline(tmp_path).runs.iloc[0]
    assert (got["run_id"], got["state"], got["table"], got[keys.SEED]) == ("live1", "running", "2a", 3.0)
    assert got["note"] == "log holds no records yet; config from logs/debug.log"


def test_planned_runs_of_a_grid_sweep(tmp_path):
    sweep_dir = tmp_path / "sweeps" / "swp2a"
    sweep_dir.mkdir(parents=True)
    (sweep_dir / "sweep.yaml").write_text(yaml.safe_dump(SWEEP_YAML))
    (tmp_path / "sweeps" / "rnd").mkdir()
    (tmp_path / "sweeps" / "rnd" / "sweep.yaml").write_text(yaml.safe_dump(
        {"method": "random", "parameters": {"table": {"value": "2c"}, "lr": {"min": 0.1, "max": 1.0}}}))
    assert plan.write_missing(tmp_path) == []  # as the sweep agent writes them
    files = records.find_sweep_files(tmp_path / "wandb")
    assert [f.parent.name for f in files] == ["rnd", "swp2a"]
    planned = sweeps.planned(files)
    assert len(planned) == 2 * 2 * 3 and set(planned["sweep_id"]) == {"swp2a"}
    assert set(planned[keys.PAIRWISE]) == {"gaussian", "embedded_gaussian", "dot_product"}
    assert set(planned["table"]) == {"2a"} and set(planned[keys.SEED]) == {0, 1}
    assert sweeps.planned(files, sweep="other").empty
    assert sweeps.planned([]).empty


# --------------------------------------------------------------------------------------------------
# real offline runs
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def offline_root(tmp_path_factory, launch_run):
    """A runs root with the runs of runs.json (made for real, three at a time) and the sweep's YAML."""
    root = tmp_path_factory.mktemp("runs")
    exit_codes = {"finish": 0, "fail": 1, "kill": -signal.SIGKILL}
    for start in range(0, len(SPECS), 3):
        batch = [(spec, launch_run(spec, root)) for spec in SPECS[start:start + 3]]
        for spec, proc in batch:
            assert proc.wait(timeout=120) == exit_codes[spec["end"]], spec["id"]
    sweep_dir = root / "sweeps" / "swp2a"
    sweep_dir.mkdir(parents=True)
    (sweep_dir / "sweep.yaml").write_text(yaml.safe_dump(SWEEP_YAML))
    assert plan.write(sweep_dir)  # as the sweep agent writes it
    return root


@pytest.mark.slow
def test_offline_reader(offline_root):
    got = offline.read_offline(offline_root)
    runs = got.runs.set_index("run_id")
    assert runs["state"].to_dict() == EXPECTED_STATES
    assert runs.loc["base0", "path"].startswith(str(offline_root / "wandb" / "offline-run-"))
    assert runs.loc["gau0", "sweep_id"] == "swp2a" and runs.loc["gau0", "project"] == "nlstudy-test"
    # the crashed run keeps what it logged before the kill
    assert runs.loc["gau0", keys.VAL_TOP1_BEST] == 47.0
    val = got.history[(got.history["run_id"] == "gau0") & (got.history["metric"] == keys.VAL_TOP1)]
    assert val["value"].tolist() == [33.0, 47.0]
    assert runs.loc["dot0", keys.NONLOCAL_BLOCKS] == "1-block" and runs.loc["dot1", keys.PAIRWISE] == "dot_product"
    # a runs root, its wandb dir and one run dir are all accepted
    assert len(offline.read_offline(offline_root / "wandb", sweep="swp2a").runs) == 5
    one = offline.read_offline(runs.loc["cus0", "path"]).runs
    assert one["run_id"].tolist() == ["cus0"] and one[keys.NONLOCAL_BLOCKS].iloc[0] == {"res3": [1, 3], "res4": [1, 3, 5]}


@pytest.mark.slow
def test_both_readers_give_equal_frames(offline_root, recorded_api):
    local = offline.read_offline(offline_root)
    online = wandb_api.read_wandb("nlstudy-lab/nlstudy-test")

    def comparable(frame):
        return frame.drop(columns=SOURCE_SPECIFIC).sort_values("run_id").reset_index(drop=True)

    pd.testing.assert_frame_equal(comparable(local.runs), comparable(online.runs))
    pd.testing.assert_frame_equal(local.history, online.history)
    for sweep in ("swp2a",):
        pd.testing.assert_frame_equal(comparable(offline.read_offline(offline_root, sweep=sweep).runs),
                                      comparable(wandb_api.read_wandb("nlstudy-lab/nlstudy-test", sweep=sweep).runs))


@pytest.mark.slow
def test_runs_killed_early_or_still_running(tmp_path, launch_run):
    config = dict(SPECS[0]["config"], seed_everything=7)
    early = launch_run({"id": "early0", "name": "early", "sweep": "swp2a", "end": "kill_early", "config": config},
                    tmp_path / "early")
    hung = launch_run({"id": "live0", "name": "live", "sweep": None, "end": "hang", "config": config},
                   tmp_path / "live", stdout=subprocess.PIPE, text=True)
    try:
        assert early.wait(timeout=120) == -signal.SIGKILL
        assert hung.stdout.readline().strip() == "ready"
        live = offline.read_offline(tmp_path / "live").runs.iloc[0]
        assert (live["run_id"], live["state"]) == ("live0", "running")
    finally:
        hung.kill()
        hung.wait(timeout=60)
    assert offline.read_offline(tmp_path / "live").runs["state"].tolist() == ["crashed"]

    got = offline.read_offline(tmp_path / "early").runs.iloc[0]
    assert (got["run_id"], got["state"]) == ("early0", "crashed")
    assert "debug.log" in got["note"]  # the log held no record: the config came from wandb's debug.log
    assert (got["table"], got[keys.SEED], got[keys.NONLOCAL_BLOCKS]) == ("2a", 7.0, "none")


@pytest.mark.slow
def test_cli_on_offline_runs(offline_root, tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["--runs", str(offline_root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "### Table 2a" in printed and "### Table custom" in printed
    names = {p.name for p in out.iterdir()}
    assert {"2a.md", "2a.tex", "2a.csv", "custom.md", "custom.tex", "custom.csv", "README.md"} <= names
    figures = {p.name for p in (out / "figures").iterdir()}
    assert {"2a_acc_vs_flops.png", "2a_acc_vs_flops.pdf", "2a_bars.png", "2a_bars.pdf",
            "2a_curves.png", "2a_curves.pdf"} <= figures
    table = pd.read_csv(out / "2a.csv")
    # the sweep planned embedded_gaussian too: a row marked missing, not silently absent
    assert table["label"].tolist() == ["C2D baseline", "NL C2D 1-block gaussian",
                                       "NL C2D 1-block embedded_gaussian", "NL C2D 1-block dot_product"]
    assert table["status"].tolist() == ["ok", "failed", "missing", "ok"]
    assert table["n_missing"].tolist() == [0, 1, 2, 0]
    assert table["delta"].iloc[3] == pytest.approx(54.0 - 43.5)  # test/top1, the primary metric
    assert table["params_rel"].iloc[3] == pytest.approx(11800 / 11200)
    readme = (out / "README.md").read_text()
    assert f"    nlstudy report --runs {offline_root} --out {out}" in readme
    assert "[2a_curves](figures/2a_curves.png)" in readme

    assert main(["--runs", str(offline_root), "--out", str(tmp_path / "strict"), "--strict"]) == 1
    err = capsys.readouterr().err
    assert "NL C2D 1-block embedded_gaussian (missing)" in err and "NL C2D 1-block gaussian (failed)" in err
    assert not (tmp_path / "strict").exists()


@pytest.mark.slow  # wandb's reader runs in a subprocess (python -m wandb)
def test_an_unreadable_log_is_a_marked_run_not_a_crash(tmp_path):
    run_dir = tmp_path / "wandb" / "offline-run-20261120_100000-bad0"
    (run_dir / "logs").mkdir(parents=True)
    (run_dir / "run-bad0.wandb").write_bytes(b"this is not a wandb log" * 10)
    (run_dir / "logs" / "debug.log").write_text(
        "2026-11-20 10:00:00,000 INFO    MainThread:4194305 [wandb_setup.py:_flush():81] Configure stats pid to 4194305\n"
        "2026-11-20 10:00:00,001 INFO    MainThread:4194305 [wandb_init.py:init():789] wandb.init called with sweep_config: {}\n"
        "config: {'table': '2c', 'model.backbone.nonlocal_blocks': '5-block', 'seed_everything': 1}\n")
    got = offline.read_offline(tmp_path).runs.iloc[0]
    assert (got["run_id"], got["state"], got["table"]) == ("bad0", "crashed", "2c")
    assert got["note"].endswith("config from logs/debug.log")
    assert got["created_at"] == pd.Timestamp("2026-11-20T10:00:00Z")


def test_a_resumed_run_written_in_two_directories_is_one_run():
    def part(name, state, summary, steps):
        return schema.RunRecord(
            run_id="abc", state=state, config={keys.TABLE: "2a", "model.x": name}, summary=summary,
            history=[{schema.GLOBAL_STEP: s, keys.TRAIN_LOSS: float(s) + (0.5 if name == "second" else 0)} for s in steps],
            source="offline", path=f"/runs/wandb/offline-run-2026010{1 if name == 'first' else 2}_000000-abc",
            created_at=f"2026-01-0{1 if name == 'first' else 2}T00:00:00+00:00")

    # the second part restarted from the checkpoint at step 20; the first had logged up to 25 when it was killed
    first = part("first", "crashed", {keys.VAL_TOP1: 40.0, keys.VAL_TOP1_BEST: 50.0}, [10, 20, 25])
    second = part("second", "finished", {keys.VAL_TOP1: 60.0, keys.TEST_TOP1: 55.0}, [21, 30])
    [run] = resumed.merge_resumed([second, first])
    assert run.state == "finished" and run.path.endswith("20260102_000000-abc") and run.config["model.x"] == "second"
    assert run.summary == {keys.VAL_TOP1: 60.0, keys.VAL_TOP1_BEST: 50.0, keys.TEST_TOP1: 55.0}
    assert [(r[schema.GLOBAL_STEP], r[keys.TRAIN_LOSS]) for r in run.history] == [(10, 10.0), (20, 20.0), (21, 21.5), (30, 30.5)]
    assert run.created_at == "2026-01-01T00:00:00+00:00"
    frame = schema.tidy(resumed.merge_resumed([first, second])).runs
    assert len(frame) == 1 and frame.iloc[0]["state"] == "finished"


def test_stand_ins_file_a_reused_run_under_each_table_that_planned_it_once(tmp_path):
    """The agent reused run a for sweep s2 (table 2b) and for s3, an edited copy of s1 (table 2a again):
    the report files a under 2b as well, and still once under 2a."""
    import json

    from nlstudy.report.schema import Collection
    from nlstudy.report.sweeps import with_stand_ins

    def record(sweep, run_id, table, reused_from=None):
        folder = tmp_path / "sweeps" / sweep / "runs" / run_id
        folder.mkdir(parents=True)
        (folder / "run.json").write_text(json.dumps({
            "id": run_id, "state": "finished", "config": {"table": {"value": table}},
            "reused_from": reused_from, "wandb_id": "a" if reused_from else run_id}))

    record("s1", "a", "2a")
    record("s2", "b", "2b", reused_from="a")
    record("s3", "c", "2a", reused_from="a")
    runs = pd.DataFrame({"run_id": ["a"], "table": ["2a"], "sweep_id": ["s1"], "val/top1_best": [50.0]})
    out = with_stand_ins(Collection(runs, pd.DataFrame()), tmp_path).runs
    assert sorted(zip(out["run_id"], out["table"], out["sweep_id"])) == [("a", "2a", "s1"), ("a", "2b", "s2")]
    assert list(out["val/top1_best"]) == [50.0, 50.0]


# --------------------------------------------------------------------------------------------------
# reused runs: the same tables from a runs root, its wandb/ folder alone and the W&B API
# --------------------------------------------------------------------------------------------------

REUSE = json.loads((FIXTURES / "reuse_runs.json").read_text())


@pytest.fixture(scope="module")
def reuse_root(tmp_path_factory, launch_run):
    """Two sweeps as the agent leaves them: 2a's runs, 2b's own runs, and 2b's baseline stood in for by 2a's (the
    sweep's records, run.json, and the stand-ins' own small wandb runs, written by nlstudy.sweep.standin)."""
    import sys

    root = tmp_path_factory.mktemp("reuse")
    assert launch_run(REUSE["runs"], root).wait(timeout=300) == 0
    write = "; ".join(
        f"standin.write({str(root)!r}, {{'id': {s['id']!r}, 'wandb_id': {s['reused_from']!r}, 'note': 'reused'}}, "
        f"sweep_id={s['sweep']!r}, project='nlstudy-reuse', table={s['table']!r})" for s in REUSE["stand_ins"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    proc = subprocess.run([sys.executable, "-c", f"from nlstudy.sweep import standin; {write}"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for s in REUSE["stand_ins"]:
        folder = root / "sweeps" / s["sweep"] / "runs" / s["id"]
        folder.mkdir(parents=True)
        (folder / "run.json").write_text(json.dumps({
            "id": s["id"], "state": "finished", "exitcode": 0, "config": {"table": {"value": s["table"]}},
            "reused_from": s["reused_from"], "wandb_id": s["reused_from"]}))
    return root


def tables_of(collection, ids=("2a", "2b")):
    from nlstudy.report.tables import build_table

    columns = ["label", "n", "n_failed", "mean", "std", "delta", "delta_ci_low", "delta_ci_high", "params_rel"]
    return {t: build_table(collection.runs, t)[columns].reset_index(drop=True) for t in ids}


@pytest.mark.slow  # real offline runs, made in subprocesses
def test_reused_runs_give_the_same_tables_from_the_runs_root_its_wandb_folder_alone_and_wandb(
        reuse_root, recorded_api, tmp_path):
    import shutil

    alone = tmp_path / "elsewhere" / "wandb"  # the wandb folder copied without the sweeps' state beside it
    shutil.copytree(reuse_root / "wandb", alone)
    sources = {"runs root": sweeps.read_local(reuse_root), "wandb folder": sweeps.read_local(alone),
               "W&B": wandb_api.read_wandb("nlstudy-lab/nlstudy-reuse")}
    got = {name: tables_of(c) for name, c in sources.items()}
    assert got["runs root"]["2b"]["n"].tolist() == [2, 2]  # the baseline row: 2a's two runs
    for name in ("wandb folder", "W&B"):
        for table_id in ("2a", "2b"):
            pd.testing.assert_frame_equal(got[name][table_id], got["runs root"][table_id], obj=f"{name} {table_id}")
    for collection in sources.values():  # no stand-in is a row of its own
        assert not {"sb2b0", "sb2b1"} & set(collection.runs["run_id"]) and keys.REUSED_FROM not in collection.runs
        stood_in = collection.runs[collection.runs["table"] == "2b"]
        assert sorted(stood_in["run_id"]) == ["rbase0", "rbase1", "rres30", "rres31"]
        assert set(stood_in["sweep_id"]) == {"swpb"}
    # one sweep alone: its stand-ins are filed under it though their runs ran in the other sweep
    only_b = {"runs root": sweeps.read_local(reuse_root, sweep="swpb"),
              "wandb folder": offline.read_offline(alone, sweep="swpb"),
              "W&B": wandb_api.read_wandb("nlstudy-lab/nlstudy-reuse", sweep="swpb")}
    for name, collection in only_b.items():
        assert sorted(collection.runs["run_id"]) == ["rbase0", "rbase1", "rres30", "rres31"], name
        assert set(collection.runs["table"]) == {"2b"} and set(collection.history["run_id"]) == set(collection.runs["run_id"])
        pd.testing.assert_frame_equal(tables_of(collection, ("2b",))["2b"], got["runs root"]["2b"], obj=name)
    asked = [json.loads(v["filters"]) for op, v in recorded_api if op == "Runs"]
    assert {"name": {"$in": ["rbase0", "rbase1"]}} in asked  # the runs that stand in, fetched by id
