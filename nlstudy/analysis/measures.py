"""Per-run measures the notebooks compare over seeds: where the blocks look, how much their maps and context terms
depend on the query, and the effective receptive field beside the theoretical one. Each function takes one trained
network and its clips and returns plain rows; `per_run` applies one to every run of a frame, adding the run's
identity, so a notebook only collects, compares (nlstudy.analysis.claims) and plots.

    evidence_masks(config, n)            (n, T, H, W) bool: the two patches' pixels of a run's first n val clips
    where_it_looks(model, clips, mask)   per block: the share of a query's weight on the evidence cells, for
                                         queries on the evidence and for background queries (the null: a query
                                         that has no evidence of its own to ask from), and a uniform map's share
    query_dependence_by_type(...)        per block and query type (evidence, background): GCNet's measure of the
                                         attention maps and of the context term before fusion, and the maps'
                                         null with the same entropy (shuffled_query_dependence)
    erf_rows(model, clips, stage, ...)   Luo et al.'s ERF of a stage on data and on noise: RepLKNet's centred
                                         squares at 0.2 / 0.3 / 0.5 / 0.99 of the mass, and the theoretical RF
    per_run(runs, measure, ...)          measure(model, config) for every run that kept its weights
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from nlstudy import keys
from nlstudy.analysis.attention import (attention_maps, evidence_queries, evidence_share, query_dependence,
                                        shuffled_query_dependence)
from nlstudy.analysis.receptive_field import (LUO_INPUTS, REPLKNET_SHARES, effective_receptive_field, erf_squares,
                                              noise_clips, theoretical_rf, unit_centre)
from nlstudy.analysis.runs import load_run
from nlstudy.data.synthetic import SyntheticSpec, evidence_mask

QUERY_TYPES = ("evidence", "background")


def evidence_masks(config: Mapping[str, Any], n: int, split: str = "val") -> torch.Tensor:
    """(n, T, H, W) bool: the pixels of the two patches in the first `n` clips of `split` of a run's embedded task
    (the clips `study.clips_for(config, split, n)` gives)."""
    prefix = "data.synthetic."
    spec = SyntheticSpec(**{k[len(prefix):]: v for k, v in config.items() if k.startswith(prefix)})
    return torch.from_numpy(evidence_mask(spec, split, int(config[keys.FRAMES]), int(config[keys.SIZE]))[:n])


def where_it_looks(model: nn.Module, clips: torch.Tensor, mask: torch.Tensor) -> pd.DataFrame:
    """One row per non-local block: `evidence` (the mean share of an evidence query's weight on the key cells that
    hold evidence), `background` (the same for background queries: the null), `uniform` (the share of key cells
    on the evidence: a uniform map's share), means over the clips that have both kinds of query."""
    rows = []
    for record in attention_maps(model, clips):
        queries = evidence_queries(mask, record.query_grid)  # (B, N)
        keys_on = evidence_queries(mask, record.key_grid)  # (B, K)
        on = evidence_share(record.weights, keys_on, queries)  # (B,)
        off = evidence_share(record.weights, keys_on, ~queries)
        both = torch.isfinite(on) & torch.isfinite(off)
        rows.append({"block": record.name, "grid": "x".join(map(str, record.query_grid)),
                     "evidence": float(on[both].mean()), "background": float(off[both].mean()),
                     "uniform": float(keys_on[both].float().mean()), "clips": int(both.sum())})
    return pd.DataFrame(rows, columns=["block", "grid", "evidence", "background", "uniform", "clips"])


def query_dependence_by_type(model: nn.Module, clips: torch.Tensor, mask: torch.Tensor) -> pd.DataFrame:
    """One row per block (non-local and global-context) and query type: `att` (GCNet's query dependence of the
    attention maps), `att_null` (its null: each query's weights in random order, the same entropy), `context` (the
    query dependence of the block's context term before the fusion x + context) and `input` (of the block's input
    features, for scale). A global-context block has one map and one context vector for every query: 0 by
    construction, measured here all the same."""
    rows = []
    for record in attention_maps(model, clips, include_context=True):
        on = evidence_queries(mask, record.query_grid)  # (B, N)
        for kind, queries in zip(QUERY_TYPES, (on, ~on)):
            rows.append({"block": record.name, "kind": record.kind, "grid": "x".join(map(str, record.query_grid)),
                         "queries": kind,
                         "att": float(query_dependence(record.weights, queries=queries)),
                         "att_null": float(shuffled_query_dependence(record.weights, queries=queries)),
                         "context": float(query_dependence(record.context, queries=queries)),
                         "input": float(query_dependence(record.inputs, queries=queries))})
    return pd.DataFrame(rows, columns=["block", "kind", "grid", "queries", "att", "att_null", "context", "input"])


def erf_rows(model: nn.Module, clips: torch.Tensor, stage: str, *, noise: bool = True,
             shares: Sequence[float] = REPLKNET_SHARES, seed: int = 0) -> pd.DataFrame:
    """Luo et al.'s ERF of `stage` on `clips` ("data") and on as many Gaussian-noise clips of the data's mean and
    spread ("noise"), summed over frames: one row per (input, share) with the side in pixels of the smallest square
    centred on the stage's centre unit that holds `share` of the mass, its area ratio, and the stage's theoretical
    RF side (`rf`, inf where a block mixes every position) and grid."""
    geometry = theoretical_rf(model, clips.shape[1:])[stage]
    centre = unit_centre(geometry)[1:]  # (y, x) of the centre unit
    inputs = {"data": clips}
    if noise:
        inputs["noise"] = noise_clips(len(clips), clips.shape[1:], seed=seed, mean=float(clips.mean()),
                                      std=float(clips.std()))
    rows = []
    for name, x in inputs.items():
        erf = effective_receptive_field(model, x, stage)  # (T, H, W)
        for square in erf_squares(erf.sum(0), centre, shares):
            rows.append({"input": name, "stage": stage, "share": square.share, "side": square.side,
                         "area": square.area, "rf": float(geometry.rf[1]), "grid": "x".join(map(str, geometry.grid)),
                         "clips": len(x)})
    return pd.DataFrame(rows, columns=["input", "stage", "share", "side", "area", "rf", "grid", "clips"])


def per_run(runs: pd.DataFrame, measure: Callable[[nn.Module, dict[str, Any]], pd.DataFrame],
            extra: Sequence[str] = ()) -> pd.DataFrame:
    """`measure(model, config)` for every run of `runs` (a `study.runs_frame`) that kept its weights, each result
    with the run's run_id, seed and the `extra` config keys added; one frame, in the runs' order."""
    frames = []
    for row in runs[runs["has_weights"].astype(bool)].to_dict("records"):
        model, config = load_run(row["run_dir"])
        torch.manual_seed(0)
        out = measure(model, config)
        out = out.assign(run_id=row["run_id"], seed=config.get(keys.SEED),
                         **{k: str(row.get(k)) if isinstance(row.get(k), (dict, list)) else row.get(k) for k in extra})
        frames.append(out)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def erf_inputs(config: Mapping[str, Any], n: int = LUO_INPUTS) -> torch.Tensor:
    """A run's first `n` validation clips, the data inputs of its ERF (Luo et al. average over 500 or more)."""
    from nlstudy.analysis.study import clips_for

    return clips_for(config, "val", n=n)[0]


def seed_values(frame: pd.DataFrame, column: str, by: Sequence[str]) -> dict[tuple, np.ndarray]:
    """{group values: per-seed values of `column`} (one value per seed: the mean over its rows, e.g. its blocks)."""
    out = {}
    for group, rows in frame.groupby(list(by), sort=False, dropna=False):
        out[group if isinstance(group, tuple) else (group,)] = rows.groupby("seed")[column].mean().to_numpy()
    return out


def shortcut_rows(model: nn.Module, config: Mapping[str, Any], n: int = 512, split: str = "test") -> pd.DataFrame:
    """Which rule a classifier of the embedded task follows, on `n` clips of `split`: one row with its accuracy,
    the accuracy of the one-channel rule "same iff the red channels agree" on the same clips (`red_rule`), how often
    the network's answers agree with that rule (`agrees_red`), and the different-colour pairs it calls "same"
    (`confused`). A network that learnt the red-channel shortcut agrees with the rule on every clip."""
    from nlstudy.analysis.shortcuts import confused_pairs, feature_rule, pair_accuracy
    from nlstudy.analysis.study import clips_for
    from nlstudy.data.synthetic import PALETTE, make_colours

    prefix = "data.synthetic."
    spec = SyntheticSpec(**{k[len(prefix):]: v for k, v in config.items() if k.startswith(prefix)})
    clips, labels = clips_for(config, split, n=n)
    colours = make_colours(spec, split, int(config[keys.FRAMES]), int(config[keys.SIZE]))[: len(clips)]
    with torch.no_grad():
        predictions = torch.cat([model(chunk).argmax(1) for chunk in clips.split(64)]).numpy()
    rule = feature_rule(colours, PALETTE[:, 0])
    labels_ = labels.numpy()
    return pd.DataFrame([{"accuracy": float((predictions == labels_).mean() * 100),
                          "red_rule": float((rule == labels_).mean() * 100),
                          "agrees_red": float((predictions == rule).mean() * 100),
                          "confused": " ".join(f"{a}-{b}" for a, b in
                                               confused_pairs(pair_accuracy(predictions, labels_, colours))) or "none",
                          "clips": len(clips)}])


def drops(history: pd.DataFrame, metric: str, at_step: float | Mapping[str, float], *, points: float = 10.0) -> pd.DataFrame:
    """Per run of a long history frame (`records.history_frame`): the largest fall of `metric` from one logged
    value to the next (`drop`, points), the step it falls at, whether it is at least `points`, and whether it is the
    first value logged after the learning rate's drop (`at_step`, one step for all runs or one per run_id)."""
    rows = []
    for run_id, part in history[history["metric"] == metric].groupby("run_id", sort=True):
        part = part.sort_values("global_step" if part["global_step"].notna().all() else "step")
        steps = (part["global_step"] if part["global_step"].notna().all() else part["step"]).to_numpy()
        values = part["value"].to_numpy()
        if len(values) < 2:
            continue
        falls = values[:-1] - values[1:]
        i = int(np.argmax(falls))
        lr_step = at_step[run_id] if isinstance(at_step, Mapping) else at_step
        after = np.flatnonzero(steps >= lr_step)
        rows.append({"run_id": run_id, "drop": float(falls[i]), "step": float(steps[i + 1]),
                     "collapse": bool(falls[i] >= points),
                     "at_lr_drop": bool(len(after) and i + 1 == int(after[0]))})
    return pd.DataFrame(rows, columns=["run_id", "drop", "step", "collapse", "at_lr_drop"])


def place_distance(distance: float, sides: Mapping[float, float], patch: int = 4) -> str:
    """Where evidence `distance` px apart (corner to corner, patches of `patch` px: they span distance + patch px)
    sits against an ERF's centred squares {share: side}: "inside the 0.2 square" when a square of that share
    spans both patches (the smallest such share), "beyond the 0.99 square" when none does."""
    span = distance + patch
    for share in sorted(sides):
        if span <= sides[share]:
            return f"inside the {share:g} square"
    return f"beyond the {max(sides):g} square"
