"""The training CLI: LightningCLI over `VideoClassifier` and `ClipDataModule`.

Every run logs to wandb through Lightning's WandbLogger (offline unless WANDB_MODE=online), its run
directory under $NLSTUDY_RUNS_DIR (default ./runs). The run's config is the whole resolved configuration
flattened to the dotted keys the CLI and the sweep files use, plus `table` and the derived facts.
`fit` tests the final model afterwards (--test_after_fit, default true) so one run holds val and test.
Bad keys and values fail in one line before anything trains or logs.

A fit run keeps its resolved config (files/nlstudy_config.yaml), its weights (files/weights/, for the
analysis) and a checkpoint (files/checkpoints/last.ckpt, overwritten every epoch) in its wandb run
directory. `nlstudy fit --resume RUN` (a run directory or id) continues it from that checkpoint under the
same wandb run id, with the same configuration unless overridden by the arguments that follow:

    nlstudy fit --resume 3fwyqf9b                       # continue an interrupted run
    nlstudy fit --resume runs/demo/wandb/offline-run-20261125_182526-3fwyqf9b --trainer.max_epochs=16

Offline, wandb writes a resumed run into a new directory (`offline-run-<time>-<same id>`) that holds the
epochs after the checkpoint and the final summary.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml
from jsonargparse import ArgumentError, Namespace, lazy_instance
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities.exceptions import MisconfigurationException, SIGTERMException

from nlstudy import files, interrupts, keys
from nlstudy.data import ClipDataModule
from nlstudy.errors import UsageError, one_line, yaml_problem
from nlstudy.lit.callbacks import RunCheckpoint, RunFacts, RunProgress, SaveWeights, SweepBridge, shown_path
from nlstudy.lit.module import VideoClassifier
from nlstudy.lit.machine import (FULL_PRECISION, GPU_ACCELERATORS, MACHINE_KEYS, TRAINER_KEYS,  # noqa: F401
                                   MachineError, check_machine, check_trainer_names, cpu_arguments, requested_devices,
                                   trainer_error_line)
from nlstudy.lit.messages import (LITERAL_CHOICES, UNKNOWN_ARGUMENT, UNKNOWN_OPTION, argument_error_line,  # noqa: F401
                                    config_file_problem, config_files, literal_choices, parse_error_line, type_names)
from nlstudy.models.weights import load_weights
from nlstudy.provenance import provenance

# trainer/CLI keys that are plumbing, not part of an experiment's identity
NOT_LOGGED = ("config", "trainer.logger", "trainer.callbacks", "ckpt_path", "trainer.default_root_dir", "optimizer",
              "lr_scheduler", "weights_only", "resume")


def default_logger() -> WandbLogger:
    return lazy_instance(
        WandbLogger,
        save_dir=keys.default_runs_root(),
        project=os.environ.get("WANDB_PROJECT", "nlstudy"),
        offline=os.environ.get("WANDB_MODE", "offline") != "online",
        log_model=False,
    )


def flat_config(config: Namespace) -> dict[str, Any]:
    """The resolved config as {dotted key: JSON-able value}, without plumbing keys."""
    flat = keys.flatten(json.loads(json.dumps(config.as_dict(), default=str)))
    for key in list(flat):
        if any(key == p or key.startswith(p + ".") for p in NOT_LOGGED):
            del flat[key]
    return flat


def resolved_key(subcommand: str | None, settings: Namespace) -> str:
    """What makes two runs of this CLI the same run: the subcommand and every resolved setting (defaults,
    config files and arguments merged: `flat_config`) except ``table`` and ``report.*``, which only file a run
    under a table and say how that table compares its rows.
    `{nonlocal_blocks: 1-block}` and `{nonlocal_blocks: 1-block, nl: {pairwise: embedded_gaussian}}` (the
    default) give one key; any setting that differs, the seed included, gives another. `nlstudy check`
    reports it for every run a sweep plans (``nlstudy.sweep.agent.reuse_key``)."""
    flat = {k: v for k, v in flat_config(settings).items() if k != keys.TABLE and not k.startswith(keys.REPORT)}
    text = json.dumps([subcommand, flat], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# what `nlstudy fit --resume` adds to a run's configuration: left out of the YAML a run keeps, so that
# `nlstudy fit --config <a resumed run's nlstudy_config.yaml>` starts a new run, as for any other run
RESUME_KEYS = ("ckpt_path", "trainer.logger.init_args.id", "trainer.logger.init_args.version")


def rerunnable(config: Namespace) -> Namespace:
    """A copy of `config` without the checkpoint and the wandb run id it resumed (RESUME_KEYS)."""
    config = config.clone()
    for key in RESUME_KEYS:
        if config.get(key) is not None:
            config[key] = None
    return config


class LogConfig(SaveConfigCallback):
    """Records the resolved configuration with the run when the Trainer sets up (after the data has been
    read): flattened to dotted keys as the run's config, with the run's provenance (`provenance.*`: git
    commit and dirty flag, package versions, host; see nlstudy.provenance), and as YAML beside the run
    (`keys.CONFIG_FILE`, synced with it; without what --resume added, see `rerunnable`). Lightning's
    documented way to send the config to a logger instead of log_dir."""

    def save_config(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        logger = trainer.logger
        if logger is None:
            return
        origin = {f"{keys.PROVENANCE}{k}": v for k, v in keys.flatten(provenance()).items()}
        logger.log_hyperparams({**flat_config(self.config), **origin})
        if isinstance(logger, WandbLogger):  # written whole, between a first and a last line (`saved_config`)
            text = self.parser.dump(rerunnable(self.config), skip_unset=False, skip_check=True)
            files.write_text(Path(logger.experiment.dir, keys.CONFIG_FILE), f"{CONFIG_HEAD}\n{text}{CONFIG_END}\n")


# the first and last lines of a run's saved config: a copy of the run cut short (rsync stopped halfway) keeps the
# first line and lacks the last, which `nlstudy fit --resume` then refuses, where the YAML alone may still parse
CONFIG_HEAD = "# nlstudy: the resolved configuration of this run; complete when its last line is the one below"
CONFIG_END = "# nlstudy: end of the configuration"


def saved_config(path: Path) -> dict[str, Any]:
    """A run's saved configuration (files/nlstudy_config.yaml), checked whole: UTF-8, YAML, a mapping, and, when
    it starts with CONFIG_HEAD (every run since), ending with CONFIG_END. A UsageError naming the file otherwise."""
    cut = "; was the run copied while it was written, or halfway? Copy it again"
    try:
        text = files.read_text(path)
        tree = files.load_yaml(text)
    except OSError as e:
        raise UsageError(f"--resume: {path}: cannot read it ({e.strerror or e})") from None
    except files.FileProblem as e:
        raise UsageError(f"--resume: {path}: {e.problem}{cut}") from None
    except yaml.YAMLError as e:
        raise UsageError(f"--resume: {path}: {yaml_problem(e)}{cut}") from None
    lines = text.rstrip("\n").splitlines()
    if lines[:1] == [CONFIG_HEAD] and lines[-1:] != [CONFIG_END]:
        raise UsageError(f"--resume: {path} is cut short (its last line, {CONFIG_END!r}, is missing){cut}")
    if not isinstance(tree, dict):
        got = "nothing" if tree is None else f"a {type(tree).__name__}"
        raise UsageError(f"--resume: {path} is not a configuration (a YAML mapping of keys; it holds {got}){cut}")
    return tree


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


# --- nlstudy fit --resume RUN ----------------------------------------------------------------------------

def find_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint a run resumes from: its files/checkpoints/last.ckpt (RunCheckpoint), else the newest
    of a ModelCheckpoint configured without a dirpath, in Lightning's default folder for the WandbLogger
    (`<runs root>/<project>/<run id>/checkpoints/`, last.ckpt first)."""
    ours = keys.checkpoint_file(run_dir)
    if ours.is_file():
        return ours
    for folder in sorted(run_dir.parent.parent.glob(f"*/{keys.run_id(run_dir)}/checkpoints")):
        if (folder / keys.LAST_CHECKPOINT).is_file():
            return folder / keys.LAST_CHECKPOINT
        found = sorted(folder.glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
        if found:
            return found[-1]
    return None


def resume_arguments(argv: Sequence[str]) -> list[str]:
    """`fit --resume RUN [ARGS]` as the arguments LightningCLI reads: `fit --config <RUN's resolved config>
    [ARGS] --ckpt_path <its checkpoint> --trainer.logger.init_args.id <its wandb id>` (ARGS override the
    config; a --ckpt_path among them wins). Other argument lists come back unchanged. A run that cannot be
    found, or has no config or checkpoint, is a UsageError."""
    argv = [str(a) for a in argv]
    where = next((i for i, a in enumerate(argv) if a == "--resume" or a.startswith("--resume=")), None)
    if where is None:
        return argv
    if argv[where] == "--resume":
        if where + 1 >= len(argv):
            raise UsageError("--resume: expected a run (its directory or id)")
        run, rest = argv[where + 1], argv[:where] + argv[where + 2:]
    else:
        run, rest = argv[where].split("=", 1)[1], argv[:where] + argv[where + 1:]
    if not rest or rest[0] != "fit":
        raise UsageError("--resume: only `nlstudy fit` resumes a run")
    try:
        run_dir = keys.find_run(run)
    except FileNotFoundError as e:
        raise UsageError(f"--resume: {e}") from None
    config = keys.config_file(run_dir)
    if not config.is_file():
        raise UsageError(f"--resume: {config} is missing; is {run_dir} an nlstudy run directory?")
    saved = saved_config(config)
    args = [rest[0], "--config", str(config), *rest[1:]]
    if not any(a == "--ckpt_path" or a.startswith("--ckpt_path=") for a in rest):
        checkpoint = find_checkpoint(run_dir)
        if checkpoint is None:
            raise UsageError(f"--resume: run {run_dir.name} has no checkpoint (files/{keys.CHECKPOINTS_DIR}/"
                             f"{keys.LAST_CHECKPOINT}): it ran with save_checkpoints=false or "
                             "trainer.enable_checkpointing=false, or stopped before its first epoch ended")
        args += ["--ckpt_path", str(checkpoint)]
    logger = (saved.get("trainer") or {}).get("logger")
    if isinstance(logger, dict) and str(logger.get("class_path", "")).endswith("WandbLogger"):
        args += ["--trainer.logger.init_args.id", keys.run_id(run_dir)]  # the same wandb run
    return args


class NLStudyCLI(LightningCLI):
    """LightningCLI over VideoClassifier and ClipDataModule, through its public hooks only: errors become
    one-line UsageErrors, the run's callbacks come in through `trainer_defaults`, the config is logged by
    `LogConfig` (a SaveConfigCallback), and `after_fit` tests the final model."""

    def __init__(self, *args, **kwargs):
        argv = sys.argv[1:] if kwargs.get("args") is None else kwargs["args"]
        self.resuming = isinstance(argv, (list, tuple)) and any(str(a).startswith("--resume") for a in argv)
        if self.resuming:
            kwargs["args"] = resume_arguments(argv)  # a UsageError before anything is parsed
        self.only_subcommand = str(argv[0]) if isinstance(argv, (list, tuple)) and argv else None
        kwargs.setdefault("save_config_callback", LogConfig)
        kwargs.setdefault("save_config_kwargs", {"save_to_log_dir": False})  # the config goes to the wandb run
        kwargs.setdefault("trainer_defaults", {"logger": default_logger()})
        # no abbreviated options: --trainer.max_epoch must not quietly set trainer.max_epochs
        kwargs.setdefault("parser_kwargs", {"exit_on_error": False, "allow_abbrev": False})
        super().__init__(VideoClassifier, ClipDataModule, *args, **kwargs)

    def subcommands(self) -> dict[str, set[str]]:
        """LightningCLI's subcommands; when the command line starts with one, only that one: each subcommand's
        parser introspects the Trainer, model and data anew, and building all four was most of a run's start-up."""
        every = LightningCLI.subcommands()
        only = getattr(self, "only_subcommand", None)
        return {only: every[only]} if only in every else every

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        argv = sys.argv[1:] if args is None else args
        for path in config_files([str(a) for a in argv] if isinstance(argv, (list, tuple)) else []):
            problem = config_file_problem(path)  # jsonargparse would take a key given twice, the last one silently
            if problem:
                raise UsageError(f"config {path}: {problem}")
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as e:
            raise UsageError(parse_error_line(e, self.valid_keys, sys.argv[1:] if args is None else args)) from None
        self.check_checkpoint()  # before LightningCLI reads the checkpoint's hyperparameters
        self._resumed_config = self.config.clone() if getattr(self, "resuming", False) else None

    def before_instantiate_classes(self) -> None:
        """A resumed run runs and logs exactly the configuration it was given: its own saved config and the
        arguments after --resume. LightningCLI has just merged the checkpoint's hyperparameters into it (what
        `--ckpt_path` does), which would override those arguments (`--model.optim.lr`) and add keys an
        uninterrupted run does not log (`model.backbone.num_classes`, which data.num_classes fills), so that
        the report would split one configuration's row in two."""
        if getattr(self, "_resumed_config", None) is not None:
            self.config = self._resumed_config

    def valid_keys(self, subcommand: str) -> list[str]:
        """The dotted keys `nlstudy <subcommand>` accepts (its defaults, flattened; read once); [] if they
        cannot be read."""
        known = self.__dict__.setdefault("_valid_keys", {})
        if subcommand not in known:
            try:
                defaults = self.parser.parse_args([subcommand])[subcommand]
            except (ArgumentError, SystemExit, KeyError):
                return []
            known[subcommand] = sorted(keys.flatten(defaults.as_dict()))
        return known[subcommand]

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--table", type=str | None, default=None,
                            help="the ablation table this run belongs to (set by the sweep files)")
        # how the report compares the rows of the run's table (a sweep file's parameters, like `table`); not part
        # of the run's identity (resolved_key), so a run reused by another table is the same run
        parser.add_argument("--report.metric", type=str | None, default=None,
                            help="the metric the report compares this run's table on (default test/top1)")
        parser.add_argument("--report.margin", type=float | None, default=None,
                            help="the table's equivalence margin, in points of the metric (default 2)")
        parser.add_argument("--report.looks", type=list[int] | None, default=None,
                            help="set by `nlstudy sweep --until-decided`: the planned numbers of seeds")
        parser.add_argument("--test_after_fit", type=bool, default=True,
                            help="fit: evaluate the final model on the test split in the same run")
        parser.add_argument("--save_weights", type=bool, default=True,
                            help="fit: keep the final and best-validation weights in the run directory "
                                 "(files/weights/; a few MB at demo scale), for nlstudy.analysis.load_run")
        parser.add_argument("--save_checkpoints", type=bool, default=True,
                            help="fit: keep a checkpoint in the run directory (files/checkpoints/last.ckpt, "
                                 "overwritten every epoch) for --resume; unless trainer.callbacks has a "
                                 "ModelCheckpoint of its own")
        parser.add_argument("--resume", type=str | None, default=None,
                            help="fit: continue run RUN (a run directory or id) from its checkpoint, under its "
                                 "wandb id, with its configuration; later arguments override it (command line "
                                 "only: `nlstudy fit --resume RUN [--key=value ...]`)")
        parser.link_arguments("data.num_classes", "model.backbone.num_classes", apply_on="instantiate")

    def settings(self) -> Namespace:
        """The parsed settings of this command (the subcommand's, when there is one)."""
        subcommand = self.config.get("subcommand")
        return self.config[subcommand] if subcommand else self.config

    def check_resume(self) -> None:
        if self.settings().get("resume"):  # resume_arguments takes --resume off the command line before parsing
            raise UsageError("resume: a config file cannot resume a run; use `nlstudy fit --resume RUN`")

    def check_checkpoint(self) -> None:
        """The checkpoint a command starts from (`ckpt_path`, which --resume sets) is read safely: Lightning
        gets weights_only=True (an explicit `weights_only: false` is refused), and a local file is read so
        here first, right after parsing, so a file that would run code when unpickled (or an unreadable
        one) fails in one line naming it before anything runs or is logged (LightningCLI itself then reads
        its hyperparameters, with weights_only=True too). What is not a local file (Lightning's keywords
        last, hpc, registry; a URL) is left to Lightning's own load, with weights_only=True."""
        settings = self.settings()
        if "weights_only" not in settings:  # a subcommand that loads no checkpoint
            return
        if settings.get("weights_only") is False:
            raise UsageError("weights_only=false: refused; nlstudy loads checkpoints with weights_only=True only "
                             "(a checkpoint's pickle can run code; nlstudy's own checkpoints need nothing more)")
        settings.weights_only = True
        path = settings.get("ckpt_path")
        if path and os.path.isfile(path):
            try:
                load_weights(path, "ckpt_path", mmap=True)
            except ValueError as e:
                raise UsageError(str(e)) from None

    def instantiate_classes(self) -> None:
        self.check_resume()
        settings = self.settings()
        save_weights = settings.get("save_weights", True)
        save_checkpoints = self.subcommand == "fit" and checkpoint_settings(settings)
        self.trainer_defaults = {**self.trainer_defaults, "callbacks": run_callbacks(
            self.subcommand, save_weights, save_checkpoints, progress_settings(settings))}
        try:
            super().instantiate_classes()
        except (ValueError, TypeError, KeyError) as e:
            raise UsageError(argument_error_line(e)) from None

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        """The Trainer, once its settings are known to suit this machine (`check_machine`): a config that asks
        for a GPU on a machine without one fails in one line here, before the data is read."""
        trainer = self.settings().get("trainer") or Namespace()
        check_trainer_names(trainer)
        check_machine(trainer)
        try:
            return super().instantiate_trainer(**kwargs)
        except (MisconfigurationException, ValueError, TypeError, ImportError) as e:
            raise UsageError(trainer_error_line(e)) from None

    def _prepare(self, stage: str) -> None:
        """Read the data (a missing dataset root fails here, in one line) before the run starts logging."""
        try:
            self.datamodule.setup(stage)
        except (ValueError, FileNotFoundError) as e:
            raise UsageError(argument_error_line(e)) from None

    def before_fit(self) -> None:
        self._prepare("fit")

    def before_validate(self) -> None:
        self._prepare("validate")

    def before_test(self) -> None:
        self._prepare("test")

    def after_fit(self) -> None:
        if not self.config.fit.get("test_after_fit", True):
            return
        # the final model, as the paper evaluates it (and as files/weights/final.pt holds it); periodic
        # checkpoints are for resuming, and the newest of them may be steps behind the final weights
        self.trainer.test(self.model, datamodule=self.datamodule)


class _Parsed(Exception):
    """Raised by `warm_up`'s CLI once its command is parsed."""


def warm_up(subcommand: str = "fit") -> None:
    """Build and use a `subcommand` parser once, and drop it: the caches this fills (jsonargparse's class
    signatures, typing's hints, the docstrings' help) are what the first CLI of a process pays again, about
    half a second. The warm-start worker (nlstudy.lit.worker) calls it before it forks any run; nothing is
    instantiated, read or logged."""

    class Parse(NLStudyCLI):
        def instantiate_classes(self) -> None:
            raise _Parsed

    try:
        Parse(args=[subcommand])
    except _Parsed:
        pass


class StopAfterCheck(Exception):
    """Raised by CheckCLI's before_<subcommand> hooks: the command parsed and built; nothing runs. (Not
    nlstudy.sweep.check.Checked, what a sweep's check found.)"""


class CheckCLI(NLStudyCLI):
    """Parses and validates a training command the way `train_main` would (the same parser, so the same
    errors), without training or logging: the model is built on the meta device (shapes only), the data
    module touches no disk, and the before_<subcommand> hook stops the run before the Trainer is used."""

    def __init__(self, args: list[str], machine: bool = True):
        self.machine = machine  # also check the settings against this machine (check_machine)
        try:
            super().__init__(args=args)
        except StopAfterCheck:
            pass

    def subcommands(self) -> dict[str, set[str]]:
        return LightningCLI.subcommands()  # every one: check() reuses this parser for any training command

    key: str | None = None  # the resolved_key of the last command checked

    def instantiate_classes(self) -> None:
        self.check_resume()
        self.key = resolved_key(self.subcommand, self.settings())
        try:
            with torch.device("meta"):
                built = self.parser.instantiate(self.config)
        except (ValueError, TypeError, KeyError) as e:
            raise UsageError(argument_error_line(e)) from None
        trainer = self.settings().get("trainer") or Namespace()
        check_trainer_names(trainer)
        if self.machine:
            check_machine(trainer)
        self.check_trainer_values((built[self.subcommand] if self.subcommand else built).get("trainer") or {})

    _checked_trainer: str | None = None  # the last trainer settings found good (a sweep rarely varies them)

    def check_trainer_values(self, trainer: dict[str, Any]) -> None:
        """What the Trainer itself rejects and does not depend on the machine (epochs, steps, batch limits,
        intervals...): a Trainer built from the settings on one CPU device, without logger or callbacks; the
        accelerator, devices, strategy and precision are left to the machine that runs it (`check_machine`)."""
        settings = {k: v for k, v in trainer.items() if k not in MACHINE_KEYS}
        fingerprint = json.dumps(settings, sort_keys=True, default=str)
        if fingerprint == self._checked_trainer:
            return
        try:
            with quiet_lightning():
                pl.Trainer(**settings, accelerator="cpu", devices=1, logger=False, callbacks=[])
        except (MisconfigurationException, ValueError, TypeError) as e:
            raise UsageError(trainer_error_line(e)) from None
        self._checked_trainer = fingerprint

    def before_fit(self) -> None:
        raise StopAfterCheck

    before_validate = before_test = before_fit

    def check(self, args: list[str]) -> None:
        """Validate another argument list with the same parser (building the parser is the slow part)."""
        self.parse_arguments(self.parser, resume_arguments(args))
        self.subcommand = self.config.get("subcommand")
        self.instantiate_classes()


CONFIG_ONLY = "--config-only"  # nlstudy check: leave the settings' fit to this machine unchecked (a login node)


def check_main(argv: list[str]) -> int:
    """`nlstudy check [--config-only] FILE`: FILE holds a JSON list of training argument lists (each starting with
    fit, validate or test). Prints a JSON list of {"ok": bool, "error": str | None, "key": str | None, "machine":
    bool} (key: the run's `resolved_key` when ok; machine: the error is that this machine cannot run it, which
    --config-only does not check); exit 0 when all are ok."""
    machine = CONFIG_ONLY not in argv
    argv = [a for a in argv if a != CONFIG_ONLY]
    if len(argv) != 1 or not Path(argv[0]).is_file():
        print(f"usage: nlstudy check [{CONFIG_ONLY}] FILE  (FILE: a JSON list of argument lists such as "
              "[\"fit\", \"--config\", ...])", file=sys.stderr)
        return 2
    results = check_all(json.loads(Path(argv[0]).read_text()), machine=machine)
    print(json.dumps(results))
    return 0 if all(r["ok"] for r in results) else 1


def check_all(candidates: Sequence[Sequence[str]], cli: CheckCLI | None = None, *,
              machine: bool = True) -> list[dict[str, Any]]:
    """{"ok": bool, "error": str | None, "key": str | None, "machine": bool} for each training argument list, all
    judged by one CheckCLI (`cli`, or one made for the first list, checking the settings against this machine
    unless `machine` is false); key: the run's `resolved_key`, when ok; machine: the error is a `MachineError`."""
    results = []
    for args in candidates:
        try:
            if cli is None:
                cli = CheckCLI(list(args), machine=machine)
            else:
                cli.check(list(args))
            results.append({"ok": True, "error": None, "key": cli.key, "machine": False})
        except UsageError as e:
            results.append({"ok": False, "error": str(e), "key": None, "machine": isinstance(e, MachineError)})
        except SystemExit as e:
            results.append({"ok": False, "error": f"arguments rejected (exit {e.code})", "key": None, "machine": False})
    return results


@contextlib.contextmanager
def quiet_lightning():
    """Lightning's INFO lines (GPU available: ..., and the like) left out while a Trainer is built to be checked."""
    logger = logging.getLogger("pytorch_lightning")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _set_threads() -> None:
    if os.environ.get(keys.THREADS_ENV):
        torch.set_num_threads(int(os.environ[keys.THREADS_ENV]))


def finish_failed(error: BaseException) -> str:
    """`error` as the one line that says why the run failed ("NonFiniteLossError: train/loss became nan at
    step 37 (epoch 2)"); the open wandb run, if any, keeps it in its summary (`keys.FAILURE`, which the
    report shows) and finishes as failed (exit code 1)."""
    import wandb

    reason = one_line(f"{type(error).__name__}: {error}".rstrip(": "))
    if wandb.run is not None:
        wandb.run.summary[keys.FAILURE] = reason
        wandb.finish(exit_code=1)
    return reason


def interrupt_of(error: BaseException) -> int | None:
    """The signal behind `error` when it ends a run because someone stopped it, else None: a KeyboardInterrupt
    (Ctrl-C; SIGTERM and SIGHUP under `interrupts.raising`), the SystemExit Lightning raises once it has
    handled one (`sys.exit(1)` in its except clause: the interrupt is its context), or Lightning's own
    SIGTERMException."""
    if isinstance(error, KeyboardInterrupt):
        return interrupts.signal_of(error)
    if isinstance(error, SIGTERMException):
        return signal.SIGTERM
    if isinstance(error, SystemExit) and isinstance(error.__context__, KeyboardInterrupt):
        return interrupts.signal_of(error.__context__)
    return None


def finish_interrupted(signum: int) -> str:
    """The open wandb run, if any, finishes as stopped by `signum`: its summary keeps why (`keys.FAILURE`,
    "interrupted by SIGTERM"), its exit code is 128 + the signal (130 for Ctrl-C), which the report reads
    as killed, not failed (``nlstudy.report.collect``). Returns the reason."""
    import wandb

    reason = f"interrupted by {interrupts.name(signum)}"
    if wandb.run is not None:
        # the signal may have stopped wandb's service too (SLURM signals every process of a job): then the log
        # ends without its exit record, which the report reads as crashed, and the run is retried all the same
        with contextlib.suppress(Exception):
            wandb.run.summary[keys.FAILURE] = reason
            wandb.finish(exit_code=interrupts.exit_code(signum))
    return reason


def stop_interrupted(command: str, signum: int) -> int:
    """A run stopped by a signal: its wandb run finished as killed (`finish_interrupted`), one line saying so
    and how to go on, and the exit code 128 + the signal. Later signals are ignored while it finishes."""
    import wandb

    for sig in interrupts.SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    run = wandb.run
    run_id, run_dir = (run.id, Path(run.dir).parent) if run is not None else (None, None)
    reason = finish_interrupted(signum)
    line = f"nlstudy {command}: {reason}"
    if run_id is not None:
        line += f"; run {run_id} is logged as killed"
        if command == "fit" and keys.checkpoint_file(run_dir).is_file():
            line += f"; `nlstudy fit --resume {run_id}` continues it from its last checkpoint"
    with contextlib.suppress(OSError):
        sys.stdout.flush()
        print(line, file=sys.stderr, flush=True)
    return interrupts.exit_code(signum)


def quiet_wandb() -> None:
    """$WANDB_SILENT (nlstudy's default) from the start: wandb applies it only once wandb.init has validated its
    settings, and Lightning's WandbLogger passes `anonymous`, which wandb 0.31 warns about while validating them
    ("The anonymous setting has no effect...", a line no user can act on)."""
    import wandb

    if os.environ.get("WANDB_SILENT", "").lower() in ("true", "1", "yes"):
        wandb.termsetup(wandb.Settings(silent=True), None)


def ended_line(command: str, run: Any) -> str:
    """The run's last line: its id, its best validation and test top-1 where it has them, and its directory."""
    summary = {k: run.summary.get(k) for k in (keys.VAL_TOP1_BEST, keys.TEST_TOP1)}
    shown = ", ".join(f"{k} {v:.1f}" for k, v in summary.items() if isinstance(v, (int, float)))
    return f"nlstudy {command}: run {run.id} done{': ' + shown if shown else ''} ({shown_path(Path(run.dir).parent)})"


def train_main(argv: list[str]) -> int:
    """`nlstudy fit|validate|test ...`: 0 on success, 2 on a bad key or value, 1 if the run fails (a
    traceback, then `nlstudy fit: failed: <reason>` as the last line, which the sweep agent records), 128 + the
    signal when stopped by SIGINT (130), SIGTERM (143) or SIGHUP (129), at any point: the wandb run then ends
    as killed, with the reason (`stop_interrupted`). With $NLSTUDY_RESUME set (the sweep agent's retry of an
    interrupted run), `fit` is `fit --resume <that run>`."""
    import wandb

    _set_threads()
    quiet_wandb()
    resume = os.environ.get(keys.RESUME_ENV)
    if resume and argv[:1] == ["fit"] and not any(a.startswith("--resume") for a in argv):
        argv = [*argv, "--resume", resume]
    try:
        with interrupts.raising():  # SIGTERM and SIGHUP stop the run as Ctrl-C does, not on the spot
            cli = NLStudyCLI(args=None if argv == sys.argv[1:] else argv)
            if wandb.run is not None:
                if cli.trainer.state.status.value == "finished":
                    print(ended_line(argv[0], wandb.run), flush=True)
                wandb.finish()
    except UsageError as e:
        print(f"nlstudy {argv[0]}: error: {e}", file=sys.stderr)
        return 2
    except BaseException as e:
        signum = interrupt_of(e)
        if signum is not None:
            return stop_interrupted(argv[0], signum)
        if isinstance(e, SystemExit):  # --help and --print_config exit 0
            return int(e.code or 0)
        if not isinstance(e, Exception):
            finish_failed(e)
            raise
        # the run is recorded as failed, with the reason its last line of output repeats
        traceback.print_exc()  # into the run's own log too, before it finishes
        reason = finish_failed(e)
        sys.stdout.flush()
        print(f"nlstudy {argv[0]}: failed: {reason}", file=sys.stderr, flush=True)
        return 1
    return 0 if cli.trainer.state.status.value == "finished" else 1


@dataclass(frozen=True)
class TrainResult:
    """What `train` returns: the run's wandb directory (`<runs dir>/wandb/offline-run-<time>-<id>` offline),
    its id, the final status of the Trainer ("finished", or "interrupted" when stopped early) and the
    run's summary (the last value of every logged metric: val/top1_best, test/top1, perf/wall_s, ...)."""

    run_dir: Path
    run_id: str
    status: str
    summary: dict[str, Any]


def train(config: str | os.PathLike | Sequence[str | os.PathLike] = (), overrides: dict[str, Any] | None = None, *,
          runs_dir: str | os.PathLike | None = None, resume: str | os.PathLike | None = None) -> TrainResult:
    """One `nlstudy fit` run in this process, for notebooks and tests:

        train("experiments/demo.yaml", {"model.backbone.nonlocal_blocks": "1-block", "seed_everything": 1},
              runs_dir="runs/mine")
        train(resume=result.run_id, overrides={"trainer.max_epochs": 16}, runs_dir="runs/mine")

    `config`: one or more YAML files (later ones win); `overrides`: dotted keys, as on the command line
    (`--model.backbone.nl.pairwise=dot_product`) or in a sweep file; `runs_dir`: where the wandb run goes
    (default $NLSTUDY_RUNS_DIR, else ./runs); `resume`: a run (directory, or id under runs_dir) to continue
    from its checkpoint under its wandb id, as `nlstudy fit --resume` (its configuration, then `config` and
    `overrides` on top). $NLSTUDY_NUM_THREADS, when set, sets torch's threads in this process, as for
    `nlstudy fit`. A bad key or value raises ValueError with the CLI's one-line message before anything
    trains or is logged; an error during training finishes the wandb run as failed and propagates.
    """
    import tempfile

    import wandb

    _set_threads()  # $NLSTUDY_NUM_THREADS, as for `nlstudy fit` (two threads on two busy cores: 5x slower)
    quiet_wandb()
    configs = [config] if isinstance(config, (str, os.PathLike)) else list(config)
    argv = ["fit"] + (["--resume", str(resume)] if resume is not None else [])
    for path in configs:
        argv += ["--config", str(path)]
    previous = os.environ.get(keys.RUNS_ENV)
    with tempfile.TemporaryDirectory() as tmp:
        if overrides:  # one JSON config with dotted keys, as the sweep agent passes its parameters
            extra = Path(tmp, "overrides.json")
            extra.write_text(json.dumps(overrides))
            argv += ["--config", str(extra)]
        if runs_dir is not None:
            os.environ[keys.RUNS_ENV] = str(runs_dir)
        try:
            cli = NLStudyCLI(args=argv)
        except UsageError as e:
            raise ValueError(f"nlstudy.train: {e}") from None
        except BaseException as e:
            signum = interrupt_of(e)
            if signum is None:
                finish_failed(e)
                raise
            reason = finish_interrupted(signum)  # the run is logged as killed; the interrupt goes on up
            if isinstance(e, KeyboardInterrupt):
                raise
            raise KeyboardInterrupt(reason) from None  # not Lightning's SystemExit(1): a notebook would stop
        finally:
            if runs_dir is not None:
                if previous is None:
                    os.environ.pop(keys.RUNS_ENV, None)
                else:
                    os.environ[keys.RUNS_ENV] = previous
    run = wandb.run
    if run is None:
        raise RuntimeError("nlstudy.train: the run logged nothing (is trainer.logger disabled?)")
    run_dir, run_id = Path(run.dir).parent, run.id
    summary = {k: run.summary.get(k) for k in run.summary.keys() if not k.startswith("_")}
    wandb.finish()
    return TrainResult(run_dir=run_dir, run_id=run_id, status=cli.trainer.state.status.value, summary=summary)
