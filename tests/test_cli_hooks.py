"""The training CLI's behaviours, each through LightningCLI's public hooks (no private Lightning or
jsonargparse attribute is read or overridden): the run's own callbacks, the logged config, the one-line
errors and `nlstudy check`'s parse-and-build without a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pytorch_lightning.loggers import Logger

from nlstudy import keys
from nlstudy.errors import UsageError
from nlstudy.lit.callbacks import RunCheckpoint, RunFacts, RunProgress, SaveWeights, SweepBridge
from nlstudy.lit.check import CheckCLI, warm_up
from nlstudy.lit.messages import argument_error_line
from nlstudy.lit.record import LogConfig
from nlstudy.lit.train import checkpoint_settings, run_callbacks

pytestmark = pytest.mark.filterwarnings("ignore:LightningCLI's args parameter:UserWarning")
ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "experiments" / "demo.yaml")


def kinds(callbacks) -> list[type]:
    return [type(c) for c in callbacks]


def test_every_run_gets_its_facts_and_sweep_callbacks_and_fit_keeps_its_weights_and_checkpoint():
    assert kinds(run_callbacks("fit", save_weights=True)) == [RunFacts, SweepBridge, RunProgress, SaveWeights,
                                                               RunCheckpoint]
    assert kinds(run_callbacks("fit", save_weights=False)) == [RunFacts, SweepBridge, RunProgress, RunCheckpoint]
    assert kinds(run_callbacks("fit", True, save_checkpoints=False)) == [RunFacts, SweepBridge, RunProgress, SaveWeights]
    assert kinds(run_callbacks("test", save_weights=True)) == [RunFacts, SweepBridge, RunProgress]  # nothing kept
    assert kinds(run_callbacks("fit", False, False, progress=False)) == [RunFacts, SweepBridge]
    first, second = run_callbacks("fit", True), run_callbacks("fit", True)
    assert all(a is not b for a, b in zip(first, second))  # fresh state for every run


def test_the_run_checkpoint_gives_way_to_a_configured_one_and_to_checkpointing_off(checked, tmp_path):
    cli, _ = checked
    mine = "--trainer.callbacks+=pytorch_lightning.callbacks.ModelCheckpoint"
    for args, expected, enabled in [  # each after --trainer.enable_checkpointing=true (demo.yaml turns it off)
        ([], True, True),
        (["--save_checkpoints=false"], False, False),  # no RunCheckpoint and no Lightning default one either
        ([mine], False, True),  # the configured ModelCheckpoint writes where it says
        ([mine, "--save_checkpoints=false"], False, True),
    ]:
        cli.check(["fit", "--config", DEMO, "--trainer.enable_checkpointing=true", *args])
        settings = cli.config.fit
        assert checkpoint_settings(settings) is expected, args
        assert settings.trainer.enable_checkpointing is enabled, args
    cli.check(["fit", "--config", DEMO])  # experiments/demo.yaml: trainer.enable_checkpointing: false
    assert checkpoint_settings(cli.config.fit) is False
    config = tmp_path / "resume.yaml"
    config.write_text("resume: abc\n")
    with pytest.raises(UsageError, match="^resume: a config file cannot resume a run"):
        cli.check(["fit", "--config", DEMO, "--config", str(config)])


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """One CheckCLI over the demo config (building the parser is the slow part), with runs pointed at a
    temporary folder so that anything it logged would show."""
    runs = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(keys.RUNS_ENV, str(runs))
        cli = CheckCLI(["fit", "--config", DEMO])
    return cli, runs


def test_check_parses_and_builds_without_a_trainer_or_a_run(checked):
    cli, runs = checked
    assert cli.subcommand == "fit" and cli.config.fit.model.backbone.arch == "c2d"
    assert not hasattr(cli, "trainer")  # the before_fit hook stopped it before the Trainer was made
    assert not any(runs.iterdir())  # nothing logged


def test_check_reuses_its_parser_and_reports_a_bad_value_in_one_line(checked, tmp_path):
    cli, _ = checked
    cli.check(["fit", "--config", DEMO, "--model.backbone.nonlocal_blocks=res4"])
    assert cli.config.fit.model.backbone.nonlocal_blocks == "res4"
    values = tmp_path / "values.json"
    values.write_text(json.dumps({"table": 5}))
    with pytest.raises(UsageError) as err:
        cli.check(["fit", "--config", DEMO, "--config", str(values)])
    # jsonargparse's Union error, read into one line (pins the layout argument_error_line reads)
    assert str(err.value) == 'Parser key "table": expected str or null; given value: 5'
    with pytest.raises(UsageError, match="model.backbone.nonlocal_blocks preset '7-block'; valid choices"):
        cli.check(["fit", "--config", DEMO, "--model.backbone.nonlocal_blocks=7-block"])


def test_an_unknown_error_layout_still_gives_one_line_naming_the_key():
    error = ValueError('Parser key "model.x":\n  Some future wording\n    - the innermost reason is not kept here')
    line = argument_error_line(error)
    assert "\n" not in line and line.startswith('Parser key "model.x":')


class Recorder(Logger):
    """A logger that keeps what it is given."""

    def __init__(self):
        super().__init__()
        self.params: dict = {}

    @property
    def name(self):
        return "recorder"

    @property
    def version(self):
        return 0

    def log_hyperparams(self, params, *args, **kwargs):
        self.params.update(params)

    def log_metrics(self, metrics, step=None):
        pass


class FakeTrainer:
    def __init__(self, logger):
        self.logger = logger


def test_the_config_is_logged_flat_without_plumbing_keys(checked):
    cli, _ = checked
    cli.check(["fit", "--config", DEMO, "--model.backbone.nonlocal_blocks={res3: [1], res4: [0, 1]}", "--table=t1"])
    logger = Recorder()
    LogConfig(cli.parser, cli.config.fit, save_to_log_dir=False).save_config(FakeTrainer(logger), None, "fit")
    logged = logger.params
    assert logged[keys.NONLOCAL_BLOCKS] == {"res3": [1], "res4": [0, 1]} and logged[keys.TABLE] == "t1"
    assert logged[keys.ARCH] == "c2d" and keys.SEED in logged and "trainer.max_epochs" in logged
    assert not [k for k in logged if k == "config" or k.startswith(("trainer.logger", "trainer.callbacks", "ckpt_path"))]


def test_a_run_builds_the_parser_of_its_own_subcommand_only(monkeypatch):
    """A run's CLI builds its own subcommand's parser only (each of LightningCLI's four introspects the Trainer,
    model and data anew); the check's CLI keeps every one, since one parser judges fit, validate and test
    commands; the warm-up a worker does before forking runs parses without instantiating anything."""
    from pytorch_lightning.cli import LightningCLI

    from nlstudy.lit import cli as lit_cli

    every = set(LightningCLI.subcommands())
    built = []

    def parsed(self):  # the command parsed: stop before anything is instantiated
        built.append(set(self.subcommands()))
        raise SystemExit(0)

    monkeypatch.setattr(lit_cli.NLStudyCLI, "instantiate_classes", parsed)
    for subcommand in ("fit", "validate", "test"):
        with pytest.raises(SystemExit):
            lit_cli.NLStudyCLI(args=[subcommand, "--config", DEMO])
    assert built == [{"fit"}, {"validate"}, {"test"}]
    monkeypatch.undo()
    check = CheckCLI(["fit", "--config", DEMO])
    assert set(check.subcommands()) == every
    check.check(["validate", "--config", DEMO])  # the same parser judges another subcommand
    warm_up()
    warm_up("test")
