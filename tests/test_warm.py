"""Warm starts (nlstudy.warm, nlstudy.lit.worker): a run forked from the worker gets the client's command line,
environment, working directory and streams, ends with the client as it ended, gets the signals the client gets,
and dies when the client is killed; without a worker the client starts the command cold.

The worker runs here without its imports (--no-preload), so these tests take a second or two; the sweep tests
(tests/test_sweep_real.py, tests/test_sweep_resume.py) run real training warm."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TOY = Path(__file__).parent / "fixtures" / "sweep" / "toy_run.py"


@pytest.fixture
def worker(tmp_path):
    sock = tmp_path / "socket"
    proc = subprocess.Popen([sys.executable, "-m", "nlstudy.lit.worker", str(sock), "--no-preload"])
    deadline = time.monotonic() + 30
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    yield sock, proc
    proc.kill()
    proc.wait()


def client(sock, *args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nlstudy.warm", str(sock), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_a_warm_run_ends_as_it_ended_with_the_clients_streams(worker, tmp_path):
    sock, proc = worker
    run = client(sock, "no-such-command", cwd=tmp_path)
    out, err = run.communicate(timeout=30)
    assert run.returncode == 2 and err.startswith("nlstudy: error: unknown command 'no-such-command'")
    assert "\nusage: nlstudy {fit,validate,test,sweep,report,check}" in err
    run = client(sock, "--help")
    out, err = run.communicate(timeout=30)
    assert run.returncode == 0 and out.startswith("usage: nlstudy") and not err


def test_without_a_worker_the_run_starts_cold(tmp_path):
    run = client(tmp_path / "no-socket", "no-such-command")
    _, err = run.communicate(timeout=60)
    assert run.returncode == 2 and err.startswith("nlstudy: error: unknown command 'no-such-command'")


@pytest.mark.slow  # an inner sweep agent and its toy run
def test_signals_reach_the_run_and_a_killed_client_kills_it(worker, tmp_path):
    """The run is `nlstudy sweep` over a toy run that hangs: Ctrl-C to the client stops it as Ctrl-C would
    (exit 130, its environment and working directory were the client's); SIGKILL to the client kills it."""
    sock, proc = worker
    sweep = tmp_path / "hang.yaml"
    sweep.write_text(f"command: [python, {TOY}, '${{args_json_file}}']\nmethod: grid\n"
                     "parameters:\n  hang: {values: [true]}\n")
    env = dict(os.environ, TOY_HANG="1", TOY_LOG=str(tmp_path / "toy.jsonl"))
    for how in ("interrupt", "kill"):
        run = client(sock, "sweep", str(sweep), "--runs-root", f"runs-{how}", cwd=tmp_path, env=env)
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(f"runs-{how}/sweeps/*/runs/*/output.log")) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the toy run is hanging now
        [forked] = children(proc.pid)
        if how == "interrupt":
            run.send_signal(signal.SIGINT)
            out, _ = run.communicate(timeout=60)
            assert run.returncode == 130 and "run the same command again to resume" in out
        else:
            run.kill()
            run.wait(timeout=30)
            deadline = time.monotonic() + 30
            while Path(f"/proc/{forked}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
                children(proc.pid)  # lets the test see the worker reap it
        assert not Path(f"/proc/{forked}").exists() or Path(f"/proc/{forked}/stat").read_text().split()[2] == "Z"
        assert (tmp_path / f"runs-{how}").is_dir()  # the run worked in the client's directory
