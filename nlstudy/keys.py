"""Names shared by every layer: the run record's metric keys and config prefixes.

One run = one wandb run. Its config holds the resolved CLI configuration flattened to the dotted keys
the CLI and the sweep files use (``model.backbone.arch``, ``data.synthetic.distance``,
``seed_everything``, ``table``...) plus derived facts under ``derived.``. Its summary holds the
metrics below. The sweep and report layers read these names from here; nothing in this module
imports torch.
"""

from __future__ import annotations

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

METRIC_KEYS = (
    TRAIN_LOSS, VAL_LOSS, VAL_TOP1, VAL_TOP5, VAL_TOP1_BEST, VAL_TOP5_BEST,
    TEST_TOP1, TEST_TOP5, WALL_S, TRAIN_CLIPS_PER_S, PEAK_MEM_MB,
)

# --- config keys ---
TABLE = "table"  # which ablation table a run belongs to (set by the sweep files)
SEED = "seed_everything"
DERIVED = "derived."  # prefix of facts computed at the start of a run
PARAMS = "derived.params"  # trainable + frozen parameters of the backbone
FLOPS = "derived.flops_per_clip"  # forward FLOPs for one clip (torch.utils.flop_counter; a multiply-add = 2)
NL_COUNT = "derived.nl_count"  # number of inserted blocks (non-local or the comparison block)
NL_POSITIONS = "derived.nl_positions"  # e.g. ["res3.1", "res4.3"]: stage and residual-block index
NL_THW = "derived.nl_thw"  # e.g. ["8x14x14", ...]: feature-map size each inserted block sees
INPUT_SHAPE = "derived.input_shape"  # "CxTxHxW" of one clip

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
DATASET = "data.dataset"
FRAMES = "data.frames"
SIZE = "data.size"
TASK = "data.synthetic.task"  # the embedded task: far, near (the local control) or within (one frame, a set distance)
DISTANCE = "data.synthetic.distance"  # the embedded task: pixels between the two patches
TRAIN_SAMPLES = "data.synthetic.train_samples"  # the embedded task: training-set size
MAX_EPOCHS = "trainer.max_epochs"

# config values that are dicts by nature (an explicit placement map), not nested config groups
DICT_VALUED_KEYS = (NONLOCAL_BLOCKS,)


def flatten(tree: dict, prefix: str = "") -> dict:
    """Nested dicts -> one level of dotted keys: {"a": {"b": 1}} -> {"a.b": 1}. Lists stay values, and so
    do the dicts of DICT_VALUED_KEYS (an explicit placement map is one value, not a nested group)."""
    flat: dict = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and name not in DICT_VALUED_KEYS:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat
