"""`nlstudy fit --resume RUN`: the run's saved configuration read back whole (`saved_config`), the checkpoint it
continues from (`find_checkpoint`), and the argument list LightningCLI then reads (`resume_arguments`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from nlstudy import files, keys
from nlstudy.errors import UsageError, yaml_problem
from nlstudy.lit.record import CONFIG_END, CONFIG_HEAD



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


def resume_arguments(argv: Sequence[str], runs_root: str | os.PathLike | None = None) -> list[str]:
    """`fit --resume RUN [ARGS]` as the arguments LightningCLI reads: `fit --config <RUN's resolved config>
    [ARGS] --ckpt_path <its checkpoint> --trainer.logger.init_args.id <its wandb id>` (ARGS override the
    config; a --ckpt_path among them wins). Other argument lists come back unchanged. A run that cannot be
    found (a run id is looked up under `runs_root`, default $NLSTUDY_RUNS_DIR, else ./runs), or has no config
    or checkpoint, is a UsageError."""
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
        run_dir = keys.find_run(run, runs_root)
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
