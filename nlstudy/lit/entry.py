"""The entry points of a training run: `nlstudy fit|validate|test ...` (`train_main`) and `nlstudy.train(...)`
(`train`, for notebooks and tests). Each parses its arguments with `NLStudyCLI` (nlstudy.lit.cli) into the
resolved configuration and hands it to the core, `nlstudy.lit.train.run`; each ends a run that fails or is
stopped the same way (nlstudy.lit.ending)."""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from nlstudy import interrupts, keys
from nlstudy.errors import UsageError
from nlstudy.lit.cli import NLStudyCLI
from nlstudy.lit.ending import finish_failed, finish_interrupted, interrupt_of, stop_interrupted
from nlstudy.lit.train import TrainResult, run


def set_threads() -> None:
    """$NLSTUDY_NUM_THREADS, when set, as torch's threads in this process (two threads on two busy cores: 5x
    slower)."""
    if os.environ.get(keys.THREADS_ENV):
        torch.set_num_threads(int(os.environ[keys.THREADS_ENV]))


def quiet_wandb() -> None:
    """$WANDB_SILENT (nlstudy's default) from the start: wandb applies it only once wandb.init has validated its
    settings, and Lightning's WandbLogger passes `anonymous`, which wandb 0.31 warns about while validating them
    ("The anonymous setting has no effect...", a line no user can act on)."""
    import wandb

    if os.environ.get("WANDB_SILENT", "").lower() in ("true", "1", "yes"):
        wandb.termsetup(wandb.Settings(silent=True), None)


def train_main(argv: list[str]) -> int:
    """`nlstudy fit|validate|test ...`: 0 on success, 2 on a bad key or value, 1 if the run fails (a
    traceback, then `nlstudy fit: failed: <reason>` as the last line, which the sweep agent records), 128 + the
    signal when stopped by SIGINT (130), SIGTERM (143) or SIGHUP (129), at any point: the wandb run then ends
    as killed, with the reason (`stop_interrupted`). With $NLSTUDY_RESUME set (the sweep agent's retry of an
    interrupted run), `fit` is `fit --resume <that run>`."""
    set_threads()
    quiet_wandb()
    resume = os.environ.get(keys.RESUME_ENV)
    if resume and argv[:1] == ["fit"] and not any(a.startswith("--resume") for a in argv):
        argv = [*argv, "--resume", resume]
    try:
        with interrupts.raising():  # SIGTERM and SIGHUP stop the run as Ctrl-C does, not on the spot
            cli = NLStudyCLI(args=None if argv == sys.argv[1:] else argv)
            result = run(cli.settings(), command=cli.command, parser=cli.parser_of(cli.command), say_done=True)
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
    return 0 if result.status == "finished" else 1


def train(config: str | os.PathLike | Mapping[str, Any] | Sequence[str | os.PathLike | Mapping[str, Any]] = (),
          overrides: Mapping[str, Any] | None = None, *, runs_dir: str | os.PathLike | None = None,
          resume: str | os.PathLike | None = None) -> TrainResult:
    """One `nlstudy fit` run in this process, for notebooks and tests:

        train("experiments/demo.yaml", {"model.backbone.nonlocal_blocks": "1-block", "seed_everything": 1},
              runs_dir="runs/mine")
        train(resume=result.run_id, overrides={"trainer.max_epochs": 16}, runs_dir="runs/mine")

    `config`: one or more YAML files or mappings of settings (later ones win); `overrides`: dotted keys, as on
    the command line (`--model.backbone.nl.pairwise=dot_product`) or in a sweep file; `runs_dir`: where the
    wandb run goes (default $NLSTUDY_RUNS_DIR, else ./runs); `resume`: a run (directory, or id under runs_dir)
    to continue from its checkpoint under its wandb id, as `nlstudy fit --resume` (its configuration, then
    `config` and `overrides` on top). $NLSTUDY_NUM_THREADS, when set, sets torch's threads in this process, as
    for `nlstudy fit`. A bad key or value raises ValueError with the CLI's one-line message before anything
    trains or is logged; an error during training finishes the wandb run as failed and propagates. Parsed in
    memory, as `nlstudy fit` parses its arguments: no file is written and the environment is left as it is.
    """
    set_threads()
    quiet_wandb()
    configs = [config] if isinstance(config, (str, os.PathLike, Mapping)) else list(config)
    argv = ["fit"] + (["--resume", str(resume)] if resume is not None else [])
    for part in [*configs, *([overrides] if overrides else [])]:
        # a mapping is given to --config as JSON text (dotted keys, as the sweep agent passes its parameters)
        argv += ["--config", json.dumps(dict(part)) if isinstance(part, Mapping) else str(part)]
    try:
        cli = NLStudyCLI(args=argv, runs_dir=runs_dir)
        result = run(cli.settings(), command=cli.command, parser=cli.parser_of(cli.command), runs_dir=runs_dir)
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
    if result.run_id is None:
        raise RuntimeError("nlstudy.train: the run logged nothing (is trainer.logger disabled?)")
    return result
