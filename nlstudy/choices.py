"""The vocabulary: every named choice a run can make, in one torch-free place.

The model, data, training, sweep and report layers all read their choices from here: the specs'
``Literal`` types are built from these tuples (``Literal[PAIRWISE]``), the implementations' registries
are checked against them by the tests (``tests/test_choices.py``), and the report orders and labels
table rows with them. Adding a choice is one line here plus its code where it is built:

    pairwise function   PAIRWISE here + its record in nlstudy/blocks/pairwise.py (FORMS)
    architecture        ARCHS here + its temporal kernels in nlstudy/models/resnet.py (ARCH_KERNELS)
    torchvision network TORCHVISION_ARCHS here + its builder in nlstudy/models/plugin.py (TORCHVISION_NETS)
    inserted block      BLOCKS here + its builder in nlstudy/models/__init__.py (INSERTABLE)
    norm / init         NORMS / INITS here + its record in nlstudy/models/resnet.py (NORM_LAYERS, INITS)
    placement preset    PLACEMENTS here + its rule in nlstudy/models/placement.py (PRESETS)
    dataset             DATASETS here + its record in nlstudy/data/__init__.py (DATASETS; the source's code beside)
    optimiser/schedule  OPTIMIZERS / SCHEDULES here + its record in nlstudy/lit/optim.py (OPTIMIZERS, SCHEDULES)
The records of the last three rows are nlstudy.registry.Choice (name, what it builds, a one-line help).

Orders are meaningful: an error lists the choices in this order, and the report's tables put rows in
it (the paper's order), so a new choice goes where it should appear.
"""

from __future__ import annotations

from typing import Literal

# --- the non-local block (model.backbone.nl.*) ---
PAIRWISE = ("gaussian", "embedded_gaussian", "dot_product", "concatenation")  # the paper's Table 2a, in its order
DEFAULT_PAIRWISE = "embedded_gaussian"  # the paper's default form
MODES = ("spacetime", "space", "time")
DEFAULT_MODE = "spacetime"
MODE_LABELS = {"space": "space-only", "time": "time-only", "spacetime": "spacetime"}  # Table 2d's rows, in its order
SUBSAMPLE_ORDERS = ("after", "before")  # pool phi/g outputs (the paper) or x before phi/g (the released Caffe2 code)
ZERO_INITS = ("norm", "conv")  # zero the output BN (the paper) or the output conv and drop the norm

# --- the backbone (model.backbone.*) ---
ARCH_LABELS = {"c2d": "C2D", "i3d_3x3x3": "I3D 3x3x3", "i3d_3x1x1": "I3D 3x1x1"}  # Table 2e's rows, in its order
ARCHS = tuple(ARCH_LABELS)
# torchvision's own networks, built with weights=None and non-local blocks plugged in (nlstudy/models/plugin.py,
# TORCHVISION_NETS): 2-d ResNets take one-frame clips, the video ResNets any clip
TORCHVISION_ARCHS = tuple(f"torchvision:{name}" for name in (
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2",
    "r3d_18", "mc3_18", "r2plus1d_18",
))
BASELINE_ARCH = "c2d"
DEPTHS = (18, 34, 50, 101)
STAGES = ("res2", "res3", "res4", "res5")
BLOCK_LABELS = {"residual": "Res", "nonlocal": "NL", "global_context": "GC", "squeeze_excitation": "SE",
                "temporal_residual": "Res 3x3x3"}
BLOCKS = tuple(BLOCK_LABELS)  # what is inserted at the placement: the non-local block or a comparison block
NONLOCAL = "nonlocal"  # the block under study, and the default
RESIDUAL = "residual"  # the paper's control: one more residual block at the same place
TEMPORAL_RESIDUAL = "temporal_residual"  # the same with a 3x3x3 kernel (I3D's inflation): a convolutional mixer of frames
NO_BLOCKS = "none"
NORMS = ("bn", "frozen_bn", "sync_bn")  # model.backbone.norm: BatchNorm; frozen statistics and affine; SyncBatchNorm under DDP
INITS = ("msra", "pytorch")  # model.backbone.init of a fresh backbone: the released code's (Kaiming) or PyTorch's defaults
PLACEMENTS = (NO_BLOCKS, "1-block", "5-block", "10-block", *STAGES)  # named presets of model.backbone.nonlocal_blocks

# --- data (data.*) ---
SPLITS = ("train", "val", "test")  # append only: the index seeds the embedded task's clips of a split
SPLIT_INDEX = {split: i for i, split in enumerate(SPLITS)}  # and picks a split's list / annotation file
DATASETS = ("synthetic", "kinetics", "ucf101", "hmdb51", "video_folder", "rawframes", "images", "cifar10", "cifar100")
KINETICS = "kinetics"
TASKS = ("far", "near", "within", "reach")  # the embedded task (data.synthetic.task); append only: the index seeds its clips

# --- training (nlstudy <command>, model.optim.*) ---
TRAIN_COMMANDS = ("fit", "validate", "test")  # the LightningCLI subcommands nlstudy offers
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("step", "cosine", "constant")

# the Literal types of the specs (jsonargparse reads the choices from them)
Pairwise = Literal[PAIRWISE]
Mode = Literal[MODES]
SubsampleOrder = Literal[SUBSAMPLE_ORDERS]
ZeroInit = Literal[ZERO_INITS]
Arch = Literal[ARCHS + TORCHVISION_ARCHS]  # model.backbone.arch: ours, then torchvision's
Depth = Literal[DEPTHS]
Block = Literal[BLOCKS]
Norm = Literal[NORMS]
Init = Literal[INITS]
Task = Literal[TASKS]
Optimizer = Literal[OPTIMIZERS]
Schedule = Literal[SCHEDULES]
