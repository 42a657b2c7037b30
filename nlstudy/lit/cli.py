"""The training command line: LightningCLI over `VideoClassifier` and `ClipDataModule`, as a parser only.

`NLStudyCLI(args=...)` reads `nlstudy fit|validate|test ...` (or a dict of the same settings) into the resolved
configuration: defaults, config files and arguments merged, `--resume RUN` turned into that run's config and
checkpoint (nlstudy.lit.resume), the checkpoint read safely, the seed set, and every bad key or value one line
(a UsageError) before anything is built. It instantiates and runs nothing: `nlstudy.lit.train.run` builds the
datamodule, model, Trainer and logger from `cli.settings()` with `cli.parser_of(cli.command)` and runs them.

Every run logs to wandb through Lightning's WandbLogger (offline unless WANDB_MODE=online), its run
directory under `runs_dir` (default $NLSTUDY_RUNS_DIR, else ./runs). A fit run keeps its resolved config
(files/nlstudy_config.yaml), its weights (files/weights/, for the analysis) and a checkpoint
(files/checkpoints/last.ckpt, overwritten every epoch) in its wandb run directory. `nlstudy fit --resume RUN`
(a run directory or id) continues it from that checkpoint under the same wandb run id, with the same
configuration unless overridden by the arguments that follow:

    nlstudy fit --resume 3fwyqf9b                       # continue an interrupted run
    nlstudy fit --resume runs/demo/wandb/offline-run-20261125_182526-3fwyqf9b --trainer.max_epochs=16

Offline, wandb writes a resumed run into a new directory (`offline-run-<time>-<same id>`) that holds the
epochs after the checkpoint and the final summary.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from jsonargparse import ArgumentError, Namespace
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

from nlstudy import keys
from nlstudy.data import ClipDataModule
from nlstudy.errors import UsageError
from nlstudy.lit.messages import config_file_problem, config_files, parse_error_line
from nlstudy.lit.module import VideoClassifier
from nlstudy.lit.record import LogConfig, default_logger
from nlstudy.lit.resume import resume_arguments
from nlstudy.models.weights import load_weights


class NLStudyCLI(LightningCLI):
    """LightningCLI over VideoClassifier and ClipDataModule, through its public hooks only, as the parser of a
    training command: errors become one-line UsageErrors, the config is parsed, checked and seeded, and nothing
    is instantiated or run (`instantiate_classes` ends it). `command` is the subcommand read (None with
    run=False); `settings()` its resolved configuration; `parser_of(command)` the parser that read it.
    `runs_dir`: where the default WandbLogger puts the run (default $NLSTUDY_RUNS_DIR, else ./runs)."""

    def __init__(self, *args, runs_dir: str | os.PathLike | None = None, **kwargs):
        argv = sys.argv[1:] if kwargs.get("args") is None else kwargs["args"]
        self.resuming = isinstance(argv, (list, tuple)) and any(str(a).startswith("--resume") for a in argv)
        if self.resuming:
            kwargs["args"] = resume_arguments(argv, runs_dir)  # a UsageError before anything is parsed
        self.only_subcommand = (str(argv[0]) if isinstance(argv, (list, tuple)) and argv
                                else argv.get("subcommand") if isinstance(argv, (dict, Namespace)) else None)
        self.command: str | None = None
        kwargs.setdefault("save_config_callback", LogConfig)  # nlstudy.lit.train.run adds it to the Trainer
        kwargs.setdefault("save_config_kwargs", {"save_to_log_dir": False})  # the config goes to the wandb run
        kwargs.setdefault("trainer_defaults", {"logger": default_logger(runs_dir)})
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
        self.__dict__.setdefault("_built", []).append(parser)
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

    def setup_parser(self, add_subcommands: bool, main_kwargs: dict[str, Any], subparser_kwargs: dict[str, Any]) -> None:
        self._built: list[LightningArgumentParser] = []  # add_arguments_to_parser sees each, in subcommands() order
        super().setup_parser(add_subcommands, main_kwargs, subparser_kwargs)
        self.parsers = dict(zip(list(self.subcommands()) if add_subcommands else [None], self._built))

    def parser_of(self, command: str | None) -> LightningArgumentParser:
        """The parser of `command` (a subcommand; None with run=False): what reads, instantiates and dumps its
        settings."""
        return self.parsers[command]

    def instantiate_classes(self) -> None:
        """The end of parsing: LightningCLI then runs nothing (its subcommand is taken off, kept as `command`);
        `nlstudy.lit.train.run` builds and runs the command."""
        self.check_resume()
        self.command, self.subcommand = self.subcommand, None
