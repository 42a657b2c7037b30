"""The core of a run: `run(config)` takes a resolved configuration (what `nlstudy fit` parsed: model, data,
trainer, seed and resume settings, as the CLI's Namespace or a plain nested dict of it), builds the datamodule,
the model, the Trainer with nlstudy's callbacks and the logger from it (`build`), reads the data, fits, tests the
final model (`test_after_fit`, default true, so one run holds val and test), keeps the run's record (its config,
facts, metrics and files: nlstudy.lit.record, nlstudy.lit.callbacks) and returns a `TrainResult`.

`nlstudy fit|validate|test` (nlstudy.lit.entry.train_main) and `nlstudy.train` parse into such a configuration
with `NLStudyCLI` and hand it here with the parser that read it; a dict without a parser is read by the same
parser (defaults filled in, every key and value checked). Bad keys and values fail in one line (UsageError)
before anything trains or logs. An error or interrupt during the run propagates: the callers end the run
failed or killed (nlstudy.lit.ending).
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import yaml
from jsonargparse import Namespace
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from nlstudy import keys
from nlstudy.adapters.lightning import given_hyperparameters
from nlstudy.data import ClipDataModule
from nlstudy.errors import UsageError
from nlstudy.lit.callbacks import RunCheckpoint, RunFacts, RunProgress, SaveWeights, SweepBridge
from nlstudy.lit.cli import NLStudyCLI
from nlstudy.lit.ending import ended_line
from nlstudy.lit.machine import check_machine, check_trainer_names, trainer_error_line
from nlstudy.lit.messages import argument_error_line
from nlstudy.lit.module import VideoClassifier
from nlstudy.lit.record import LogConfig

def run_callbacks(subcommand: str | None, save_weights: bool, save_checkpoints: bool = True,
                  progress: bool = True) -> list[pl.Callback]:
    """The callbacks every run gets besides the user's: its facts and performance, the sweep agent's
    files, its progress (`RunProgress`, unless `progress` is false: `progress_settings`), and for fit its
    weights (unless save_weights is false) and its checkpoint for --resume (unless save_checkpoints is false:
    the CLI passes false too when the config disables checkpointing or has its own ModelCheckpoint)."""
    fit = subcommand == "fit"
    keep = [SaveWeights()] if fit and save_weights else []
    checkpoint = [RunCheckpoint()] if fit and save_checkpoints else []
    bar = [RunProgress()] if progress else []
    return [RunFacts(), SweepBridge(), *bar, *keep, *checkpoint]


def progress_settings(settings: Namespace) -> bool:
    """Whether a run gets `RunProgress`: not when `trainer.enable_progress_bar` is false (Lightning refuses a bar
    then) or `trainer.callbacks` has a progress bar of its own."""
    trainer = settings.get("trainer") or Namespace()
    return trainer.get("enable_progress_bar") is not False and not has_callback(trainer.get("callbacks"), ProgressBar)


def has_model_checkpoint(callbacks: Any) -> bool:
    """Whether a `trainer.callbacks` setting (parsed, not instantiated) holds a ModelCheckpoint."""
    return has_callback(callbacks, ModelCheckpoint)


def has_callback(callbacks: Any, kind: type) -> bool:
    """Whether a `trainer.callbacks` setting (parsed, not instantiated) holds a callback of class `kind`."""
    for callback in callbacks if isinstance(callbacks, list) else [callbacks] if callbacks else []:
        if isinstance(callback, kind):
            return True
        class_path = callback.get("class_path") if isinstance(callback, (Namespace, dict)) else None
        module, _, name = (class_path or "").rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name) if module else None
        except (ImportError, AttributeError):  # the parser has rejected such a class already
            continue
        if isinstance(cls, type) and issubclass(cls, kind):
            return True
    return False


def checkpoint_settings(settings: Namespace) -> bool:
    """Whether a fit run gets its RunCheckpoint: `save_checkpoints` (default true), unless
    `trainer.enable_checkpointing` is false or `trainer.callbacks` has a ModelCheckpoint of its own (that
    one is kept instead, where it says). With save_checkpoints false and no ModelCheckpoint configured,
    `trainer.enable_checkpointing` is set false, so Lightning adds no default one either (and the logged
    config says so)."""
    trainer = settings.get("trainer") or Namespace()
    if has_model_checkpoint(trainer.get("callbacks")):
        return False
    if not settings.get("save_checkpoints", True):
        trainer.enable_checkpointing = False
        return False
    return trainer.get("enable_checkpointing") is not False



@dataclass(frozen=True)
class TrainResult:
    """What `run` (and `nlstudy.train`) returns: the run's wandb directory (`<runs dir>/wandb/offline-run-<time>-<id>`
    offline; None without a wandb logger), its id, the final status of the Trainer ("finished", or
    "interrupted" when stopped early) and the run's summary (the last value of every logged metric:
    val/top1_best, test/top1, perf/wall_s, ...)."""

    run_dir: Path | None
    run_id: str | None
    status: str
    summary: dict[str, Any]


@dataclass(frozen=True)
class Built:
    """What `build` makes of a configuration."""

    model: VideoClassifier
    datamodule: ClipDataModule
    trainer: pl.Trainer


def resolve(config: Namespace | Mapping[str, Any], command: str = "fit", *,
            runs_dir: str | os.PathLike | None = None) -> tuple[Namespace, LightningArgumentParser]:
    """`config` (a resolved configuration, or any part of one: the rest is the defaults) read by `nlstudy
    <command>`'s parser: (its settings, the parser). A bad key or value is a UsageError."""
    tree = config.as_dict() if isinstance(config, Namespace) else dict(config)
    cli = NLStudyCLI(args={"subcommand": command, command: tree}, runs_dir=runs_dir)
    return cli.settings(), cli.parser_of(cli.command)


def instantiate(settings: Namespace, parser: LightningArgumentParser, given: Namespace | None = None) -> Namespace:
    """The classes of `settings` instantiated, the model recording its settings as the config holds them (plain
    data: what its checkpoints keep as `hyper_parameters`, read back with weights_only=True), as LightningCLI
    instantiates them (from `given`, `settings` with the runs found: `init_run_found`). A bad value is a
    UsageError."""
    dumped: dict[str, Any] = {}

    def model(class_type: type, *args: Any, applied_instantiation_links: dict, **kwargs: Any) -> Any:
        if not dumped:
            dumped.update(yaml.safe_load(parser.dump(settings, skip_link_targets=False, skip_unset=False)))
        hparams = dict(dumped.get("model") or {})
        for key, value in applied_instantiation_links.items():  # data.num_classes -> model.backbone.num_classes
            if key.startswith("model."):
                *path, name = key.removeprefix("model.").removeprefix("init_args.").split(".")
                node = hparams
                for part in path:
                    node = node[part]
                node[name] = value
        with given_hyperparameters(hparams):
            return class_type(*args, **kwargs)

    try:
        return parser.instantiate(settings if given is None else given, instantiators=[(model, VideoClassifier, False)])
    except (ValueError, TypeError, KeyError) as e:
        raise UsageError(argument_error_line(e)) from None


def init_run_found(settings: Namespace, runs_dir: str | os.PathLike | None) -> Namespace:
    """`settings` to instantiate: with `model.init_from` a run id and `runs_dir` given, that run's directory
    under `runs_dir` in its place (the model looks an id up under $NLSTUDY_RUNS_DIR, else ./runs). The
    configuration logged keeps the id."""
    run = settings.get("model.init_from")
    if runs_dir is None or not run or Path(run).is_dir():
        return settings
    try:
        found = keys.find_run(run, runs_dir)
    except FileNotFoundError as e:
        raise UsageError(f"{keys.INIT_FROM}: {e}") from None
    settings = settings.clone()
    settings["model.init_from"] = str(found)
    return settings


def build(settings: Namespace, parser: LightningArgumentParser, command: str | None = "fit",
          callbacks: Sequence[pl.Callback] = (), runs_dir: str | os.PathLike | None = None) -> Built:
    """The datamodule, model and Trainer of `command`'s resolved `settings` (read by `parser`): the Trainer with
    the configured callbacks, then the run's own (`run_callbacks`), then `callbacks`, then `LogConfig` (which
    logs the configuration when the Trainer sets up), once its settings are known to suit this machine
    (`check_machine`: a config that asks for a GPU on a machine without one fails in one line here, before the
    data is read). `runs_dir`: where a run id in `model.init_from` is looked up (`init_run_found`)."""
    for key in ("optimizer", "lr_scheduler"):  # LightningCLI's own optimiser keys: nlstudy's are model.optim.*
        if settings.get(key) is not None:
            raise UsageError(f"{key}: not used; set the optimiser and its schedule with model.optim.* "
                             "(name: sgd or adamw; schedule: step, cosine or constant)")
    save_checkpoints = command == "fit" and checkpoint_settings(settings)
    ours = run_callbacks(command, settings.get("save_weights", True), save_checkpoints, progress_settings(settings))
    built = instantiate(settings, parser, init_run_found(settings, runs_dir))
    trainer_settings = settings.get("trainer") or Namespace()
    check_trainer_names(trainer_settings)
    check_machine(trainer_settings)
    config = {**(built.get("trainer") or {})}
    given = config.get("callbacks")
    config["callbacks"] = [*(given if isinstance(given, list) else [given] if given else []),
                           *(built.get(key) for key in parser.callback_keys), *ours, *callbacks]
    if not config.get("fast_dev_run", False):
        config["callbacks"].append(LogConfig(parser, settings, save_to_log_dir=False))
    try:
        trainer = pl.Trainer(**config)
    except (MisconfigurationException, ValueError, TypeError, ImportError) as e:
        raise UsageError(trainer_error_line(e)) from None
    if runs_dir is not None:  # the clip cache goes under the run's runs dir too, not $NLSTUDY_RUNS_DIR's
        built.data.runs_dir = Path(runs_dir)
    return Built(model=built.model, datamodule=built.data, trainer=trainer)


def prepare(datamodule: ClipDataModule, stage: str) -> None:
    """Read the data (a missing dataset root fails here, in one line) before the run starts logging."""
    try:
        datamodule.setup(stage)
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(argument_error_line(e)) from None


def method_arguments(command: str, settings: Namespace) -> dict[str, Any]:
    """The settings that are arguments of `Trainer.<command>` itself (ckpt_path, weights_only, ...)."""
    skip = LightningCLI.subcommands()[command]
    names = [n for n in inspect.signature(getattr(pl.Trainer, command)).parameters if n != "self" and n not in skip]
    return {n: settings[n] for n in names if n in settings}


def run(config: Namespace | Mapping[str, Any], *, command: str = "fit", parser: LightningArgumentParser | None = None,
        runs_dir: str | os.PathLike | None = None, say_done: bool = False,
        callbacks: Sequence[pl.Callback] = ()) -> TrainResult:
    """One run of `command` (fit, validate or test) from its resolved configuration `config` (read by `parser`;
    without one, `config` is read by nlstudy's: see `resolve`, and `runs_dir` says where the default logger
    puts the run). `runs_dir` is also where a run id in `model.init_from` is looked up; `callbacks` come after
    the run's own (see `build`). Seeds (`seed_everything`), builds (`build`), reads the data, runs, and for fit
    tests the final model unless `test_after_fit` is false; the wandb run then finishes, after its last line
    (`nlstudy <command>: run ... done`, printed when `say_done`, into the run's log too)."""
    import wandb

    if parser is None:
        config, parser = resolve(config, command, runs_dir=runs_dir)
    settings = config
    seed = settings.get("seed_everything")
    if seed is not False and seed is not None:  # NLStudyCLI has seeded already (and says so): the same state again
        settings.seed_everything = pl.seed_everything(None if seed is True else seed, workers=True, verbose=False)
    built = build(settings, parser, command, callbacks, runs_dir)
    prepare(built.datamodule, command)
    trainer = built.trainer
    getattr(trainer, command)(built.model, datamodule=built.datamodule, **method_arguments(command, settings))
    if command == "fit" and settings.get("test_after_fit", True):
        # the final model, as the paper evaluates it (and as files/weights/final.pt holds it); periodic
        # checkpoints are for resuming, and the newest of them may be steps behind the final weights
        trainer.test(built.model, datamodule=built.datamodule)
    status = trainer.state.status.value
    record = wandb.run
    if record is None:
        return TrainResult(run_dir=None, run_id=None, status=status, summary={})
    result = TrainResult(run_dir=Path(record.dir).parent, run_id=record.id, status=status,
                         summary={k: record.summary.get(k) for k in record.summary.keys() if not k.startswith("_")})
    if say_done and status == "finished":
        print(ended_line(command, result), flush=True)
    wandb.finish()
    return result
