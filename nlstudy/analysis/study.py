"""The glue between logged runs and the analysis functions, for the notebooks: which runs a runs root
holds (read from their run directories, no wandb needed), the clips a run was validated on, and the per-block
and per-stage frames the notebooks show (where the evidence sits in a clip of the embedded task:
nlstudy.analysis.evidence).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from nlstudy import keys
from nlstudy.analysis.attention import BlockAttention, query_dependence
from nlstudy.analysis.receptive_field import erf_area, temporal_spread
from nlstudy.analysis.runs import run_config
from nlstudy.choices import NO_BLOCKS, NONLOCAL
from nlstudy.data.synthetic import SyntheticSpec, make_clips
from nlstudy.report.offline import read_runs
from nlstudy.report.schema import Collection
from nlstudy.report.sweeps import add_stand_ins

def runs_frame(runs_root: str | os.PathLike, table: str | None = None) -> pd.DataFrame:
    """One row per nlstudy run under `runs_root` (`<root>/wandb/*run-*`, or run directories directly
    below it): run_id, run_dir, has_weights (its final weights were saved: training finished), and its
    resolved config as dotted-key columns. A run that stands in for a reused run of another table (the
    sweep agent's reuse: the same resolved configuration) is also filed under that table, as the report
    files it. Only runs of `table` when given. Sorted by table, then config, then seed, so the same runs
    give the same frame whatever order they finished in."""
    root = Path(runs_root)
    if not root.is_dir():
        raise FileNotFoundError(f"runs root {root} does not exist")
    base = root / "wandb" if (root / "wandb").is_dir() else root
    rows = []
    for run_dir in sorted(p for p in base.glob("*run-*") if keys.config_file(p).is_file()):
        config = run_config(run_dir)
        has_weights = keys.weights_file(run_dir, "final").is_file()
        rows.append({"run_id": keys.run_id(run_dir), "run_dir": str(run_dir), "has_weights": has_weights,
                     **{k: _cell(v) for k, v in config.items()}})
    frame = add_stand_ins(pd.DataFrame(rows), root)
    if table is not None and not frame.empty:
        frame = frame[frame.get(keys.TABLE, pd.Series(None, index=frame.index)).map(str) == table]
    if frame.empty:
        return pd.DataFrame(columns=["run_id", "run_dir", "has_weights"])
    config = sorted(c for c in frame.columns if c not in ("run_id", "run_dir", "has_weights", keys.TABLE, keys.SEED))
    order = [c for c in (keys.TABLE, *config, keys.SEED, "run_id") if c in frame.columns]
    return frame.sort_values(order, key=_sort_key, kind="stable").reset_index(drop=True)


def runs_for(runs_root: str | os.PathLike, table: str | None = None) -> pd.DataFrame:
    """What a notebook reads: `runs_frame(runs_root, table)`, or, where `table` has no runs there but the root
    has runs (your own: `nlstudy fit` sets no table), every run of the root, saying so in one line. A runs root
    that holds no run at all is a FileNotFoundError naming it and how to make one."""
    frame = runs_frame(runs_root, table)
    if len(frame):
        return frame
    every = runs_frame(runs_root) if table is not None else frame
    if every.empty:
        raise FileNotFoundError(f"no runs under {runs_root}: `nlstudy fit --config experiments/demo.yaml` makes one "
                                "(in runs/), `make analysis` makes the analysis runs (in runs/analysis)")
    print(f"no runs of table {table!r} under {runs_root}: these are its {len(every)} run(s), of any table")
    return every


def one_seed(runs: pd.DataFrame, seed: Any) -> pd.DataFrame:
    """The runs of `seed`, or where there are none, those of the lowest seed there is (saying so)."""
    if runs.empty or keys.SEED not in runs:
        return runs
    mine = runs[runs[keys.SEED] == seed]
    if len(mine) or runs[keys.SEED].isna().all():
        return mine
    lowest = runs[keys.SEED].min()
    print(f"no run of seed {seed}: these are the runs of seed {lowest}")
    return runs[runs[keys.SEED] == lowest]


def with_blocks(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs that kept their weights and have non-local blocks (the ones whose attention can be drawn)."""
    if runs.empty:
        return runs
    blocks = runs.get(keys.NONLOCAL_BLOCKS, pd.Series("none", index=runs.index))
    block = runs.get(keys.BLOCK, pd.Series(NONLOCAL, index=runs.index)).fillna(NONLOCAL)
    return runs[runs["has_weights"].astype(bool) & (blocks != NO_BLOCKS) & (block == NONLOCAL)]


# --- what a notebook can say from the runs it has, and what it would need for more -------------------------------


def sweep_command(sweep: str) -> str:
    return f"`nlstudy sweep {sweep} --runs-root <your runs root>`"


def table_needs(table: pd.DataFrame, sweep: str | None = None, *, axis: str | None = None,
                runs: pd.DataFrame | None = None) -> list[str]:
    """What a built table lacks for its comparison: a baseline row, a row to compare with it, two seeds a row,
    and (`axis`: a distance, a training-set size) runs at two values of that key at least (read from `runs`,
    else the table); then the sweep that makes them all (`sweep`, else the demo's sweep files). [] when nothing
    is missing."""
    needs = []
    if table.empty:
        needs.append("finished runs of this table")
    else:
        if not table["baseline"].astype(bool).any() or not table["delta"].notna().any():
            needs.append("a baseline to compare with: a run of the same settings without blocks "
                         "(`--model.backbone.nonlocal_blocks=none`)")
        if (~table["baseline"].astype(bool)).sum() == 0:
            needs.append("a variant to compare with the baseline (another setting of the model: a block, another "
                         "pairwise function, ...)")
        few = table[table["n"] < 2]
        if len(few):
            needs.append(f"at least two seeds a row for a test ({len(few)} of {len(table)} row(s) have fewer: the "
                         "same run again with `--seed_everything=1`, `2`)")
    if axis is not None:
        source = runs if runs is not None else table
        values = sorted({v for v in source.get(axis, pd.Series(dtype=object)).dropna()})
        if len(values) < 2:
            have = f" (these runs have {axis}={values[0]:g} only)" if values and isinstance(values[0], (int, float)) else ""
            needs.append(f"runs at several values of {axis}{have}, with and without the block")
    if needs:
        needs.append(f"the sweep of this question runs all of it: {sweep_command(sweep)}" if sweep else
                     "a sweep runs a table's rows with their seeds: sweeps/demo/*.yaml, e.g. "
                     f"{sweep_command('sweeps/demo/2a_pairwise.yaml')} for Table 2a")
    return needs


def baseline_lines(table: pd.DataFrame) -> list[str]:
    """What a table's baseline rows say by themselves (the findings compare the other rows with them): each one's
    value of the table's metric, and its number of runs."""
    from nlstudy.report.text import metric_name

    name = metric_name(table.attrs.get("settings", {}).get("metric", ""))
    return [f"{row['label']}: {name} {row['mean']:.1f} (n={int(row['n'])}), the baseline of its group."
            for row in table.to_dict("records") if row.get("baseline") and row.get("n", 0) > 0]


NO_ATTENTION = ("a run with non-local blocks that kept its weights, on the embedded task, e.g. "
                "`nlstudy fit --config experiments/demo.yaml --model.backbone.nonlocal_blocks=res2`")


def conclusion(said: Sequence[str], needs: Sequence[str] = ()) -> str:
    """A notebook's last words as Markdown: what its runs say, then what it would need for more."""
    lines = list(said) or ["These runs answer nothing of this notebook's question yet."]
    text = "\n\n".join(lines)
    if needs:
        text += "\n\n**For more, this notebook needs:**\n\n" + "\n".join(f"- {n}" for n in needs)
    return text


def table_runs(runs_root: str | os.PathLike, table: str) -> Collection:
    """The runs of `table` under `runs_root` as the report's tables count them: the logs of `runs_frame`'s runs
    read once (`offline.read_runs`: summaries and histories), each filed under `table`; a run that stands in
    for this table's run of the same resolved configuration was logged under the table it ran for. Where the
    root has no run of `table` (your own runs), its runs of any table, filed under `table` (`runs_for`)."""
    collection = read_runs(runs_for(runs_root, table)["run_dir"].unique())
    runs = collection.runs.copy()
    runs[keys.TABLE] = table
    return Collection(runs, collection.history)


def _sort_key(column: pd.Series) -> pd.Series:
    """Numbers as numbers (seed 2 before seed 10), everything else as its text."""
    numeric = pd.to_numeric(column, errors="coerce")
    return numeric if numeric.notna().all() else column.map(str)


def _cell(value: Any) -> Any:
    """Config values as frame cells: placement maps and lists as their compact text (hashable, sortable)."""
    if isinstance(value, (dict, list, tuple)):
        import json

        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return value


def clips_for(config: Mapping[str, Any], split: str = "val", n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `n` clips (n, 3, T, H, W) and labels (n,) of `split` of the embedded task exactly as the
    run with `config` saw them (the task is generated from its knobs and seed)."""
    if config.get(keys.DATASET, "synthetic") != "synthetic":
        raise ValueError(f"clips_for: data.dataset={config.get(keys.DATASET)!r}; only the embedded 'synthetic' "
                         "task is generated here (load clips of a video dataset with nlstudy.data)")
    prefix = "data.synthetic."
    spec = SyntheticSpec(**{k[len(prefix):]: v for k, v in config.items() if k.startswith(prefix)})
    clips, labels = make_clips(spec, split, int(config[keys.FRAMES]), int(config[keys.SIZE]))
    return torch.from_numpy(clips[:n]), torch.from_numpy(labels[:n])


def query_dependence_frame(records: Sequence[BlockAttention], *, max_queries: int | None = None,
                           seed: int = 0) -> pd.DataFrame:
    """GCNet's Table 1 form for blocks captured by `attention_maps`: one row per block with the mean cosine
    distance between the query positions' inputs ("input"), outputs ("output") and attention maps ("att"),
    plus how many positions were compared and whether they were sampled."""
    rows = []
    for r in records:
        values = {what: query_dependence(t, max_queries=max_queries, seed=seed)
                  for what, t in (("input", r.inputs), ("output", r.outputs), ("att", r.weights))}
        rows.append({"block": r.name, "kind": r.kind, "query_grid": "x".join(map(str, r.query_grid)),
                     "key_grid": "x".join(map(str, r.key_grid)),
                     **{what: float(v) for what, v in values.items()},
                     "n_queries": values["att"].n_queries, "sampled": values["att"].sampled})
    return pd.DataFrame(rows, columns=["block", "kind", "query_grid", "key_grid", "input", "output", "att",
                                       "n_queries", "sampled"])


def erf_frame(erfs: Mapping[str, torch.Tensor], share: float = 0.5) -> pd.DataFrame:
    """One row per stage of an `erf_by_stage` result: the area ratio holding `share` of the map's mass
    (`area`), the share of the mass outside the centre frame (`off_centre_frames`) and the number of
    frames holding at least 1 % of it (`frames`)."""
    rows = []
    for stage, erf in erfs.items():
        per_frame = temporal_spread(erf)  # (T,)
        centre = erf.shape[0] // 2
        rows.append({"stage": stage, "area": erf_area(erf, share), "off_centre_frames": float(1 - per_frame[centre]),
                     "frames": int((per_frame >= 0.01).sum())})
    return pd.DataFrame(rows, columns=["stage", "area", "off_centre_frames", "frames"])


def backbone_like(config: Mapping[str, Any], **changes: Any) -> nn.Module:
    """A freshly built network (eval mode) with the backbone of a run's `config` (`load_run`'s flat config),
    some fields changed: `backbone_like(config, block="global_context")` puts a global-context block where
    the run has its non-local blocks. Built fresh, without the run's `pretrained` weights unless asked."""
    from nlstudy.models import as_spec, build_model

    prefix = "model.backbone."
    fields: dict[str, Any] = {}
    for key, value in config.items():
        if key.startswith(prefix + "nl."):
            fields.setdefault("nl", {})[key[len(prefix + "nl."):]] = value
        elif key.startswith(prefix):
            fields[key[len(prefix):]] = value
    fields["pretrained"] = ""  # fresh: the run's ImageNet file need not be on this machine (pass pretrained=... to load it)
    fields.update(changes)
    return build_model(as_spec(**fields)).eval()


def save_figure(fig: Any, figures_dir: str | os.PathLike | None, name: str) -> None:
    """Write a matplotlib figure as `<figures_dir>/<name>.png` and `.pdf` (nothing when figures_dir is None)."""
    if figures_dir is None:
        return
    from nlstudy.report.plots import save

    save(fig, Path(figures_dir) / name)


FIGURE_DPI = 100  # the image a notebook shows (the saved PNG keeps the report's 120)


def figure_png(fig: Any, dpi: int = FIGURE_DPI) -> bytes:
    """A matplotlib figure as PNG bytes (savefig renders PNG with Agg whatever the figure's canvas: no pyplot,
    no backend needed)."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def show(fig: Any, figures_dir: str | os.PathLike | None = None, name: str | None = None) -> None:
    """Show a matplotlib figure in the notebook as an image (image/png), and save it as
    `<figures_dir>/<name>.png` and `.pdf` when both are given (`save_figure`).

    Every figure a notebook shows goes through here: `display(fig)` of a figure built with the object API
    (the report's plots) shows only its text (`<Figure size 700x380 with 1 Axes>`) unless an inline backend
    happens to be active, in Jupyter, nbclient and nbconvert alike; a PNG is an image in all of them and in
    the notebook's HTML. A pyplot figure is closed afterwards, so the inline backend does not show it twice."""
    import sys

    from IPython.display import Image, display

    if name is not None:
        save_figure(fig, figures_dir, name)
    display(Image(data=figure_png(fig), format="png"))
    pyplot = sys.modules.get("matplotlib.pyplot")  # only a figure pyplot made is known to it (never import it here)
    if pyplot is not None:
        pyplot.close(fig)


def report_tables(runs_roots: str | os.PathLike | Sequence[str | os.PathLike],
                  wanted: Sequence[str] | None = None) -> tuple[dict[str, pd.DataFrame], Collection]:
    """The tables of the runs under `runs_roots` as `nlstudy report --runs` builds them: the runs read with their
    stand-ins and the runs their sweeps plan, runs without a table filed under the generic one, and every table of
    the roots one Holm family (the report's); then the tables of `wanted` (all where None). Where the roots hold
    none of `wanted` (your own runs), every table they hold, saying so in one line. Returns (tables, collection)."""
    from nlstudy import records
    from nlstudy.report import schema, sweeps
    from nlstudy.report.specs import file_untabled, table_ids
    from nlstudy.report.tables import build_tables

    roots = [runs_roots] if isinstance(runs_roots, (str, os.PathLike)) else list(runs_roots)
    present = [root for root in roots if Path(root).is_dir()]
    if not present:
        raise FileNotFoundError(f"none of the runs roots {[str(r) for r in roots]} exists: run `make demo` / "
                                "`make analysis` first, or point the notebook at your own runs root")
    collection = schema.combine(sweeps.read_local(root) for root in present)
    planned = [sweeps.planned(records.find_sweep_files(root)) for root in present]
    expected = pd.concat(planned, ignore_index=True) if planned else None
    collection, note = file_untabled(collection, None)
    if note:
        print(note)
    ids = table_ids(collection.runs, expected)
    built = build_tables(collection.runs, ids, expected=expected) if ids else {}
    chosen = [t for t in (wanted if wanted is not None else ids) if t in built]
    if wanted is not None and not chosen:
        print(f"no runs of the tables {list(wanted)} under {', '.join(map(str, present))}: these are its tables {ids}")
        chosen = ids
    return {t: built[t] for t in chosen}, collection


def arm_label(row: Mapping[str, Any], *, pairwise: bool = False) -> str:
    """A run's arm as the report labels its rows ("NL C2D 1 block (res3[1])", "GC C2D ...", "C2D baseline"), from a
    runs-frame row (placement maps as their JSON text) or a config; with `pairwise`, the pairwise function after a
    non-local block's label."""
    import json

    from nlstudy.report.text import canon, row_label

    values = {}
    for key in (keys.ARCH, keys.NONLOCAL_BLOCKS, keys.BLOCK):
        value = row.get(key)
        if isinstance(value, str) and value.startswith(("{", "[")):
            value = json.loads(value)
        values[key] = canon(value)
    label = row_label(values, [keys.ARCH, keys.NONLOCAL_BLOCKS, keys.BLOCK], None)
    if pairwise and values[keys.NONLOCAL_BLOCKS] != NO_BLOCKS and (values[keys.BLOCK] or NONLOCAL) == NONLOCAL:
        label += f", {row.get(keys.PAIRWISE)}"
    return label


INTERVAL_LABEL = "mean, 95 % t interval over seeds"


def seed_figure(series: Mapping[str, Mapping[str, Sequence[float]]], xlabel: str, *, title: str = "",
                reference: float | Mapping[str, float] | None = None, reference_label: str = "",
                bounds: tuple[float, float] | None = None) -> Any:
    """A figure of per-seed values: one line per label of `series` ({label: {measure: values}}), each measure's
    seeds as dots, their mean with its 95 % t interval (labelled as such), n in the label; `reference` (one value,
    or one per label) drawn as a black mark (a chance level, a null, a uniform map's share) named `reference_label`;
    the axis clipped to `bounds` (e.g. (0, 100) for a top-1: nothing above 100 %)."""
    from matplotlib.figure import Figure

    from nlstudy.report.stats import t_interval

    labels = list(series)
    measures = list(dict.fromkeys(m for values in series.values() for m in values))
    fig = Figure(figsize=(7.5, 0.9 + 0.5 * len(labels) * max(1, len(measures)) ** 0.5))
    ax = fig.subplots()
    offsets = np.linspace(-0.2, 0.2, len(measures)) if len(measures) > 1 else [0.0]
    seen = set()
    for y, label in enumerate(labels):
        for offset, measure in zip(offsets, measures):
            values = np.asarray(series[label].get(measure, []), dtype=float)
            values = values[np.isfinite(values)]
            if not len(values):
                continue
            colour = f"C{measures.index(measure)}"
            ax.scatter(values, np.full(len(values), y + offset), s=18, color=colour, alpha=0.6,
                       label=f"{measure}: one seed" if measure not in seen else None)
            low, high = t_interval(values, bounds=bounds)
            mean = float(values.mean())
            if np.isfinite(low):
                ax.errorbar(mean, y + offset, xerr=[[max(mean - low, 0.0)], [max(high - mean, 0.0)]], fmt="D", color=colour, ms=5,
                            capsize=3, label=f"{measure}: {INTERVAL_LABEL}" if measure not in seen else None)
            else:
                ax.scatter([mean], [y + offset], marker="D", color=colour, s=25)
            seen.add(measure)
        if reference is not None:
            ref = reference.get(label) if isinstance(reference, Mapping) else reference
            if ref is not None and np.isfinite(ref):
                ax.plot([ref, ref], [y - 0.35, y + 0.35], color="black", lw=2,
                        label=reference_label if "ref" not in seen else None)
                seen.add("ref")
    counts = [max((len(v) for v in series[label].values()), default=0) for label in labels]
    ax.set_yticks(range(len(labels)), [f"{label} (n={n})" for label, n in zip(labels, counts)], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    if bounds is not None:
        lo, hi = ax.get_xlim()
        ax.set_xlim(max(lo, bounds[0]), min(hi, bounds[1]))
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig
