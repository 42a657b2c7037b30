"""Stop a run at its first non-finite training loss: a NaN or an infinity never becomes a result.

`LossWatch.check(loss, step, epoch)` raises `NonFiniteLossError` ("train/loss became nan at step 37 (epoch 2)")
for a loss that is NaN or infinite. It only reads the loss; the computation is unchanged.

On the CPU the check reads the value at once (free there). On a GPU, reading a value waits for the device
(a synchronisation per step the training loop does not otherwise make), so each step's loss is copied into
pinned host memory without waiting and read at a later step, once a CUDA event says the copy has landed:
the step that raises is then a step or two after the bad one, whose number the message still names; `drain`
(at the end of every training epoch) reads whatever is still pending.
"""

from __future__ import annotations

import math
from collections import deque

import torch


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite: the run stops at once and is recorded as failed."""


class LossWatch:
    def __init__(self, name: str) -> None:
        self.name = name  # the logged name of the watched value, for the message
        self.pending: deque[tuple[int, int, torch.Tensor, torch.cuda.Event]] = deque()

    def check(self, loss: torch.Tensor, step: int, epoch: int) -> None:
        if loss.device.type != "cuda":
            self._verify(float(loss.detach()), step, epoch)
            return
        self._read(wait=False)
        value = torch.empty((), dtype=torch.float32, pin_memory=True)
        value.copy_(loss.detach(), non_blocking=True)
        landed = torch.cuda.Event()
        landed.record()
        self.pending.append((step, epoch, value, landed))

    def drain(self) -> None:
        """Read every pending value (waiting for the device where needed)."""
        self._read(wait=True)

    def _read(self, wait: bool) -> None:
        while self.pending and (wait or self.pending[0][3].query()):
            step, epoch, value, landed = self.pending.popleft()
            landed.synchronize()
            self._verify(value.item(), step, epoch)

    def _verify(self, value: float, step: int, epoch: int) -> None:
        if not math.isfinite(value):
            self.pending.clear()
            raise NonFiniteLossError(f"{self.name} became {value} at step {step} (epoch {epoch})")
