"""The embedded task's clips, cached on disk: generated once per generator and arguments, read back by later runs.

`clips(spec, split, frames, size)` returns what `nlstudy.data.synthetic.make_clips` returns, bit for bit. The file
is named by a digest of everything the clips depend on: the generator's source (nlstudy/data/synthetic.py), its
arguments (the SyntheticSpec, the split, frames and size) and the versions of numpy (its random generator) and
scikit-learn (the digits). A changed generator or argument makes a new name, so a stale file is never read.

Where: $NLSTUDY_CLIP_CACHE if set ("off" disables the cache), else `$NLSTUDY_RUNS_DIR/cache/clips` when a runs
root is set (the sweep agent sets it for every run: a suite's runs share one cache, and `make clean` removes it
with runs/), else nowhere (a plain `nlstudy fit`, a notebook or a test generates its clips, as before). A file is
written whole or not at all (a temporary file renamed into place); one that cannot be read is generated again,
and a folder that cannot be written leaves the run to generate its clips, as without the cache.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from nlstudy import keys
from nlstudy.data import synthetic
from nlstudy.data.synthetic import SyntheticSpec, make_clips

CACHE_ENV = "NLSTUDY_CLIP_CACHE"  # a folder, or "off"
OFF = "off"


def folder(runs_dir: str | os.PathLike | None = None) -> Path | None:
    """The cache folder ($NLSTUDY_CLIP_CACHE, else `<runs dir>/cache/clips` of `runs_dir` or $NLSTUDY_RUNS_DIR),
    or None when the cache is off."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen:
        return None if chosen == OFF else Path(chosen)
    runs = runs_dir if runs_dir is not None else os.environ.get(keys.RUNS_ENV)
    return Path(runs) / "cache" / "clips" if runs else None


@functools.cache
def generator_digest() -> str:
    """Digest of the generator's source and of the libraries its output depends on."""
    digest = hashlib.sha256(Path(synthetic.__file__).read_bytes())
    for package in ("numpy", "scikit-learn"):
        digest.update(f"{package}={importlib.metadata.version(package)}".encode())
    return digest.hexdigest()


def key(spec: SyntheticSpec, split: str, frames: int, size: int) -> str:
    """The file name's digest for these arguments (and this generator)."""
    arguments = json.dumps([dataclasses.asdict(spec), split, frames, size], sort_keys=True)
    return hashlib.sha256(f"{generator_digest()}\n{arguments}".encode()).hexdigest()[:32]


def clips(spec: SyntheticSpec, split: str, frames: int, size: int, root: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`make_clips(spec, split, frames, size)`, read from the cache when it holds them, else generated and
    written to it; `root` overrides the folder."""
    where = root if root is not None else folder()
    if where is None:
        return make_clips(spec, split, frames, size)
    path = where / f"{split}-{key(spec, split, frames, size)}.npz"
    found = read(path, frames, size)
    if found is not None:
        return found
    made = make_clips(spec, split, frames, size)
    write(path, *made)
    return made


def read(path: Path, frames: int, size: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The clips and labels of a cache file, or None when it is missing, unreadable or not of the expected kind."""
    try:
        with np.load(path, allow_pickle=False) as data:
            clips_, labels = data["clips"], data["labels"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    n = len(labels)
    if (clips_.dtype != np.float32 or labels.dtype != np.int64 or labels.ndim != 1
            or clips_.shape != (n, 3, frames, size, size)):
        return None
    return clips_, labels


def write(path: Path, clips_: np.ndarray, labels: np.ndarray) -> None:
    """Writes the file whole or not at all; a folder that cannot be written is left as it is."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, clips=clips_, labels=labels)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
