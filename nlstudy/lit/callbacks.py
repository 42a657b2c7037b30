"""Callbacks that complete a run's record: derived facts at the start, performance at the end, the files a
local sweep agent watches (validation progress for early termination, a stop request), the network's
weights for the analysis (`SaveWeights`) and the checkpoint a run resumes from (`RunCheckpoint`).

Under DDP every process runs these; only the first (global rank 0) writes files and logs."""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint, TQDMProgressBar
from pytorch_lightning.plugins import CheckpointIO

from nlstudy import files, keys
from nlstudy.models import asdict
from nlstudy.models.profile import model_facts


def run_files_dir(trainer: pl.Trainer) -> Path | None:
    """The run's folder for its files: wandb's `<run>/files` (synced with the run), else the logger's
    log_dir, else the Trainer's default_root_dir; None without a logger and on every process but the first."""
    logger = trainer.logger
    if logger is None or not trainer.is_global_zero:
        return None
    experiment_dir = getattr(logger.experiment, "dir", None)  # wandb: <run>/files
    return Path(experiment_dir or logger.log_dir or trainer.default_root_dir).absolute()  # kept in checkpoints


def peak_memory_mb() -> float:
    """Peak GPU memory allocated when on a GPU, else the process's peak resident set size."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class RunFacts(pl.Callback):
    """Logs derived facts (params, FLOPs per clip, inserted blocks and the T x H x W each sees, and where
    `model.init_from` took weights from) once, and wall time, training throughput and peak memory when the
    run ends. Wall time and throughput travel in the checkpoint: a resumed run reports its whole training."""

    def __init__(self) -> None:
        self._facts_logged = False
        self._start = time.perf_counter()
        self._train_seconds = 0.0
        self._train_clips = 0
        self._epoch_start = 0.0
        self._resumed_wall_s = 0.0  # the wall time of the run this one resumes (from its checkpoint)

    def state_dict(self) -> dict[str, float]:
        return {"wall_s": time.perf_counter() - self._start, "train_seconds": self._train_seconds,
                "train_clips": self._train_clips}

    def load_state_dict(self, state_dict: dict[str, float]) -> None:  # before on_fit_start
        self._resumed_wall_s = float(state_dict.get("wall_s", 0.0))
        self._train_seconds = float(state_dict.get("train_seconds", 0.0))
        self._train_clips = int(state_dict.get("train_clips", 0))

    def _log_facts(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._facts_logged or trainer.logger is None or trainer.datamodule is None:
            return
        self._facts_logged = True
        say_where(trainer)
        facts = {f"{keys.DERIVED}{k}": v for k, v in model_facts(pl_module.backbone_spec,
                                                                   trainer.datamodule.clip_shape).items()}
        facts[keys.NUM_CLASSES] = trainer.datamodule.num_classes  # the report's chance level
        facts.update(getattr(pl_module, "init_facts", {}))  # VideoClassifier: model.init_from's source and count
        trainer.logger.log_hyperparams(facts)

    def on_fit_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter() - self._resumed_wall_s
        self._log_facts(trainer, pl_module)

    def on_validation_start(self, trainer, pl_module) -> None:
        self._log_facts(trainer, pl_module)

    def on_test_start(self, trainer, pl_module) -> None:
        self._log_facts(trainer, pl_module)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._train_clips += len(batch[1])

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._train_seconds += time.perf_counter() - self._epoch_start

    def perf(self) -> dict[str, float]:
        return {
            keys.WALL_S: time.perf_counter() - self._start,
            keys.TRAIN_CLIPS_PER_S: self._train_clips / self._train_seconds if self._train_seconds else 0.0,
            keys.PEAK_MEM_MB: peak_memory_mb(),
        }

    def log_perf(self, trainer: pl.Trainer) -> None:
        if trainer.logger is not None:
            trainer.logger.log_metrics(self.perf(), step=trainer.global_step)

    def on_fit_end(self, trainer, pl_module) -> None:
        self.log_perf(trainer)

    def on_test_end(self, trainer, pl_module) -> None:
        self.log_perf(trainer)  # after fit + test, the last write covers the whole run


def say_where(trainer: pl.Trainer, out: TextIO | None = None) -> None:
    """One line as the run starts: its id and directory (where its log, config and weights go), from rank 0."""
    logger = trainer.logger
    if logger is None or not trainer.is_global_zero:
        return
    experiment = logger.experiment
    run_dir = Path(experiment.dir).parent if getattr(experiment, "dir", None) else Path(logger.log_dir or ".")
    run_id = getattr(experiment, "id", None) or logger.version
    offline = getattr(experiment, "offline", False) is True
    line = f"run {run_id}: {shown_path(run_dir)}{' (offline)' if offline else ''}"
    print(line, file=out if out is not None else sys.stdout, flush=True)


def shown_path(path: Path) -> str:
    """`path` relative to the working directory where it is under it, else as it is."""
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


EPOCH_METRICS = (keys.TRAIN_LOSS, keys.VAL_LOSS, keys.VAL_TOP1, keys.VAL_TOP1_BEST)  # what each epoch's line shows


class RunProgress(TQDMProgressBar):
    """The run's progress as it trains. On a terminal, Lightning's bar, one per epoch (kept on screen), with the
    metrics the module shows (loss, val top-1 and its best so far); elsewhere (the sweep agent's output.log, a
    job's log file) one line at the end of each epoch instead of a bar that redraws itself:

        epoch 3/8: train/loss 0.412, val/loss 0.390, val/top1 81.2, val/top1_best 81.2 (2.6 s)

    The CLI adds it to every run whose `trainer.enable_progress_bar` is not false and that has no progress bar
    of its own among `trainer.callbacks`."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(leave=True)
        self.stream = stream
        self.lines = not (stream if stream is not None else sys.stdout).isatty()
        if self.lines:
            self.disable()
        self._epoch_start = time.perf_counter()

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        for name in ("v_num", keys.VAL_TOP5, keys.VAL_TOP5_BEST):  # the run id (said at the start); top-5 (the
            metrics.pop(name, None)  # bar's width is for the numbers that move: loss, top-1 and its best)
        return metrics

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self._epoch_start = time.perf_counter()
        super().on_train_epoch_start(trainer, *args)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.lines:
            super().on_train_epoch_end(trainer, pl_module)  # the bar's last update
        elif trainer.is_global_zero:
            out = self.stream if self.stream is not None else sys.stdout
            print(epoch_line(trainer, time.perf_counter() - self._epoch_start), file=out, flush=True)


def epoch_line(trainer: pl.Trainer, seconds: float) -> str:
    """'epoch E/N: metric value, ... (S s)' from the trainer's current metrics (the epoch just ended)."""
    metrics = trainer.callback_metrics
    shown = ", ".join(f"{name} {float(metrics[name]):.3g}" if "loss" in name else f"{name} {float(metrics[name]):.1f}"
                      for name in EPOCH_METRICS if name in metrics)
    total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"
    return f"epoch {trainer.current_epoch + 1}/{total}: {shown or 'no metrics yet'} ({seconds:.1f} s)"


class SweepBridge(pl.Callback):
    """Talks to `nlstudy sweep` through two files named in the environment: appends
    {"epoch", "step", val metrics} after every validation (hyperband reads these) and stops training
    cleanly, at the end of an epoch, once the stop file exists."""

    def __init__(self) -> None:
        self.progress = Path(os.environ[keys.PROGRESS_ENV]) if os.environ.get(keys.PROGRESS_ENV) else None
        self.stop = Path(os.environ[keys.STOP_ENV]) if os.environ.get(keys.STOP_ENV) else None

    def on_validation_end(self, trainer, pl_module) -> None:  # after the module has logged its metrics
        if trainer.sanity_checking or self.progress is None or not trainer.is_global_zero:
            return
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        for name in (keys.VAL_TOP1, keys.VAL_TOP5, keys.VAL_LOSS, keys.VAL_TOP1_BEST):
            if name in trainer.callback_metrics:
                row[name] = float(trainer.callback_metrics[name])
        with self.progress.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.stop is not None and self.stop.exists():
            trainer.should_stop = True
            if trainer.logger is not None:
                trainer.logger.log_hyperparams({"stopped_by_sweep": True})


class SaveWeights(pl.Callback):
    """Keeps the network's weights in the run directory so the run can be analysed later
    (`nlstudy.analysis.load_run`): `files/weights/final.pt` when training ends (the weights the run's
    test metrics come from) and `files/weights/best.pt` at each new best validation top-1.

    Each file is a plain dict read back with `torch.load(weights_only=True)`: the backbone spec
    (`backbone`, num_classes resolved), the network's `state_dict`, and `epochs` (training epochs
    completed), `step` (optimiser steps) and `val/top1` (the last validation's top-1).
    Only the network is kept (no optimiser state): a few MB at demo scale, about 100 MB for ResNet-50.
    A resumed run (a new directory under the same run id) starts from the best top-1 so far and a copy of
    the best.pt it came with, both named in the checkpoint it resumes from.
    """

    def __init__(self) -> None:
        self.best_file: Path | None = None  # where best.pt was last written
        self._resumed_best_file: Path | None = None

    @staticmethod
    def directory(trainer: pl.Trainer) -> Path | None:
        run_files = run_files_dir(trainer)
        return None if run_files is None else run_files / keys.WEIGHTS_DIR

    def state_dict(self) -> dict:
        return {"best_file": str(self.best_file) if self.best_file else None}

    def load_state_dict(self, state_dict: dict) -> None:  # the best top-1 so far is VideoClassifier's to keep
        self._resumed_best_file = Path(state_dict["best_file"]) if state_dict.get("best_file") else None

    def on_train_start(self, trainer, pl_module) -> None:
        """A resumed run: its best.pt so far is the one of the run directory it resumed from."""
        source, self._resumed_best_file = self._resumed_best_file, None
        folder = self.directory(trainer)
        if folder is None or source is None or not source.is_file():
            return
        target = folder / keys.WEIGHTS_FILES["best"]
        if source.resolve() != target.resolve():
            folder.mkdir(parents=True, exist_ok=True)
            files.copy(source, target)
        self.best_file = target

    def save(self, trainer: pl.Trainer, pl_module: pl.LightningModule, name: str, epochs: int) -> None:
        folder = self.directory(trainer)
        if folder is None:
            return
        folder.mkdir(parents=True, exist_ok=True)
        top1 = trainer.callback_metrics.get(keys.VAL_TOP1)
        record = {
            "backbone": asdict(pl_module.backbone_spec),
            "state_dict": {k: v.detach().cpu() for k, v in pl_module.net.state_dict().items()},
            "epochs": epochs,
            "step": trainer.global_step,
            keys.VAL_TOP1: float(top1) if top1 is not None else None,
        }
        path = folder / keys.WEIGHTS_FILES[name]
        with files.replacing(path) as tmp:  # never a half-written file under the real name
            torch.save(record, tmp)
        if name == "best":
            self.best_file = path

    def on_validation_end(self, trainer, pl_module) -> None:
        # after the module's on_validation_epoch_end, which tracks the best validation top-1 (VideoClassifier.best)
        if trainer.sanity_checking or not getattr(pl_module, "new_best", False):
            return
        self.save(trainer, pl_module, "best", trainer.current_epoch + 1)  # validation ends an epoch

    def on_fit_end(self, trainer, pl_module) -> None:
        self.save(trainer, pl_module, "final", trainer.current_epoch)  # counted up past the last epoch


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, writing one file into the run's folder: `files/checkpoints/last.ckpt`
    (wandb's run directory, beside files/weights/), overwritten after every epoch's validation (or at the
    epoch's end without validation). It holds what `nlstudy fit --resume RUN` needs to continue the run as
    if it had not stopped: weights, optimiser, lr schedule, loop counters, VideoClassifier's best top-1 so
    far and RNG states, and these callbacks' states. Saving draws no random numbers: training is unchanged.

    The folder is known only once the logger has started the run, so `setup` sets `dirpath` (rank 0 reads
    it and tells the other processes). The CLI adds this callback to fit runs unless `save_checkpoints` is
    false, `trainer.enable_checkpointing` is false, or the configuration has its own ModelCheckpoint.
    """

    def __init__(self) -> None:
        # monitor=None with save_top_k=1 keeps only the newest; the fixed name "last" is overwritten in place
        super().__init__(filename=keys.LAST_CHECKPOINT.removesuffix(".ckpt"), monitor=None, save_top_k=1,
                         enable_version_counter=False)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        run_files = run_files_dir(trainer)
        folder = trainer.strategy.broadcast(str(run_files / keys.CHECKPOINTS_DIR) if run_files is not None else None)
        if folder is not None:
            self.dirpath = folder
        if not isinstance(trainer.strategy.checkpoint_io, WholeCheckpointIO):
            trainer.strategy.checkpoint_io = WholeCheckpointIO(trainer.strategy.checkpoint_io)
        super().setup(trainer, pl_module, stage)

    def load_state_dict(self, state_dict: dict) -> None:
        """Nothing to restore: a resumed run writes its own last.ckpt in its own run directory (Lightning's
        would only warn that the folder changed)."""


class WholeCheckpointIO(CheckpointIO):
    """The strategy's CheckpointIO, writing each checkpoint whole or not at all (``nlstudy.files.replacing``):
    Lightning's own truncates the file and then writes it, so a run killed meanwhile (preemption's SIGKILL
    after its grace period) would leave a cut last.ckpt in place of the good one, and its retry could not
    resume. Remote paths (``s3://``...) are left to the inner one; loading and removing are its too."""

    def __init__(self, inner: CheckpointIO):
        self.inner = inner

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if "://" in str(path):
            self.inner.save_checkpoint(checkpoint, path, storage_options=storage_options)
            return
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with files.replacing(path) as tmp:
            self.inner.save_checkpoint(checkpoint, tmp, storage_options=storage_options)

    def load_checkpoint(self, *args, **kwargs):
        return self.inner.load_checkpoint(*args, **kwargs)

    def remove_checkpoint(self, path) -> None:
        self.inner.remove_checkpoint(path)

    def teardown(self) -> None:
        self.inner.teardown()
