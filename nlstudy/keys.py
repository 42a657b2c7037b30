"""Names shared by every layer: the run record's metric keys and config prefixes.

One run = one wandb run. Its config holds the resolved CLI configuration flattened to the dotted keys
the CLI and the sweep files use (``model.backbone.arch``, ``data.synthetic.distance``,
``seed_everything``, ``table``...) plus derived facts under ``derived.``. Its summary holds the
metrics below. The sweep and report layers read these names from here; nothing in this module
imports torch.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# --- environment variables (the sweep agent and the tests set them for a run) ---
RUNS_ENV = "NLSTUDY_RUNS_DIR"  # where wandb run directories go (default: ./runs)
THREADS_ENV = "NLSTUDY_NUM_THREADS"  # torch threads for this process (the sweep agent splits the cores)
PROGRESS_ENV = "NLSTUDY_PROGRESS_FILE"  # a run appends one JSON line per validation here (the agent reads it)
STOP_ENV = "NLSTUDY_STOP_FILE"  # the agent creates this file to stop the run after the current epoch
RESUME_ENV = "NLSTUDY_RESUME"  # `nlstudy fit` continues this run directory from its checkpoint (the agent's retries)
# variables that hold credentials (WANDB_API_KEY, HF_TOKEN, AWS_SECRET_ACCESS_KEY, ...): their values are
# never written into a run, a sweep's records or a report
SECRET_NAME = re.compile(r"(^|_)(KEY|TOKEN|SECRET|PASSWORD)$")
WANDB_API_KEY = "WANDB_API_KEY"


def is_secret(name: str) -> bool:
    """Does environment variable `name` hold a credential (its name ends in KEY, TOKEN, SECRET or PASSWORD)?"""
    return bool(SECRET_NAME.search(name.upper()))


def default_runs_root() -> str:
    """Where runs go when no folder is given: $NLSTUDY_RUNS_DIR, else ./runs."""
    return os.environ.get(RUNS_ENV) or "runs"


# --- files a run keeps under its wandb run directory's files/ folder ---
CONFIG_FILE = "nlstudy_config.yaml"  # the resolved configuration as YAML (`nlstudy fit --config` reads it back)
WEIGHTS_DIR = "weights"  # the network's weights, for nlstudy.analysis.load_run:
WEIGHTS_FILES = {"final": "final.pt", "best": "best.pt"}  # the end of training; the best validation top-1

# --- metrics (wandb summary / history keys) ---
TRAIN_LOSS = "train/loss"
VAL_LOSS = "val/loss"
VAL_TOP1 = "val/top1"
VAL_TOP5 = "val/top5"
VAL_TOP1_BEST = "val/top1_best"
VAL_TOP5_BEST = "val/top5_best"  # top-5 at the epoch of the best top-1
TEST_TOP1 = "test/top1"
TEST_TOP5 = "test/top5"
WALL_S = "perf/wall_s"  # seconds from fit start to the end of the run (test included)
TRAIN_CLIPS_PER_S = "perf/train_clips_per_s"  # training throughput, clips per second
PEAK_MEM_MB = "perf/peak_mem_mb"  # peak GPU memory if on GPU, else peak resident set size of the process
FAILURE = "failure"  # a failed run's reason, one line ("NonFiniteLossError: train/loss became nan at step 37 ...")

METRIC_KEYS = (
    TRAIN_LOSS, VAL_LOSS, VAL_TOP1, VAL_TOP5, VAL_TOP1_BEST, VAL_TOP5_BEST,
    TEST_TOP1, TEST_TOP5, WALL_S, TRAIN_CLIPS_PER_S, PEAK_MEM_MB,
)

# --- config keys ---
TABLE = "table"  # which ablation table a run belongs to (set by the sweep files)
# a stand-in's own run (nlstudy.sweep.standin): the wandb id of the finished run that stands in for a run its
# `table` planned (the sweep agent's reuse); readers file that run under this table too, and show no stand-in row
REUSED_FROM = "reused_from"
STAND_IN_FILE = "nlstudy_stand_in.json"  # under a stand-in run's files/: {reused_from, table, sweep_id}
SEED = "seed_everything"
DERIVED = "derived."  # prefix of facts computed at the start of a run
PROVENANCE = "provenance."  # prefix of where the run's numbers come from: git commit, package versions, host
PARAMS = "derived.params"  # trainable + frozen parameters of the backbone
FLOPS = "derived.flops_per_clip"  # forward FLOPs for one clip (torch.utils.flop_counter; a multiply-add = 2)
NL_COUNT = "derived.nl_count"  # number of inserted blocks (non-local or the comparison block)
NL_POSITIONS = "derived.nl_positions"  # e.g. ["res3.1", "res4.3"]: stage and residual-block index
NL_THW = "derived.nl_thw"  # e.g. ["8x14x14", ...]: feature-map size each inserted block sees
INPUT_SHAPE = "derived.input_shape"  # "CxTxHxW" of one clip
NUM_CLASSES = "derived.num_classes"  # classes of the run's data (the report's chance level: 100 / classes)

# how the report compares a table's rows (set per sweep file as parameters, like `table`; never part of a
# run's identity: a run reused by another table is the same run whatever its report settings)
REPORT = "report."
REPORT_METRIC = "report.metric"  # the primary metric of the table (default: test/top1)
REPORT_MARGIN = "report.margin"  # the equivalence margin, in points of the metric (default 2)
REPORT_LOOKS = "report.looks"  # seeds added until decided: the planned numbers of seeds, e.g. [3, 6, 10]

# the ablation axes (sweep files, reports and notebooks use these names)
ARCH = "model.backbone.arch"
DEPTH = "model.backbone.depth"
WIDTH = "model.backbone.width"
NONLOCAL_BLOCKS = "model.backbone.nonlocal_blocks"
BLOCK = "model.backbone.block"
PAIRWISE = "model.backbone.nl.pairwise"
SUBSAMPLE = "model.backbone.nl.subsample"
SUBSAMPLE_ORDER = "model.backbone.nl.subsample_order"
MODE = "model.backbone.nl.mode"
INTER_RATIO = "model.backbone.nl.inter_ratio"
SCALE = "model.backbone.nl.scale"
INIT = "model.backbone.init"  # a fresh backbone's init: msra (the released code) or pytorch (the demo)
NORM = "model.backbone.norm"  # bn, frozen_bn or sync_bn
PRETRAINED = "model.backbone.pretrained"  # the local torchvision ResNet file inflated into the backbone ("": none)
DATASET = "data.dataset"
FRAMES = "data.frames"
SIZE = "data.size"
TASK = "data.synthetic.task"  # the embedded task: far, near (the local control) or within (one frame, a set distance)
DISTANCE = "data.synthetic.distance"  # the embedded task: pixels between the two patches
TRAIN_SAMPLES = "data.synthetic.train_samples"  # the embedded task: training-set size
MAX_EPOCHS = "trainer.max_epochs"
LR = "model.optim.lr"  # the optimiser's learning rate (the study chooses it per arm)

# config values that are dicts by nature (an explicit placement map), not nested config groups
DICT_VALUED_KEYS = (NONLOCAL_BLOCKS,)


def flatten(tree: Mapping[str, Any]) -> dict[str, Any]:
    """A config (or summary) as one level of dotted keys: {"a": {"b": 1}} -> {"a.b": 1}.

    The one flattening behind the wandb config, the sweep parameter names, the report's columns and the
    notebooks. Rules:
    - keys may already be dotted at any level: {"model.backbone": {"depth": 50}} -> {"model.backbone.depth": 50};
    - lists and empty dicts stay values;
    - the value of a DICT_VALUED_KEYS key (an explicit placement map) stays one dict, and dotted keys that
      reach inside it ({"model.backbone.nonlocal_blocks.res4": [1]}) are folded back into it;
    - where one key is reached twice, the spelling with fewer nesting levels wins (a flat dotted key over
      a nested copy of it);
    - keys with a leading underscore (wandb's "_wandb", "_step", ...; jsonargparse's "__path__") are
      bookkeeping, not configuration, and are dropped.
    """
    found: dict[str, tuple[int, Any]] = {}  # dotted key -> (nesting level it was written at, value)

    def put(name: str, value: Any, level: int) -> None:
        if name not in found or level <= found[name][0]:
            found[name] = (level, value)

    def walk(name: str, value: Any, level: int) -> None:
        whole = next((k for k in DICT_VALUED_KEYS if name.startswith(k + ".")), None)
        if whole is not None:  # inside a placement map: fold back into its dict
            level_, folded = found.get(whole, (level, {}))
            if isinstance(folded, dict) and level_ >= level:
                found[whole] = (level, {**folded, name[len(whole) + 1:]: value})
            return
        if isinstance(value, Mapping) and value and name not in DICT_VALUED_KEYS:
            for key, inner in value.items():
                if not str(key).startswith("_"):
                    walk(f"{name}.{key}", inner, level + 1)
        else:
            put(name, value, level)

    for key, value in tree.items():
        if not str(key).startswith("_"):
            walk(str(key), value, 0)
    return {name: value for name, (_, value) in found.items()}


def unknown_key(bad: str, valid: Iterable[str]) -> str:
    """The one-line message for a key that is not one of `valid` (dotted keys): 'BAD: unknown key (did you
    mean X?); valid keys under PARENT: a, b, c', PARENT being the longest leading part of BAD that has valid
    keys (the training CLI and the sweep check word it the same way)."""
    valid = sorted(set(valid))
    parent = bad.rpartition(".")[0]
    while parent and not any(k.startswith(parent + ".") for k in valid):
        parent = parent.rpartition(".")[0]
    siblings = sorted({k[len(parent) + 1:].split(".")[0] for k in valid if k.startswith(parent + ".")} if parent
                      else {k.split(".")[0] for k in valid})
    if parent and bad.rpartition(".")[0] == parent:  # only the last part is wrong: compare it with its siblings
        close = [f"{parent}.{c}" for c in difflib.get_close_matches(bad.rpartition(".")[2], siblings, n=2, cutoff=0.6)]
    else:
        close = difflib.get_close_matches(bad, valid, n=2, cutoff=0.8)
    guess = f" (did you mean {' or '.join(close)}?)" if close else ""
    return f"{bad}: unknown key{guess}; valid keys under {parent or 'the top level'}: {', '.join(siblings)}"


# --- finding a run again (`nlstudy fit --resume RUN`, `model.init_from: RUN`, nlstudy.analysis.load_run) ---

CHECKPOINTS_DIR = "checkpoints"  # under files/: the run's Lightning checkpoint, for `nlstudy fit --resume`
LAST_CHECKPOINT = "last.ckpt"  # overwritten every epoch (weights, optimiser, lr schedule, loops, best so far)
SAVE_CHECKPOINTS = "save_checkpoints"  # fit: keep files/checkpoints/last.ckpt (default true)
INIT_FROM = "model.init_from"  # fit: start from another run's files/weights/final.pt (a run directory or id)
INIT_FROM_RUN = "derived.init_from_run"  # the id of the run model.init_from named
INIT_FROM_COPIED = "derived.init_from_copied"  # tensors copied from it (the rest kept their fresh init)


def find_run(run: str | os.PathLike, runs_root: str | os.PathLike | None = None) -> Path:
    """The wandb run directory of `run`: a run directory (or its files/ folder), or a run id looked up
    under `runs_root` (default $NLSTUDY_RUNS_DIR, else ./runs) as `<runs_root>/wandb/*-run-*-<id>`; a run
    resumed under the same id has several directories, and the newest is returned."""
    path = Path(run)
    if path.is_dir():
        return path.parent if path.name == "files" else path
    root = Path(runs_root if runs_root is not None else default_runs_root())
    found = run_dirs(str(run), root)
    if not found:
        raise FileNotFoundError(f"no run {str(run)!r}: not a run directory, and no {root}/wandb/*-run-*-{run}")
    return found[-1]


def run_dirs(run_id: str, runs_root: str | os.PathLike) -> list[Path]:
    """Every wandb directory of run `run_id` under `runs_root`, oldest first (a resumed run has several)."""
    wandb_dir = Path(runs_root) / "wandb"
    return sorted(wandb_dir.glob(f"*run-*-{run_id}")) if wandb_dir.is_dir() else []


def run_id(run_dir: str | os.PathLike) -> str:
    """The wandb run id of a run directory (`offline-run-<time>-<id>` or `run-<time>-<id>`)."""
    return Path(run_dir).name.rsplit("-", 1)[-1]


def checkpoint_file(run_dir: str | os.PathLike) -> Path:
    """A run's resumable checkpoint: `<run dir>/files/checkpoints/last.ckpt` (rewritten every epoch)."""
    return Path(run_dir) / "files" / CHECKPOINTS_DIR / LAST_CHECKPOINT


def config_file(run_dir: str | os.PathLike) -> Path:
    """A run's resolved configuration: `<run dir>/files/nlstudy_config.yaml`."""
    return Path(run_dir) / "files" / CONFIG_FILE


def weights_file(run_dir: str | os.PathLike, which: str = "final") -> Path:
    """A run's saved weights, `which` of WEIGHTS_FILES: `<run dir>/files/weights/final.pt` or `best.pt`."""
    return Path(run_dir) / "files" / WEIGHTS_DIR / WEIGHTS_FILES[which]
