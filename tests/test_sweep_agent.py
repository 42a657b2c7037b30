"""The local agent on a stand-in run (tests/fixtures/sweep/toy_run.py: no torch, well under a second):
a grid to completion, failed runs, resuming, interrupted and orphaned runs, two agents, --jobs,
--count, run_cap, random, bayes and hyperband."""

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml

from nlstudy.sweep import cli, engine
from nlstudy.sweep.reuse import reuse_key
from nlstudy.sweep.spec import load
from nlstudy.sweep.state import SweepState, now, read_progress, this_agent

TOY = Path(__file__).parent / "fixtures" / "sweep" / "toy_run.py"


def sweep_file(tmp_path, body: str, name="toy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(f"command: [python, {TOY}, '${{args_json_file}}']\n" + textwrap.dedent(body))
    return path


def toy_log(tmp_path) -> list[dict]:
    path = tmp_path / "toy_log.jsonl"
    return [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(autouse=True)
def toy_env(tmp_path, monkeypatch):
    monkeypatch.setenv("TOY_LOG", str(tmp_path / "toy_log.jsonl"))
    monkeypatch.delenv("TOY_HANG", raising=False)
    monkeypatch.delenv("NLSTUDY_RUNS_DIR", raising=False)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)


def records(root, path) -> list[dict]:
    sweep = load(path)
    return SweepState(root, sweep.default_id).records()


def sweep_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "nlstudy", "sweep", *map(str, args)]


GRID = """\
method: grid
metric: {name: val/top1_best, goal: maximize}
parameters:
  table: {value: toy}
  a: {values: [1, 2, 3]}
  fail: {values: [false, true]}
"""


@pytest.mark.slow  # the agent starts toy-run processes
def test_grid_runs_to_completion_and_a_failed_run_does_not_stop_it(tmp_path, capsys):
    path, root = sweep_file(tmp_path, GRID), tmp_path / "runs"
    code = cli.main([str(path), "--runs-root", str(root), "--project", "toyproj"])
    out = capsys.readouterr().out
    assert code == 1  # some runs failed; the sweep still ran every configuration
    runs = toy_log(tmp_path)
    assert sorted((r["params"]["a"], r["params"]["fail"]) for r in runs) == [
        (a, f) for a in (1, 2, 3) for f in (False, True)]
    assert all(r["params"]["table"] == "toy" for r in runs)
    sweep = load(path)
    recs = records(root, path)
    assert sorted(r["state"] for r in recs) == ["failed"] * 3 + ["finished"] * 3
    assert all((r["state"] == "failed") == r["config"]["fail"]["value"] for r in recs)
    # every run carries the sweep id, its own run id and the agent's environment
    state = SweepState(root, sweep.default_id)
    by_id = {r["id"]: r for r in recs}
    for run in runs:
        env = run["env"]
        assert env["WANDB_MODE"] == "offline" and env["WANDB_SWEEP_ID"] == sweep.default_id
        assert env["WANDB_PROJECT"] == "toyproj" and env["NLSTUDY_RUNS_DIR"] == str(root.absolute())
        rec = by_id[env["WANDB_RUN_ID"]]
        assert run["params"] == {k: v["value"] for k, v in rec["config"].items()}
        assert env["WANDB_SWEEP_PARAM_PATH"] == str(state.run_dir(rec["id"]) / "params.yaml")
        assert yaml.safe_load(Path(env["WANDB_SWEEP_PARAM_PATH"]).read_text())["a"] == {"value": run["params"]["a"]}
        assert env["NLSTUDY_PROGRESS_FILE"] == str(state.run_dir(rec["id"]) / "progress.jsonl")
        assert env["NLSTUDY_STOP_FILE"] == str(state.run_dir(rec["id"]) / "stop")
        assert env["NLSTUDY_NUM_THREADS"] == env["OMP_NUM_THREADS"] == str(cli.cores())
    # the report's layout: the sweep file kept as sweeps/<id>/sweep.yaml
    assert (root / "sweeps" / sweep.default_id / "sweep.yaml").read_text() == path.read_text()
    assert "6/6 runs done (3 failed)" in out and "failed with exit code 1" in out
    # running the same command again resumes: nothing left, nothing repeated
    assert cli.main([str(path), "--runs-root", str(root)]) == 0
    assert len(toy_log(tmp_path)) == 6 and len(records(root, path)) == 6


@pytest.mark.slow  # the agent starts toy-run processes
def test_count_then_resume(tmp_path, capsys):
    path, root = sweep_file(tmp_path, GRID), tmp_path / "runs"
    assert cli.main([str(path), "--runs-root", str(root), "--count", "2"]) == 1  # (1, False), (1, True)
    assert len(toy_log(tmp_path)) == 2
    assert cli.main([str(path), "--runs-root", str(root), "--count", "3"]) == 1
    assert len(toy_log(tmp_path)) == 5
    cli.main([str(path), "--runs-root", str(root)])
    configs = [(r["params"]["a"], r["params"]["fail"]) for r in toy_log(tmp_path)]
    assert len(configs) == 6 and len(set(configs)) == 6


@pytest.mark.slow  # the agent starts toy-run processes
def test_edited_file_starts_a_new_sweep_and_a_reused_id_is_refused(tmp_path, capsys):
    path, root = sweep_file(tmp_path, GRID), tmp_path / "runs"
    cli.main([str(path), "--runs-root", str(root), "--count", "1", "--sweep-id", "mysweep1"])
    path.write_text(path.read_text().replace("[1, 2, 3]", "[1, 2]"))
    code = cli.main([str(path), "--runs-root", str(root), "--sweep-id", "mysweep1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "sweep mysweep1" in err and "was created from a different config" in err
    assert load(path).default_id != "mysweep1"


@pytest.mark.slow  # starts agent processes (nlstudy sweep), which start toy-run processes
def test_agent_killed_mid_run_resume_retries_that_run(tmp_path):
    """SIGKILL the agent while a run hangs: the run dies with it (no orphan), and running the command
    again retries that configuration under a new run id, then finishes the grid."""
    path, root = sweep_file(tmp_path, """\
        method: grid
        parameters:
          a: {values: [1, 2, 3]}
          hang: {values: [false, true]}
        """), tmp_path / "runs"
    env = dict(os.environ, TOY_HANG="1")
    agent = subprocess.Popen(sweep_cmd(path, "--runs-root", root), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        running = []
        while time.monotonic() < deadline and not running:
            running = [r for r in (records(root, path) if (root / "sweeps").exists() else [])
                       if r["state"] == "running" and r["config"]["hang"]["value"]]
            time.sleep(0.2)
        assert running, "the hanging run never started"
        hung = running[0]
        agent.kill()
        agent.wait(timeout=30)
    finally:
        if agent.poll() is None:
            agent.kill()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and Path(f"/proc/{hung['pid']}").exists():
        time.sleep(0.1)
    assert not Path(f"/proc/{hung['pid']}").exists(), "the run outlived its agent"

    assert cli.main([str(path), "--runs-root", str(root)]) == 0
    recs = {r["id"]: r for r in records(root, path)}
    old = recs[hung["id"]]
    assert old["state"] == "crashed" and old["retry"] and old["note"] == "its agent died while it ran"
    new = recs[old["retried_by"]]
    assert new["state"] == "finished" and new["retry_of"] == old["id"] and new["config"] == old["config"]
    configs = [(r["params"]["a"], r["params"]["hang"]) for r in toy_log(tmp_path)]
    assert sorted(configs) == [(a, h) for a in (1, 2, 3) for h in (False, True)]


@pytest.mark.slow  # starts agent processes (nlstudy sweep), which start toy-run processes
def test_ctrl_c_kills_the_run_and_resume_retries_it(tmp_path):
    path, root = sweep_file(tmp_path, """\
        method: grid
        parameters:
          hang: {values: [true, false]}
        """), tmp_path / "runs"
    agent = subprocess.Popen(sweep_cmd(path, "--runs-root", root), env=dict(os.environ, TOY_HANG="1"),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
            r["state"] == "running" for r in (records(root, path) if (root / "sweeps").exists() else [])):
        time.sleep(0.2)
    agent.send_signal(signal.SIGINT)
    out, _ = agent.communicate(timeout=60)
    assert agent.returncode == 130, out
    assert "run the same command again to resume" in out
    [rec] = records(root, path)
    assert rec["state"] == "killed" and rec["retry"]
    assert cli.main([str(path), "--runs-root", str(root)]) == 0
    states = sorted((r["state"], r["config"]["hang"]["value"]) for r in records(root, path))
    assert states == [("finished", False), ("finished", True), ("killed", True)]


@pytest.mark.slow  # starts agent processes (nlstudy sweep), which start toy-run processes
@pytest.mark.parametrize("second_root", ["same path", "another path"])
def test_two_agents_started_separately_never_run_the_same_configuration(tmp_path, second_root):
    """Two agents on one runs root; with "another path" the second sees it through a symlink, as agents
    on two machines see a shared filesystem under different mount points: the lock is on the file, not
    on its path, so they still never run the same configuration."""
    path, root = sweep_file(tmp_path, """\
        method: grid
        parameters:
          a: {values: [1, 2, 3, 4, 5, 6, 7, 8]}
          meet: {value: 2}
        """), tmp_path / "runs"
    other = root
    if second_root == "another path":
        root.mkdir()
        other = tmp_path / "mnt" / "shared-runs"
        other.parent.mkdir()
        other.symlink_to(root)
    agents = [subprocess.Popen(sweep_cmd(path, "--runs-root", r), stdout=subprocess.DEVNULL) for r in (root, other)]
    assert [a.wait(timeout=120) for a in agents] == [0, 0]
    values = [r["params"]["a"] for r in toy_log(tmp_path)]
    assert sorted(values) == list(range(1, 9))
    assert len({r["agent"]["pid"] for r in records(root, path)}) == 2  # both took part


@pytest.mark.slow  # starts agent processes (nlstudy sweep), which start toy-run processes
@pytest.mark.parametrize("how", ["two processes", "--jobs 2"])
def test_one_of_two_agents_killed_halfway_loses_and_repeats_nothing(tmp_path, how):
    """Two agents share a sweep; one is SIGKILLed while it runs a configuration, halfway through the grid.
    The other reaps that run (its agent is gone), retries it and finishes the grid: every configuration
    finishes exactly once (the run that died with its agent never reached its end)."""
    path, root = sweep_file(tmp_path, """\
        method: grid
        parameters:
          a: {values: [1, 2, 3, 4, 5, 6, 7, 8]}
          sleep: {value: 0.5}
        """), tmp_path / "runs"
    if how == "two processes":
        agents = [subprocess.Popen(sweep_cmd(path, "--runs-root", root), stdout=subprocess.DEVNULL) for _ in range(2)]
    else:
        agents = [subprocess.Popen(sweep_cmd(path, "--runs-root", root, "--jobs", "2"), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)]
    try:
        def victim():
            recs = records(root, path) if (root / "sweeps").exists() else []
            if sum(r["state"] == "finished" for r in recs) < 3:
                return None
            # a run that started just now (it sleeps 0.5 s): killed mid-run, not between its exit and its record
            return next((r for r in recs if r["state"] == "running" and
                         time.time() - dt.datetime.fromisoformat(r["started_at"]).timestamp() < 0.2), None)

        deadline = time.monotonic() + 60
        while (killed := victim()) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert killed is not None, "the agents never got halfway"
        os.kill(killed["agent"]["pid"], signal.SIGKILL)
        codes = [a.wait(timeout=120) for a in agents]
    finally:
        for a in agents:
            if a.poll() is None:
                a.kill()
    recs = {r["id"]: r for r in records(root, path)}
    finished = sorted(r["config"]["a"]["value"] for r in recs.values() if r["state"] == "finished")
    assert finished == list(range(1, 9))  # none lost, none finished twice: the total equals the grid
    dead = recs[killed["id"]]
    assert dead["state"] == "crashed" and dead["note"] == "its agent died while it ran"
    assert recs[dead["retried_by"]]["state"] == "finished" and recs[dead["retried_by"]]["config"] == dead["config"]
    assert sorted(r["params"]["a"] for r in toy_log(tmp_path)) == list(range(1, 9))  # each ran to its end once
    if how == "two processes":
        assert sorted(codes) == [-signal.SIGKILL, 0]
    else:  # the command says that one of its agents died, and fails
        out = agents[0].stdout.read()
        assert codes == [1] and "was killed by signal 9" in out, out


@pytest.mark.slow  # starts agent processes (nlstudy sweep), which start toy-run processes
def test_jobs_runs_agents_in_parallel_and_splits_threads(tmp_path, capsys):
    path, root = sweep_file(tmp_path, """\
        method: grid
        parameters:
          a: {values: [1, 2, 3, 4, 5, 6]}
          meet: {value: 2}
        """), tmp_path / "runs"
    start = time.monotonic()
    proc = subprocess.run(sweep_cmd(path, "--runs-root", root, "--jobs", "2"), capture_output=True, text=True,
                          timeout=120)
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = toy_log(tmp_path)
    assert sorted(r["params"]["a"] for r in runs) == [1, 2, 3, 4, 5, 6]
    assert {r["env"]["NLSTUDY_NUM_THREADS"] for r in runs} == {str(max(1, cli.cores() // 2))}
    recs = records(root, path)
    assert len({r["agent"]["pid"] for r in recs}) == 2 and len({r["agent"]["session"] for r in recs}) == 1
    # the two agents overlapped in time
    spans = sorted((r["started_at"], r["ended_at"]) for r in recs)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:]))
    assert "[agent 1]" in proc.stdout and "[agent 2]" in proc.stdout
    assert elapsed < 6 * 1.0 + 20


@pytest.mark.slow  # the agent starts toy-run processes
def test_run_cap_random_sweep_values_are_plain_python(tmp_path, capsys):
    path, root = sweep_file(tmp_path, """\
        method: random
        run_cap: 3
        parameters:
          lr: {distribution: log_uniform_values, min: 0.0001, max: 0.1}
          size: {values: [8, 16]}
        """), tmp_path / "runs"
    assert cli.main([str(path), "--runs-root", str(root)]) == 0
    runs = toy_log(tmp_path)
    assert len(runs) == 3
    for run in runs:
        assert 0.0001 <= run["params"]["lr"] <= 0.1 and run["params"]["size"] in (8, 16)
        assert type(yaml.safe_load(Path(run["env"]["WANDB_SWEEP_PARAM_PATH"]).read_text())["lr"]["value"]) is float


@pytest.mark.slow  # the agent starts toy-run processes
def test_bayes_sees_the_progress_metric(tmp_path, capsys):
    path, root = sweep_file(tmp_path, """\
        method: bayes
        run_cap: 3
        metric: {name: val/top1_best, goal: maximize}
        parameters:
          quality: {distribution: uniform, min: 0.0, max: 1.0}
          epochs: {value: 2}
          epoch_s: {value: 0.01}
        """), tmp_path / "runs"
    assert cli.main([str(path), "--runs-root", str(root)]) == 0
    recs = records(root, path)
    assert len(recs) == 3 and all(r["state"] == "finished" for r in recs)
    for r in recs:
        assert r["summary"]["val/top1_best"] == pytest.approx(2 * r["config"]["quality"]["value"])
    assert "val/top1_best=" in capsys.readouterr().out


@pytest.mark.slow  # the agent starts toy-run processes
def test_hyperband_stops_a_poor_run_cleanly(tmp_path, capsys):
    path, root = sweep_file(tmp_path, """\
        method: grid
        metric: {name: val/top1_best, goal: maximize}
        early_terminate: {type: hyperband, min_iter: 2, eta: 2}
        parameters:
          quality: {values: [1.0, 0.9, 0.1]}
          epochs: {value: 20}
          epoch_s: {value: 0.1}
        """), tmp_path / "runs"
    assert cli.main([str(path), "--runs-root", str(root)]) == 0
    by_quality = {r["config"]["quality"]["value"]: r for r in records(root, path)}
    assert by_quality[1.0]["state"] == "finished" and by_quality[0.9]["state"] == "finished"
    poor = by_quality[0.1]
    assert poor["state"] == "stopped" and poor["exitcode"] == 0
    assert 3 <= len(read_progress(Path(poor["command"][-1]).parent / "progress.jsonl")) < 20
    assert "early termination" in capsys.readouterr().out


@pytest.mark.slow  # the agent starts toy-run processes
def test_grid_with_nested_parameters_terminates(tmp_path, capsys):
    """sweeps 0.2.0 alone would propose the first point of a grid with nested parameters forever."""
    path, root = sweep_file(tmp_path, """\
        method: grid
        parameters:
          model:
            parameters:
              optim:
                parameters:
                  lr: {values: [0.1, 0.2]}
          seed_everything: {values: [0, 1]}
        """), tmp_path / "runs"
    assert len(engine.grid_points(load(path).engine_config)) == 4
    assert cli.main([str(path), "--runs-root", str(root)]) == 0
    got = sorted((r["params"]["model"]["optim"]["lr"], r["params"]["seed_everything"]) for r in toy_log(tmp_path))
    assert got == [(0.1, 0), (0.1, 1), (0.2, 0), (0.2, 1)]


@pytest.mark.slow  # the agent forks to start the run (the exec fails)
def test_a_command_that_cannot_start_is_a_failed_run(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text("method: grid\ncommand: [/nonexistent/program]\nparameters:\n  a: {values: [1, 2]}\n")
    assert cli.main([str(path), "--runs-root", str(tmp_path / "runs")]) == 1
    recs = records(tmp_path / "runs", path)
    assert [r["state"] for r in recs] == ["failed", "failed"] and recs[0]["exitcode"] == 127


def test_engine_runs_carry_history_and_summary():
    """Hyperband reads the history and bayes the summary of each run: both must reach the engine."""
    config = {"method": "bayes", "metric": {"name": "m", "goal": "maximize"}, "parameters": {"x": {"min": 0.0, "max": 1.0}}}
    rec = {"id": "r1", "state": "stopped", "config": {"x": {"value": 0.5}}, "summary": {"m": 2.0},
           "history": [{"m": 1.0}, {"m": 2.0}]}
    [run] = engine.engine_runs(config, [rec])
    assert run.metric_history("m") == [1.0, 2.0] and run.summary_metric("m") == 2.0
    assert run.state == "finished" and run.stopped


def test_an_unwritable_runs_root_is_one_line_before_anything_runs(tmp_path, capsys):
    """A runs root that cannot be made (here: under a file; read-only mounts and missing permissions fail
    the same way) is one line naming --runs-root, exit 2, and no run starts."""
    path = sweep_file(tmp_path, GRID)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    assert cli.main([str(path), "--runs-root", str(blocker / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("nlstudy sweep: --runs-root: cannot create the sweep's state in ")
    assert "Not a directory" in err and not toy_log(tmp_path)


SHARED = """\
method: grid
metric: {name: val/top1_best, goal: maximize}
parameters:
  table: {value: NAME}
  a: {values: [1, 2]}
"""


@pytest.mark.slow  # the agent starts a toy-run process
def test_a_config_running_in_another_sweep_is_not_run_twice(tmp_path, capsys):
    """Two sweeps plan a=1. When an agent reaches the second sweep, a=1 is still running in the first (under
    another agent, alive): it runs a=2 first, then waits, and when the first sweep's run finishes, that run
    stands in for a=1 here instead of the same run training twice."""
    first, second = (sweep_file(tmp_path, SHARED.replace("NAME", t), f"{t}.yaml") for t in ("t1", "t2"))
    root = tmp_path / "runs"
    sweep1 = load(first)
    state1 = SweepState(root, sweep1.default_id)
    state1.create(sweep1.text, {"source": str(first), "fingerprint": sweep1.fingerprint})
    config = engine.grid_points(sweep1.engine_config)[0]
    assert config["a"] == {"value": 1}
    state1.write({"id": "twin0001", "config": config, "state": "running", "created_at": now(), "heartbeat": now(),
                  "agent": this_agent("another-session"), "wandb_id": "twin0001",
                  "reuse_key": reuse_key(sweep1, config, cli.cores())})

    def finish_twin():  # the other agent's run ends 3 s later, as any run would
        time.sleep(3.0)
        (root / "wandb" / "offline-run-20261126_000000-twin0001").mkdir(parents=True)
        state1.update("twin0001", state="finished", exitcode=0, ended_at=now(), summary={"val/top1_best": 42.0})

    finisher = threading.Thread(target=finish_twin)
    finisher.start()
    try:
        assert cli.main([str(second), "--runs-root", str(root)]) == 0
    finally:
        finisher.join()
    out = capsys.readouterr().out
    assert [r["params"]["a"] for r in toy_log(tmp_path)] == [2]  # a=1 never ran here
    assert "waiting: what is left of" in out and "finished already as run twin0001" in out
    recs = {r["config"]["a"]["value"]: r for r in records(root, second)}
    assert recs[1]["state"] == "finished" and recs[1]["reused_from"] == "twin0001"
    assert recs[1]["wandb_id"] == "twin0001" and recs[1]["summary"] == {"val/top1_best": 42.0}
    assert recs[2]["state"] == "finished" and not recs[2].get("reused_from")


def test_the_time_left_counts_the_distinct_runs_left(tmp_path):
    """The progress line's estimate counts the runs that will train: two sweeps planning the same two configs
    are 2 runs, not 4, and 1 once one of them has finished in either sweep."""
    from nlstudy.sweep.options import Options
    from nlstudy.sweep.progress import Suite

    root = tmp_path / "runs"
    sweeps = [load(sweep_file(tmp_path, SHARED.replace("NAME", t), f"{t}.yaml")) for t in ("t1", "t2")]
    states = [SweepState(root, s.default_id) for s in sweeps]
    suite = Suite(list(zip(sweeps, states)), Options(runs_root=root, project="p", threads=1))
    assert suite.distinct_left(4) == 2
    config = engine.grid_points(sweeps[0].engine_config)[0]
    states[0].write({"id": "done0001", "config": config, "state": "finished", "created_at": now(), "duration_s": 10.0,
                     "exitcode": 0, "agent": this_agent("s"), "reuse_key": reuse_key(sweeps[0], config, 1)})
    assert suite.distinct_left(3) == 1
    assert "about 0:00:10 left" in suite.progress()  # one run of 10 s left, one agent


@pytest.mark.slow  # the agent starts toy-run processes
def test_a_sweep_whose_first_runs_fail_the_same_way_stops_and_runs_them_again_next_time(tmp_path, capsys):
    """Six runs that would all fail alike (say, a data root this machine lacks): the agent stops after the first
    three, says why in one line, and the next session runs those three again (the cause may be fixed)."""
    body = GRID.replace("fail: {values: [false, true]}", "fail: {value: true}\n  say: {value: 'error: data.video.root: /data does not exist'}")
    body = body.replace("a: {values: [1, 2, 3]}", "a: {values: [1, 2, 3, 4, 5, 6]}")
    path, root = sweep_file(tmp_path, body), tmp_path / "runs"
    assert cli.main([str(path), "--runs-root", str(root)]) == 1
    out = capsys.readouterr().out
    assert len(toy_log(tmp_path)) == 3
    stopped = [line for line in out.splitlines() if line.startswith("stopped:")]
    assert stopped == [f"stopped: the first 3 runs failed the same way (error: data.video.root: /data does not exist); "
                       f"the others would too. Fix that, then run the same command again: these 3 runs run again "
                       f"({stopped[0].rsplit('(', 1)[1]}"]
    recs = records(root, path)
    assert len(recs) == 3 and all(r["state"] == "failed" and r["retry"] for r in recs)
    assert cli.main([str(path), "--runs-root", str(root)]) == 1  # the next session: the three again first
    assert [r["params"]["a"] for r in toy_log(tmp_path)] == [1, 2, 3, 1, 2, 3]
    assert "stopped: the first 3 runs failed the same way" in capsys.readouterr().out


@pytest.mark.slow  # the agent starts toy-run processes
def test_runs_failing_in_different_ways_do_not_stop_the_sweep(tmp_path, capsys):
    body = GRID.replace("fail: {values: [false, true]}", "fail: {value: true}")
    body = body.replace("a: {values: [1, 2, 3]}", "a: {values: [1, 2, 3, 4]}\n  say: {values: [one, other]}")
    path, root = sweep_file(tmp_path, body), tmp_path / "runs"
    assert cli.main([str(path), "--runs-root", str(root)]) == 1
    assert len(toy_log(tmp_path)) == 8 and "stopped:" not in capsys.readouterr().out


def test_record_ids_follow_from_the_sweep_and_config_and_skip_ids_in_use():
    from nlstudy.sweep.state import ID_CHARS, record_id

    config = {"a": {"value": 1}, "seed_everything": {"value": 0}}
    first = record_id("swp12345", config, lambda i: False)
    assert len(first) == 8 and set(first) <= set(ID_CHARS)
    assert record_id("swp12345", dict(reversed(config.items())), lambda i: False) == first  # key order is not the config
    assert record_id("swp99999", config, lambda i: False) != first
    assert record_id("swp12345", {**config, "a": {"value": 2}}, lambda i: False) != first
    second = record_id("swp12345", config, lambda i: i == first)  # a retry of that run, or a wandb run left there
    assert second != first and record_id("swp12345", config, lambda i: i in {first, second}) not in {first, second}


@pytest.mark.slow  # the agent starts toy-run processes
def test_the_same_sweep_file_names_its_runs_the_same_in_a_fresh_runs_root(tmp_path, capsys):
    """A fresh clone's `make demo` reproduces the per-seed tables (`<table>_runs.csv`, which publish run ids)
    byte for byte only if the agent names the runs as before."""
    path = sweep_file(tmp_path, GRID)
    ids = []
    for name in ("one", "two"):
        cli.main([str(path), "--runs-root", str(tmp_path / name), "--project", "toyproj"])
        ids.append(sorted((json.dumps(r["config"], sort_keys=True), r["id"], r["wandb_id"])
                          for r in records(tmp_path / name, path)))
    capsys.readouterr()
    assert ids[0] == ids[1] and len({i for _, i, _ in ids[0]}) == 6
