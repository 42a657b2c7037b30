"""The local agent under faults people cause (issue 22): a huge grid (case 7: `nlstudy sweep` on a grid of 10^6
points with `--count 1` ends once its run has; nothing the agent does, the engine's proposals or the progress
line, may cost more than the runs done; before, the progress line expanded the whole grid: minutes, past
2 GB), and the terminal closing under `--jobs`. The runs are toy runs (tests/fixtures/sweep/toy_run.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nlstudy.sweep import engine
from nlstudy.sweep.spec import load
from nlstudy.sweep.state import SweepState

ROOT = Path(__file__).resolve().parents[1]
TOY = ROOT / "tests" / "fixtures" / "sweep" / "toy_run.py"
# the agent's peak resident memory, measured by a parent of its own (RUSAGE_CHILDREN of this process would
# count every child an earlier test started)
MEASURED = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024); sys.exit(code)")


@pytest.mark.slow  # `nlstudy sweep` and one toy run in subprocesses: a few seconds
def test_a_grid_of_a_million_points_with_count_1_ends_after_its_run(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text(textwrap.dedent(f"""\
        method: grid
        command: [python, {TOY}, "${{args_json_file}}"]
        parameters:
          a: {{min: 1, max: 1000}}
          b: {{values: [{", ".join(str(i) for i in range(1000))}]}}
        """))
    env = dict(os.environ, TOY_LOG=str(tmp_path / "toy.jsonl"))
    env.pop("NLSTUDY_RUNS_DIR", None)
    # a bound, not a speed target: it took 8 minutes before (the agent's own work: its run took a second)
    proc = subprocess.run([sys.executable, "-c", MEASURED, sys.executable, "-m", "nlstudy", "sweep", str(path),
                           "--count", "1", "--runs-root", str(tmp_path / "runs")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    *lines, peak_mb = proc.stdout.strip().splitlines()
    assert any("grid, 1000000 run(s)" in line for line in lines) and "agent done: 1/1000000 runs done" in lines[-1], lines
    assert int(peak_mb) < 600, f"peak resident memory {peak_mb} MB"  # about 130 MB measured; 2.2 GB before
    assert len((tmp_path / "toy.jsonl").read_text().splitlines()) == 1


GRIDS = [
    {"a": {"values": [1, 2, 3]}, "b": {"values": ["x", "y"]}},
    {"i": {"min": 2, "max": 5}, "q": {"min": 0.0, "max": 1.0, "q": 0.25, "distribution": "q_uniform"},
     "c": {"value": 7}},
    {"model.backbone": {"values": [{"nonlocal_blocks": "none"}, {"nonlocal_blocks": {"res3": [1]}, "nl": {"mode": "time"}}]},
     "nest": {"parameters": {"lr": {"values": [0.1, 0.01]}, "wd": {"value": 0.0}}},
     "seed_everything": {"values": [0, 1]}},
]


@pytest.mark.parametrize("parameters", GRIDS, ids=["categorical", "int-q-constant", "nested"])
def test_walking_a_grid_lazily_proposes_what_the_engine_proposes(parameters):
    """next_grid_point against the `sweeps` engine, point by point to the end of the grid; then with each point
    left out of the runs so far, in another order (a point deferred or never run)."""
    config = {"method": "grid", "parameters": parameters}
    records: list[dict] = []
    while (expected := engine.propose(config, records)) is not None:  # a small grid: the sweeps engine itself
        assert engine.next_grid_point(config, records) == expected
        records.append({"id": f"r{len(records)}", "config": expected, "state": "finished"})
    assert engine.next_grid_point(config, records) is None and len(records) == engine.grid_size(config)
    for k, left_out in enumerate(records):
        others = [r for r in records if r is not left_out][::-1]
        assert engine.next_grid_point(config, others) == engine.propose(config, others) == left_out["config"]


@pytest.mark.slow  # `nlstudy sweep --jobs 2` and toy runs in subprocesses
def test_sighup_to_a_sweep_of_two_jobs_stops_each_run_once_and_the_sweep_resumes(tmp_path):
    """The terminal closes (SIGHUP to the command; its agents run in a session of their own and get it once,
    from it): exit 129, each run stopped as by Ctrl-C (killed, to be retried: not SIGKILLed by a second
    signal), no process left; the same command then finishes the sweep. Before, the command died of the
    signal at once and its agents went on without it."""
    path = tmp_path / "hup.yaml"
    path.write_text(textwrap.dedent(f"""\
        method: grid
        command: [python, {TOY}, "${{args_json_file}}"]
        parameters:
          hang: {{value: true}}
          a: {{values: [1, 2]}}
        """))
    root = tmp_path / "runs"
    env = dict(os.environ, TOY_LOG=str(tmp_path / "toy.jsonl"), TOY_HANG="1")
    env.pop("NLSTUDY_RUNS_DIR", None)
    state = SweepState(root, load(path).default_id)
    proc = subprocess.Popen([sys.executable, "-m", "nlstudy", "sweep", str(path), "--jobs", "2", "--runs-root",
                             str(root)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (
            state.exists() and sum(r["state"] == "running" for r in state.records()) == 2):
        time.sleep(0.1)
    runs = [r["pid"] for r in state.records()]
    proc.send_signal(signal.SIGHUP)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 129, out
    recs = state.records()
    assert [r["state"] for r in recs] == ["killed", "killed"] and all(r["retry"] for r in recs), recs
    assert all(r["exitcode"] != -signal.SIGKILL for r in recs), recs
    assert not any(Path(f"/proc/{pid}").exists() for pid in runs)
    env.pop("TOY_HANG")
    again = subprocess.run([sys.executable, "-m", "nlstudy", "sweep", str(path), "--jobs", "2", "--runs-root",
                            str(root)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert sorted(r["state"] for r in state.records()) == ["finished", "finished", "killed", "killed"]


@pytest.mark.slow  # starts two sleeping processes as W&B's agents
def test_sigterm_to_an_online_sweep_reaches_its_wandb_agents(tmp_path):
    """`nlstudy sweep --online` waits on its `wandb agent` processes; SIGTERM to the command alone (not its
    process group) is passed on to them, instead of leaving them running without it."""
    import threading

    from nlstudy import interrupts
    from nlstudy.sweep import online

    sweep = load(ROOT / "sweeps" / "demo" / "2a_pairwise.yaml")
    agents: list[subprocess.Popen] = []

    def start(argv, env):
        agents.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"]))
        return agents[-1]

    threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
    with pytest.raises(interrupts.Interrupted), interrupts.raising():
        online.run([sweep], project="p", entity=None, sweep_id="abc123xy", count=None, jobs=2, threads=1,
                   out=lambda line: None, start=start)
    assert [a.poll() for a in agents] == [-signal.SIGTERM] * 2
