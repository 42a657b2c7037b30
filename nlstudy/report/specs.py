"""The table registry: what each ablation table compares, and how its rows map to the paper's.

A table is described by a :class:`TableSpec` in :data:`TABLES`: which config keys identify a row
(the variants), which keys split the table into groups that each have their own baseline, how a row
maps to the paper's (model, variant) naming in ``wang2018_table2.csv``, and which settings its title
states (read from the runs, :func:`nlstudy.report.text.title`). A table id found in the runs but
absent from the registry still gets a generic spec (:func:`resolve_spec`): its rows are the distinct
values of the ``model.*`` keys that vary among its runs, and every other varying axis (``data.*``,
``trainer.*``...) splits groups, so each setting of those axes is compared with its own baseline.

Adding a table is one entry in :data:`TABLES` (plus its sweep file); the choices it names (pairwise
functions, architectures, placements) come from :mod:`nlstudy.choices`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from nlstudy import keys
from nlstudy.choices import BASELINE_ARCH, DEFAULT_MODE, DEFAULT_PAIRWISE, MODE_LABELS, NO_BLOCKS, NONLOCAL, RESIDUAL, STAGES
from nlstudy.registry import lookup
from nlstudy.report.schema import FIXED_COLUMNS, Collection
from nlstudy.report.text import canon, short

Row = Mapping[str, Any]  # one row's canonical key values
PaperMap = Callable[[Row], "tuple[str, str] | None"]

# parts of a config key that mark it as a per-run detail rather than an ablation axis
NOISE_PARTS = ("dir", "path", "ckpt", "logger", "callbacks", "wandb", "root")
MODEL_PREFIX = "model."  # in a generic table, the varying keys under it are the rows; the others, groups


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """How to build one ablation table.

    title: the heading, what the table ablates. row_keys: config keys whose values identify a row
    (variant). group_keys: keys that split the table into groups, each with its own baseline.
    paper: maps a row's values to the paper's (model, variant), or None where the paper has no such row.
    fallback_baseline: picks the reference row of a group that has no plain (no block, C2D) row.
    reference: picks the reference row of every group, plain row or not (a table whose question is the other
    arms against one of them: NL against GC, SE and the convolutional control); the plain row, if any, is
    then compared with it like every other row.
    notes: footnotes of this table (what its axes mean), after the common ones.
    setting: what the title states about the runs, appended in brackets where it is the same in every
    run with inserted blocks: ``keys.NL_POSITIONS`` (the number and place of the blocks) or a config key.
    """

    title: str
    row_keys: tuple[str, ...]
    group_keys: tuple[str, ...] = (keys.DATASET, keys.DEPTH)
    paper: PaperMap | None = None
    fallback_baseline: Callable[[Row], bool] | None = None
    reference: Callable[[Row], bool] | None = None
    notes: tuple[str, ...] = ()
    setting: tuple[str, ...] = ()


def is_plain(row: Row) -> bool:
    """The plain baseline: no inserted blocks, C2D (the default where the key is absent)."""
    return row.get(keys.NONLOCAL_BLOCKS) == NO_BLOCKS and (row.get(keys.ARCH) or BASELINE_ARCH) == BASELINE_ARCH


def _nl(row: Row) -> bool:
    """An inserted block that is the non-local block (the default where the key is absent)."""
    return row.get(keys.NONLOCAL_BLOCKS) not in (NO_BLOCKS, None) and row.get(keys.BLOCK) in (None, NONLOCAL)


def _arch(row: Row) -> str:
    return row.get(keys.ARCH) or BASELINE_ARCH


def _paper_2a(row: Row):
    if is_plain(row):
        return ("C2D", "baseline")
    if _arch(row) == BASELINE_ARCH and _nl(row) and row.get(keys.NONLOCAL_BLOCKS) == "1-block":
        return ("NL C2D 1-block", row.get(keys.PAIRWISE) or DEFAULT_PAIRWISE)
    return None


def _paper_2b(row: Row):
    if is_plain(row):
        return ("C2D", "baseline")
    if _arch(row) == BASELINE_ARCH and _nl(row) and row.get(keys.NONLOCAL_BLOCKS) in STAGES:
        return ("NL C2D 1-block", row[keys.NONLOCAL_BLOCKS])
    return None


def _paper_2c(row: Row):
    if is_plain(row):
        return ("C2D", "baseline")
    if _arch(row) == BASELINE_ARCH and _nl(row) and row.get(keys.NONLOCAL_BLOCKS) in ("1-block", "5-block", "10-block"):
        return ("NL C2D", row[keys.NONLOCAL_BLOCKS])
    return None


def _paper_2d(row: Row):
    if is_plain(row):
        return ("C2D", "baseline")
    if _arch(row) == BASELINE_ARCH and _nl(row) and row.get(keys.NONLOCAL_BLOCKS) == "5-block":
        mode = row.get(keys.MODE) or DEFAULT_MODE
        return ("NL C2D 5-block", MODE_LABELS.get(mode, mode))
    return None


def _paper_2e(row: Row):
    blocks = row.get(keys.NONLOCAL_BLOCKS)
    if is_plain(row):
        return ("C2D", "baseline")
    if blocks == NO_BLOCKS and _arch(row) in ("i3d_3x3x3", "i3d_3x1x1"):
        return ("I3D", _arch(row).removeprefix("i3d_"))
    if _arch(row) == BASELINE_ARCH and _nl(row) and blocks == "5-block":
        return ("NL C2D", "5-block")
    return None


def _paper_2f(row: Row):
    blocks = row.get(keys.NONLOCAL_BLOCKS)
    if is_plain(row):
        return ("C2D", "baseline")
    if _arch(row) == "i3d_3x1x1" and blocks == NO_BLOCKS:
        return ("I3D", "baseline")
    if _arch(row) == "i3d_3x1x1" and _nl(row) and blocks == "5-block":
        return ("NL I3D", "5-block")
    return None


def _paper_2g(row: Row):
    """Table 2f's rows at 128 frames, each named "128-frame"."""
    named = _paper_2f(row) if row.get(keys.FRAMES) == 128 else None
    return (named[0], "128-frame") if named else None


_SELECTION_NOTE = ("one selection seed per (arm, rate), not a seed of the study's runs: these rows choose each arm's rate "
                   "on validation (nlstudy.analysis.tuning.choose_by_arm); they are not evidence of an effect.")
_REACH_NOTE = ("distance: pixels between the two patches of task 'reach' (both in one frame, exactly that far "
               "apart, placed independently of the distance); 2 colours, so relating the two patches is the task.")
_RATE_NOTE = "lr: the arm's learning rate, chosen on validation by its rate sweep (nlstudy.analysis.tuning)."

TABLES: dict[str, TableSpec] = {
    "2a": TableSpec("Table 2a: pairwise function", (keys.NONLOCAL_BLOCKS, keys.PAIRWISE), paper=_paper_2a,
                    setting=(keys.NL_POSITIONS,)),
    "2b": TableSpec("Table 2b: stage of the non-local block", (keys.NONLOCAL_BLOCKS,), paper=_paper_2b,
                    setting=(keys.NL_POSITIONS,)),
    "2c": TableSpec("Table 2c: number of non-local blocks", (keys.NONLOCAL_BLOCKS,), paper=_paper_2c),
    "2d": TableSpec("Table 2d: space-only, time-only and spacetime non-local",
                    (keys.NONLOCAL_BLOCKS, keys.MODE), paper=_paper_2d, setting=(keys.NL_POSITIONS,)),
    "2e": TableSpec("Table 2e: non-local C2D vs 3D convolution (I3D)", (keys.ARCH, keys.NONLOCAL_BLOCKS),
                    paper=_paper_2e),
    "2f": TableSpec("Table 2f: non-local I3D", (keys.ARCH, keys.NONLOCAL_BLOCKS), paper=_paper_2f),
    "2g": TableSpec("Table 2g: longer clips", (keys.ARCH, keys.NONLOCAL_BLOCKS, keys.FRAMES),
                    paper=_paper_2g, setting=(keys.FRAMES,)),
    "subsample": TableSpec("Subsampling of the pairwise path (phi, g)",
                           (keys.NONLOCAL_BLOCKS, keys.SUBSAMPLE, keys.SUBSAMPLE_ORDER)),
    "resolution": TableSpec("Non-local block vs input resolution", (keys.NONLOCAL_BLOCKS,),
                            group_keys=(keys.DATASET, keys.DEPTH, keys.FRAMES, keys.SIZE)),
    "inter_ratio": TableSpec("Inner width of the non-local block (channels / C)",
                             (keys.NONLOCAL_BLOCKS, keys.INTER_RATIO)),
    "scale": TableSpec("1/sqrt(d) scaling of the softmax logits", (keys.NONLOCAL_BLOCKS, keys.SCALE),
                       setting=(keys.PAIRWISE,)),
    "control": TableSpec("Control: the same positions with a plain residual, non-local, "
                         "global-context or squeeze-excitation block",
                         (keys.BLOCK, keys.NONLOCAL_BLOCKS),
                         fallback_baseline=lambda row: row.get(keys.BLOCK) == RESIDUAL),
    "locality": TableSpec("Locality control: long-range (far) vs local-evidence (near) task",
                          (keys.NONLOCAL_BLOCKS,), group_keys=(keys.DATASET, keys.DEPTH, keys.TASK)),
    "receptive_field": TableSpec(
        "Receptive field: top-1 vs the distance between the two patches of the embedded task",
        (keys.NONLOCAL_BLOCKS,), group_keys=(keys.DATASET, keys.DEPTH, keys.TASK, keys.DISTANCE),
        notes=("distance: pixels between the two patches (Chebyshev, corner to corner); with task=within "
               "both patches are in one frame exactly that far apart, with task=far it is a minimum and the "
               "patches are in different frames.",)),
    "data_efficiency": TableSpec(
        "Data efficiency: top-1 vs the number of training clips of the embedded task",
        (keys.NONLOCAL_BLOCKS,), group_keys=(keys.DATASET, keys.DEPTH, keys.TASK, keys.TRAIN_SAMPLES),
        notes=("train_samples: clips in the training split; the validation clips are drawn independently "
               "of it, so every row is scored on the same validation set. With a fixed trainer.max_epochs a "
               "smaller training set also means fewer optimiser steps.",)),
    "attention": TableSpec(
        "Attention-map runs: pairwise function and mode of the non-local block",
        (keys.NONLOCAL_BLOCKS, keys.PAIRWISE, keys.MODE), setting=(keys.NL_POSITIONS,)),
    # the study (sweeps/demo/study/): each arm at the learning rate chosen for it on validation, so the rate is part
    # of a row (every arm has one); in the rate sweeps the rate is a group (each arm against C2D at the same rate)
    "reach_lr": TableSpec(
        "Reach (56-px frames, 14x14 at res2, 7x7 at res3): each arm at each learning rate (selection runs)",
        (keys.NONLOCAL_BLOCKS, keys.BLOCK), group_keys=(keys.DATASET, keys.DEPTH, keys.TASK, keys.DISTANCE, keys.LR),
        notes=(_SELECTION_NOTE,)),
    "reach": TableSpec(
        "Reach in the seed's regime (56-px frames, 14x14 at res2, 7x7 at res3): top-1 vs the distance "
        "between the two patches", (keys.NONLOCAL_BLOCKS, keys.BLOCK, keys.LR),
        group_keys=(keys.DATASET, keys.DEPTH, keys.TASK, keys.DISTANCE), notes=(_REACH_NOTE, _RATE_NOTE)),
    "reach_112": TableSpec(
        "Reach at 112 px (14x14 at res3, 7x7 at res4): evidence inside and beyond C2D's measured ERF",
        (keys.NONLOCAL_BLOCKS, keys.BLOCK, keys.LR),
        group_keys=(keys.DATASET, keys.DEPTH, keys.TASK, keys.DISTANCE), notes=(_REACH_NOTE, _RATE_NOTE)),
    "far_lr": TableSpec(
        "Far (the patches in different frames): each frame-mixing arm at each learning rate (selection runs)",
        (keys.ARCH, keys.NONLOCAL_BLOCKS, keys.BLOCK), group_keys=(keys.DATASET, keys.DEPTH, keys.TASK, keys.LR),
        notes=(_SELECTION_NOTE,)),
    "far_mixers": TableSpec(
        "Far: the non-local block against the other ways of relating frames (GC, SE, a convolutional control, I3D)",
        (keys.ARCH, keys.NONLOCAL_BLOCKS, keys.BLOCK, keys.LR), group_keys=(keys.DATASET, keys.DEPTH, keys.TASK),
        reference=lambda row: _nl(row) and _arch(row) == BASELINE_ARCH,
        notes=("every row is compared with the non-local row (the reference, first): a positive delta is an arm "
               "that beats the non-local block; the C2D row is the chance-level floor of this task.", _RATE_NOTE)),
    "data_steps": TableSpec(
        "Data efficiency at a fixed budget of optimiser steps: top-1 vs the number of training clips",
        (keys.NONLOCAL_BLOCKS, keys.BLOCK, keys.LR),
        group_keys=(keys.DATASET, keys.DEPTH, keys.TASK, keys.TRAIN_SAMPLES),
        notes=("train_samples: clips in the training split; every run takes the same number of optimiser steps "
               "(trainer.max_steps), so a smaller set is seen more times, not trained for less.", _RATE_NOTE)),
}


def table_spec(table_id: str) -> TableSpec:
    """The registered spec of `table_id`, or a ValueError listing the valid ids."""
    return lookup(TABLES, table_id, "table")


def table_ids(runs: pd.DataFrame, expected: pd.DataFrame | None = None) -> list[str]:
    """The table ids found in the runs (and planned sweeps): registry order, then the others sorted."""
    found = set(runs["table"].dropna()) if "table" in runs.columns else set()
    if expected is not None and "table" in expected.columns:
        found |= set(expected["table"].dropna())
    found = {str(t) for t in found}
    return [t for t in TABLES if t in found] + sorted(found - set(TABLES))


def config_columns(runs: pd.DataFrame) -> list[str]:
    """The config columns of a runs frame (``runs.attrs["config_columns"]``, else every column that is
    neither fixed nor a metric: metric keys hold a "/" or are wandb's ``epoch``)."""
    listed = runs.attrs.get("config_columns")
    if listed is not None:
        return [c for c in listed if c in runs.columns]
    return [c for c in runs.columns if c not in FIXED_COLUMNS and "/" not in c and c != "epoch"
            and not c.startswith("_")]


def is_axis(key: str) -> bool:
    """Could `key` be an ablation axis (as opposed to the seed, a derived fact, the run's provenance, how the
    report compares, a per-run path)?"""
    if key in (keys.SEED, keys.TABLE) or key.startswith((keys.DERIVED, keys.PROVENANCE, keys.REPORT)):
        return False
    lowered = key.lower()
    return not any(part in lowered for part in NOISE_PARTS)


def resolve_spec(table_id: str, runs: pd.DataFrame) -> TableSpec:
    """The registered spec, or for an unknown id a generic one built from the keys that vary: the
    varying ``model.*`` keys are the rows, every other varying axis (``data.*``, ``trainer.*``...)
    a group key, so each setting of those axes has its own baseline."""
    if table_id in TABLES:
        return TABLES[table_id]
    mine = runs[runs["table"] == table_id] if "table" in runs.columns else runs
    varying = []
    for key in config_columns(mine):
        if key == keys.DATASET or not is_axis(key):
            continue
        values = {canon(v) for v in mine[key]}
        if len(values) > 1:
            varying.append(key)
    rows = tuple(sorted(k for k in varying if k.startswith(MODEL_PREFIX)))
    axes = tuple(sorted(k for k in varying if not k.startswith(MODEL_PREFIX)))
    title = f"Table {table_id}"
    if rows:
        title += ": " + ", ".join(short(k) for k in rows)
    if axes:
        title += (" at each " if rows else ": ") + ", ".join(short(k) for k in axes)
    return TableSpec(title=title, row_keys=rows, group_keys=(keys.DATASET, *axes))


UNTABLED = "untabled"  # the generic table of the runs that carry no `table` key (a run of `nlstudy fit` alone)


def file_untabled(collection: Collection, table_ids: Sequence[str] | None) -> tuple[Collection, str]:
    """Runs without a `table` key (set by the sweep files) are in no ablation table: unless --tables picks the
    tables, they are filed under the generic table UNTABLED (its rows: the model settings that vary among them).
    Returns the collection and the one line that says so ("" when every run has a table)."""
    runs = collection.runs
    untabled = runs["table"].isna() if "table" in runs else pd.Series(False, index=runs.index)
    if not untabled.any():
        return collection, ""
    what = (f"{int(untabled.sum())} of {len(runs)} run(s) carry no `table` key (the sweep files set it; "
            "`nlstudy fit --table=NAME` names one)")
    if table_ids:
        return collection, f"{what}: they are in none of the tables asked for (--tables)"
    filed = runs.assign(table=runs["table"].where(~untabled, UNTABLED))
    filed.attrs.update(runs.attrs)
    return Collection(filed, collection.history), f"{what}: they make the generic table {UNTABLED!r}"
