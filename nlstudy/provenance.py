"""Where a run's numbers come from: the code's git commit (and whether its tree had uncommitted changes), the
versions of the packages that compute and log them, and the host.

`provenance()` gathers them; every run records them once in its config under `provenance.*`
(`keys.PROVENANCE`), and the report never groups runs by them. Git runs without a shell, with a timeout;
without git, outside a checkout, or when git fails, the commit and the dirty flag are "unknown", never an
error. No torch import: the versions come from the installed packages' metadata.
"""

from __future__ import annotations

import importlib.metadata
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "torchvision", "pytorch-lightning", "wandb", "nlstudy")
UNKNOWN = "unknown"
GIT_TIMEOUT_S = 10.0
SOURCE = Path(__file__).resolve().parent  # the nlstudy package: the checkout it lies in is the code that ran


def git(*args: str, cwd: Path = SOURCE) -> str | None:
    """`git ARGS` run in `cwd`: its output, or None where git is missing, fails or takes too long."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT_S,
                              stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(source: Path = SOURCE) -> dict[str, Any]:
    """{"git_commit": the commit checked out, "git_dirty": whether `git status --porcelain` lists anything}
    for the checkout holding `source`, each "unknown" where git cannot tell. A package installed into a
    virtual environment that lies inside some checkout is not that checkout's code: its files must be
    tracked there (`git ls-files --error-unmatch`)."""
    if git("ls-files", "--error-unmatch", "--", "__init__.py", cwd=source) is None:
        return {"git_commit": UNKNOWN, "git_dirty": UNKNOWN}
    commit = git("rev-parse", "HEAD", cwd=source)
    status = git("status", "--porcelain", cwd=source)
    return {"git_commit": commit.strip() if commit else UNKNOWN,
            "git_dirty": bool(status.strip()) if status is not None else UNKNOWN}


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = UNKNOWN
    return versions


def provenance() -> dict[str, Any]:
    """{"git_commit", "git_dirty", "versions": {package: version}, "python", "host"}."""
    return {**git_state(), "versions": package_versions(), "python": platform.python_version(),
            "host": socket.gethostname()}
