"""Reading torch files that may come from anyone: weights, checkpoints, a run's saved network.

A `.pt` / `.pth` / `.ckpt` file is a pickle, and unpickling calls whatever functions the file names: a
crafted file runs code the moment it is loaded. Every file nlstudy reads goes through `load_weights`,
`torch.load(weights_only=True)`: tensors, containers and plain values only; a file that names any other
class or function is refused before anything in it is called. nlstudy's own files (weights, checkpoints
with their RNG states and best-so-far) need nothing more.
"""

from __future__ import annotations

import os
import re
from typing import Any

import torch

from nlstudy.errors import one_line

# the global torch's weights-only unpickler refuses, as its message names it ("Unsupported global: GLOBAL
# x.y was not an allowed global", "unsupported GLOBAL posix.system whose module posix is blocked"); the rest
# of the message advises loading with weights_only=False, which is what must not happen to such a file
REFUSED_GLOBAL = re.compile(r"\bGLOBAL ([\w.]+)")


def load_weights(path: str | os.PathLike, what: str, *, mmap: bool = False) -> Any:
    """The contents of torch file `path` on the CPU, read with `torch.load(weights_only=True)` (`mmap`:
    memory-mapped, where the file's format allows it: cheap for a large file read only in part).

    A missing file, a file torch cannot read, and a file whose pickle names a class or function beyond
    tensors and plain values (which unpickling would call: it can run code) are each a one-line
    ValueError starting with `what` and naming the file; nothing in a refused file runs."""
    if not os.path.isfile(path):
        raise ValueError(f"{what}: {os.fspath(path)}: no such file")
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError:
            if not mmap:
                raise
            return torch.load(path, map_location="cpu", weights_only=True)  # the legacy format cannot be mapped
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same one-line error
        refused = REFUSED_GLOBAL.search(str(e))
        why = (f"it names {refused.group(1)}, which unpickling would call (a file that can run code)" if refused
               else f"{type(e).__name__}: {one_line(e, 160)}")
        raise ValueError(f"{what}: {os.fspath(path)}: refused by torch.load(weights_only=True): {why}") from None
