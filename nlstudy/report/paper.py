"""The paper's numbers: Wang et al. (CVPR 2018), Table 2 on Kinetics-400, packaged with the report
(``wang2018_table2.csv``), and the published cell of a table row.

Which row of ours is which row of the paper is the table spec's ``paper`` map
(:mod:`nlstudy.report.specs`); this module only looks the numbers up.
"""

from __future__ import annotations

import functools
import importlib.resources
import math
from typing import Any

import pandas as pd

from nlstudy import keys
from nlstudy.report.text import canon


@functools.cache
def paper_numbers() -> pd.DataFrame:
    """The paper's Table 2 (Kinetics-400), packaged with nlstudy.report."""
    with importlib.resources.files("nlstudy.report").joinpath("wang2018_table2.csv").open() as f:
        return pd.read_csv(f, dtype={"table": str})


def paper_cell(paper: pd.DataFrame, table_id: str, c: dict) -> dict[str, Any]:
    """``paper_top1``, ``paper_top5``, ``paper_depth`` of a row named (``model``, ``variant``) in the
    paper's table `table_id`: at the row's depth, else the nearest published depth (NaN where the
    paper has no such row)."""
    none = {"paper_top1": math.nan, "paper_top5": math.nan, "paper_depth": math.nan}
    if c.get("model") is None:
        return none
    hits = paper[(paper["table"] == table_id) & (paper["model"] == c["model"]) & (paper["variant"] == c["variant"])]
    if hits.empty:
        return none
    depth = canon(c.get(keys.DEPTH))
    depth = depth if isinstance(depth, (int, float)) and not isinstance(depth, bool) else 50
    best = hits.iloc[(hits["depth"] - depth).abs().argsort(kind="stable").to_numpy()[0]]
    return {"paper_top1": float(best["top1"]), "paper_top5": float(best["top5"]), "paper_depth": int(best["depth"])}
