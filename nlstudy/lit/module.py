"""The LightningModule: a backbone built from its spec, cross-entropy, the optimiser and lr schedule of
nlstudy.lit.optim (SGD/AdamW with warm-up and a step or cosine schedule), top-1 / top-5 through torchmetrics.

Logged (percent for accuracies): train/loss per step; val/loss, val/top1, val/top5, val/top1_best,
val/top5_best per validation; test/top1, test/top5. Test batches may hold several views per clip,
(B, V, C, T, H, W): their softmax scores are averaged (the paper's 10-clip testing).

Under DDP each process evaluates its share of the val/test clips; the torchmetrics objects gather the
counts of all processes when computed, so every process logs the same, whole-set values.

A training loss that becomes NaN or infinite stops the run at once (`nlstudy.lit.finite`): it fails, and
says so with the step ("train/loss became nan at step 37 (epoch 2)").

`model.init_from: RUN` starts the network from another run's final weights (how the paper trains its
non-local models from their C2D versions): the tensors both networks have, with equal shapes, are copied;
the rest (inserted blocks, a classifier of another size) keep their fresh initialisation.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from nlstudy import keys
from nlstudy.lit.finite import LossWatch
from nlstudy.lit.optim import OptimSpec, check_optim, lr_factor, make_optimizer
from nlstudy.models import BackboneSpec, build_model
from nlstudy.models.weights import load_weights


def init_from_run(net: nn.Module, run: str) -> dict[str, Any]:
    """Copies into `net` the tensors of run `run`'s files/weights/final.pt (a run directory or id) that `net`
    has under the same name and shape; returns the facts to log (`derived.init_from_run`, the source run's
    id, and `derived.init_from_copied`, how many tensors were copied). A missing run or weights file, or a
    network that shares no tensor with it, is a ValueError naming `model.init_from`. On the meta device
    (`nlstudy check`) the file is looked for but not read."""
    try:
        run_dir = keys.find_run(run)
    except FileNotFoundError as e:
        raise ValueError(f"{keys.INIT_FROM}: {e}") from None
    path = keys.weights_file(run_dir, "final")
    if not path.is_file():
        raise ValueError(f"{keys.INIT_FROM}: run {run_dir.name} has no {path.relative_to(run_dir)} (it ran with "
                         "save_weights=false, or stopped before the end of training)")
    facts: dict[str, Any] = {keys.INIT_FROM_RUN: keys.run_id(run_dir)}
    if any(p.is_meta for p in net.parameters()):
        return facts
    saved = load_weights(path, keys.INIT_FROM)["state_dict"]
    own = net.state_dict()
    copied = {k: v for k, v in saved.items() if k in own and own[k].shape == v.shape}
    if not copied:
        raise ValueError(f"{keys.INIT_FROM}: no tensor of run {run_dir.name} has a name and shape of this model")
    net.load_state_dict(copied, strict=False)
    return {**facts, keys.INIT_FROM_COPIED: len(copied)}


def rng_states() -> dict[str, Any]:
    """The random number generators' states (torch CPU and CUDA, numpy, Python), as tensors and plain values
    (a checkpoint read with weights_only=True)."""
    name, state, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
        "numpy": [name, torch.from_numpy(state.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss_next],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])
    name, state, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, state.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))


# How the epoch's values are logged: under DDP every process holds the same values already (the torchmetrics
# objects gathered all processes' counts when computed), so the "reduction" across processes takes the max of
# equal numbers, which is each of them exactly (a mean could move the last bit). One process: no reduction.
GATHERED = {"sync_dist": True, "reduce_fx": "max"}


class VideoClassifier(pl.LightningModule):
    """Clip classifier around `build_model(backbone)`.

    Args:
        backbone: the network (`model.backbone.*`).
        optim: optimiser and schedule (`model.optim.*`).
        label_smoothing: cross-entropy label smoothing.
        init_from: a run (its directory or id) whose final weights start the network: tensors of the same
            name and shape are copied, the rest keep their fresh initialisation (see `init_from_run`).
        channels_last: keep the 3-d convolutions' weights and the clips in channels_last_3d memory order (the
            fast cuDNN kernels under bf16 on GPUs; experiments/kinetics.yaml sets it). The same computation,
            by other kernels that add in another order: a run's numbers are not bit for bit those of the same
            run without it (the demo's model at lr 0.005 drifts visibly within 60 steps on the CPU, where it is
            also 10-20 % faster a step), so runs compared in one table should share the setting.

    A checkpoint also holds the best validation top-1 so far and the RNG states, so a run resumed from it
    (`nlstudy fit --resume`) logs what the run would have logged without the interruption.
    """

    def __init__(self, backbone: BackboneSpec = BackboneSpec(), optim: OptimSpec = OptimSpec(),
                 label_smoothing: float = 0.0, init_from: str = "", channels_last: bool = False):
        super().__init__()
        check_optim(optim)
        if not 0 <= label_smoothing <= 1:
            raise ValueError(f"model.label_smoothing must be in [0, 1], got {label_smoothing!r}")
        self.save_hyperparameters(logger=False)  # the CLI logs the whole flattened config itself
        self.backbone_spec, self.optim_spec, self.label_smoothing = backbone, optim, label_smoothing
        self.net = build_model(backbone)
        self.init_facts = init_from_run(self.net, init_from) if init_from else {}  # RunFacts logs them
        self.channels_last = channels_last
        if channels_last:  # 3-d convolutions and clips stored (N, T, H, W, C): cuDNN's fast bf16 kernels on GPUs
            for module in self.net.modules():
                if isinstance(module, torch.nn.Conv3d):
                    module.to(memory_format=torch.channels_last_3d)
        n = backbone.num_classes
        top5 = min(5, n)  # with fewer than 5 classes "top-5" is top-n (always 100%)
        self.metrics = torch.nn.ModuleDict({
            split: torch.nn.ModuleDict({
                "top1": MulticlassAccuracy(n, top_k=1, average="micro"),
                "top5": MulticlassAccuracy(n, top_k=top5, average="micro"),
                "loss": MeanMetric(),
            })
            for split in ("val", "test")
        })
        # the best val top-1 so far: every process updates it with the same (gathered) value, so it needs no sync;
        # float64, so that val/top1_best is the epoch's val/top1 exactly, not a float32 rounding of it
        self.top1_best = MaxMetric(sync_on_compute=False).set_dtype(torch.float64)
        self.top5_at_best = float("nan")  # the top-5 of the epoch of the best top-1 (not a max of its own)
        self.new_best = False  # the last validation set a new best top-1 (lit.callbacks.SaveWeights reads it)
        self.loss_watch = LossWatch(keys.TRAIN_LOSS)  # a NaN or infinite loss stops the run, failed

    @property
    def best(self) -> dict[str, float]:
        """{"top1": the best validation top-1 so far (-1 before the first), "top5": the top-5 of that epoch}: what
        val/top1_best and val/top5_best log, and a checkpoint keeps."""
        top1 = self.top1_best.compute().item() if self.top1_best.update_called else -1.0  # (meta: no update here)
        return {"top1": top1, "top5": self.top5_at_best}

    @best.setter
    def best(self, best: dict[str, float]) -> None:  # a new run (-1), or one resumed from its checkpoint
        self.top1_best.reset()
        self.top1_best.update(float(best["top1"]))
        self.top5_at_best = float(best["top5"])

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.net(clips)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        clips, labels = batch
        if self.channels_last and clips.dim() == 5:  # (B, C, T, H, W); multi-view clips are converted per view
            clips = clips.contiguous(memory_format=torch.channels_last_3d)
        return clips, labels

    def scores(self, clips: torch.Tensor) -> torch.Tensor:
        """Class log-probabilities; (B, V, ...) multi-view clips average their views' probabilities."""
        if clips.dim() == 6:
            b, v = clips.shape[:2]
            probs = self.net(clips.flatten(0, 1)).softmax(-1).view(b, v, -1).mean(1)  # (B, classes)
            return probs.clamp_min(1e-12).log()
        return self.net(clips).log_softmax(-1)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        clips, labels = batch
        loss = F.cross_entropy(self.net(clips), labels, label_smoothing=self.label_smoothing)
        self.log(keys.TRAIN_LOSS, loss, on_step=True, on_epoch=False, prog_bar=True)
        self.loss_watch.check(loss, self.global_step, self.current_epoch)
        return loss

    def on_train_epoch_end(self) -> None:
        self.loss_watch.drain()

    def _eval_step(self, split: str, batch) -> None:
        clips, labels = batch
        log_probs = self.scores(clips)
        metrics = self.metrics[split]
        metrics["loss"].update(F.nll_loss(log_probs, labels), weight=labels.numel())
        metrics["top1"].update(log_probs, labels)
        metrics["top5"].update(log_probs, labels)

    def on_validation_epoch_start(self) -> None:
        self.loss_watch.drain()  # no validation of weights a non-finite loss has already spoilt

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step("val", batch)

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step("test", batch)

    def _epoch_values(self, split: str) -> dict[str, float]:
        m = self.metrics[split]
        values = {"loss": m["loss"].compute().item(), "top1": 100 * m["top1"].compute().item(),
                  "top5": 100 * m["top5"].compute().item()}
        for metric in m.values():
            metric.reset()
        return values

    def on_validation_epoch_end(self) -> None:
        v = self._epoch_values("val")
        if self.trainer.sanity_checking:
            return
        self.new_best = v["top1"] > self.best["top1"]  # SaveWeights writes best.pt then
        self.top1_best.update(v["top1"])
        if self.new_best:
            self.top5_at_best = v["top5"]
        self.log_dict({
            keys.VAL_LOSS: v["loss"], keys.VAL_TOP1: v["top1"], keys.VAL_TOP5: v["top5"],
            keys.VAL_TOP1_BEST: self.best["top1"], keys.VAL_TOP5_BEST: self.best["top5"],
        }, prog_bar=True, **GATHERED)

    def on_test_epoch_end(self) -> None:
        v = self._epoch_values("test")
        self.log_dict({keys.TEST_TOP1: v["top1"], keys.TEST_TOP5: v["top5"], "test/loss": v["loss"]}, **GATHERED)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["nlstudy"] = {"best": dict(self.best), "rng": rng_states()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Before training resumes: the best so far, and the RNG states of the moment the checkpoint was
        written (the next epoch's shuffle and dropout then draw what they would have drawn; Lightning's
        sanity check, which runs in between, isolates its RNG use)."""
        state = checkpoint.get("nlstudy")
        if state:
            self.best = dict(state["best"])
            set_rng_states(state["rng"])

    def configure_optimizers(self):
        optimizer = make_optimizer(self.optim_spec, self.parameters())
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(self.optim_spec, step, total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
