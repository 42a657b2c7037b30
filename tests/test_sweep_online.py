"""`--online` hands the same file to W&B's server and agents unchanged. No W&B server is reachable
here, so these tests stop at the calls: the sweep creation and the `wandb agent` commands."""

from pathlib import Path

from nlstudy.sweep import cli, online
from nlstudy.sweep.spec import load

ROOT = Path(__file__).parent.parent
DEMO_2A = ROOT / "sweeps" / "demo" / "2a_pairwise.yaml"


class FakeProc:
    def __init__(self, argv, env):
        self.argv, self.env = argv, env

    def wait(self):
        return 0


def test_online_creates_the_sweep_and_starts_wandb_agents():
    sweep = load(DEMO_2A)
    created, started, lines = [], [], []

    def create(s, project, entity):
        created.append((s.config, project, entity))
        return "abc123xy"

    def start(argv, env):
        started.append(FakeProc(argv, env))
        return started[-1]

    code = online.run([sweep], project="nl", entity="me", sweep_id=None, count=5, jobs=2, threads=3,
                      out=lines.append, create_sweep=create, start=start)
    assert code == 0
    assert created == [(sweep.config, "nl", "me")]  # the file's config, verbatim
    assert [p.argv for p in started] == [["wandb", "agent", "--count", "5", "me/nl/abc123xy"]] * 2
    assert all(p.env["WANDB_MODE"] == "online" and p.env["NLSTUDY_NUM_THREADS"] == "3" for p in started)
    assert "wandb sweep --project nl --entity me" in lines[0]


def test_online_rejoins_a_sweep_id_and_says_what_to_run_when_wandb_is_unreachable():
    sweep = load(DEMO_2A)
    started, lines = [], []
    online.run([sweep], project="nl", entity=None, sweep_id="given123", count=None, jobs=1, threads=1,
               out=lines.append, create_sweep=None, start=lambda argv, env: started.append(argv) or FakeProc(argv, env))
    assert started == [["wandb", "agent", "nl/given123"]]

    def refuse(*a):
        raise RuntimeError("api_key not configured (no-tty)")

    lines.clear()
    code = online.run([sweep], project="nl", entity=None, sweep_id=None, count=None, jobs=1, threads=1,
                      out=lines.append, create_sweep=refuse, start=None)
    assert code == 1
    assert lines[-1] == (f"nlstudy sweep: --online: cannot create the sweep on W&B (api_key not configured (no-tty)); "
                         f"by hand: wandb sweep --project nl {DEMO_2A}")


def test_online_validates_first(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: gird\nparameters: {a: {values: [1]}}\n")
    assert cli.main([str(bad), "--online"]) == 2
    assert "unknown method 'gird'; valid choices: 'grid', 'random', 'bayes'" in capsys.readouterr().err
