"""A run's identity and record: the logger a run logs through (wandb, offline unless WANDB_MODE=online), the
resolved configuration flattened to the dotted keys the CLI and the sweep files use (`flat_config`), what makes
two runs the same run (`resolved_key`), and the configuration logged with the run and kept beside it as YAML
(`LogConfig`, files/nlstudy_config.yaml, between CONFIG_HEAD and CONFIG_END)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from jsonargparse import Namespace, lazy_instance
from pytorch_lightning.cli import SaveConfigCallback
from pytorch_lightning.loggers import WandbLogger

from nlstudy import files, keys
from nlstudy.provenance import provenance

# trainer/CLI keys that are plumbing, not part of an experiment's identity
NOT_LOGGED = ("config", "trainer.logger", "trainer.callbacks", "ckpt_path", "trainer.default_root_dir", "optimizer",
              "lr_scheduler", "weights_only", "resume")


def default_logger(runs_dir: str | os.PathLike | None = None) -> WandbLogger:
    """The WandbLogger every run gets unless its config names another: its run directory under `runs_dir`
    (default $NLSTUDY_RUNS_DIR, else ./runs)."""
    return lazy_instance(
        WandbLogger,
        save_dir=keys.default_runs_root() if runs_dir is None else str(runs_dir),
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
    reports it for every run a sweep plans (``nlstudy.sweep.reuse.reuse_key``)."""
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
