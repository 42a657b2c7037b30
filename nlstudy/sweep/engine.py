"""The search engine: W&B's own `sweeps` package (grid, random, bayes, hyperband), called the way the
W&B server calls it, with the three pitfalls of sweeps 0.2.0 handled here:

- ``next_run(..., validate=True)`` silently drops nested ``parameters:``; the agent validates the file
  separately (``nlstudy.sweep.spec``) and asks with ``validate=False``.
- grid de-duplication looks earlier runs up by the engine's internal name of each parameter; for a
  nested parameter that name (``model.wbnest[...].lr``) is not a key of the run's config, so nothing is
  ever "seen" and the grid proposes its first point forever. :func:`engine_runs` adds those names.
- ``SweepRun(history=..., summary_metrics=...)`` silently drops both under pydantic 2: pass them
  by their aliases (``sampledHistory``, ``summaryMetrics``), or hyperband and bayes see no metric.
- sampled values are numpy scalars (``np.float64``), which ``yaml.safe_dump`` refuses: cast to Python.

A run's config is W&B's format throughout: ``{"name": {"value": v}}`` (nested parameters give one
top-level name holding a nested dict), exactly what the server hands `wandb agent`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from nlstudy.adapters import sweeps
from nlstudy.adapters.sweeps import NEST, HyperParameter, HyperParameterSet


def plain(value: Any) -> Any:
    """numpy scalars and arrays (and containers of them) -> Python values."""
    if hasattr(value, "tolist") and type(value).__module__ == "numpy":
        return value.tolist()
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def parameter_set(config: Mapping[str, Any]) -> HyperParameterSet:
    return HyperParameterSet.from_config(dict(config["parameters"]))


def _lookup_nested(run_config: Mapping[str, Any], name: str) -> tuple[bool, Any]:
    head, *rest = name.split(NEST)
    if head not in run_config:
        return False, None
    value = run_config[head]["value"]
    for part in rest:
        if not isinstance(value, Mapping) or part not in value:
            return False, None
        value = value[part]
    return True, value


def engine_runs(config: Mapping[str, Any], records: Iterable[Mapping[str, Any]]) -> list[sweeps.SweepRun]:
    """Run records (``nlstudy.sweep.state``) -> the engine's SweepRuns: config (plus the internal
    names of nested parameters), state, the progress rows as history and their last values as summary."""
    from nlstudy.sweep.state import engine_state

    nested = [p.name for p in parameter_set(config) if NEST in p.name]
    out = []
    for rec in records:
        run_config = dict(rec["config"])
        for name in nested:
            found, value = _lookup_nested(rec["config"], name)
            if found:
                run_config[name] = {"value": value}
        history = list(rec.get("history") or [])
        summary = dict(rec.get("summary") or {})
        # by alias: with pydantic 2, SweepRun's "allow_population_by_field_name" is ignored, and
        # history= / summary_metrics= would be dropped without a word
        out.append(sweeps.SweepRun(
            name=rec["id"], state=engine_state(rec["state"]), config=run_config, stopped=rec["state"] == "stopped",
            **{sweeps.HISTORY: history, sweeps.SUMMARY: summary},
        ))
    return out


LAZY_GRID = 10_000  # a grid larger than this is walked point by point (next_grid_point), not listed whole


def propose(config: Mapping[str, Any], records: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The engine's next run config given every earlier run of the sweep, or None when it has no more
    (a grid is exhausted). `config` must already be validated. A grid of more than LAZY_GRID points is walked
    by `next_grid_point`, which proposes what the engine would."""
    if config.get("method") == "grid" and grid_size(config) > LAZY_GRID:
        return next_grid_point(config, records)
    run = sweeps.next_run(dict(config), engine_runs(config, records), validate=False)
    return None if run is None else plain(run.config)


def next_grid_point(config: Mapping[str, Any], records: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The grid's next run config exactly as the `sweeps` grid search picks it (the points in the order of
    itertools.product over the parameters' values, the first one whose values no earlier run has; int_uniform
    and q_uniform made categorical as it does), but walking the grid lazily: memory O(runs), time O(runs + that
    point's place). sweeps 0.2.0 lists every point on each call, 10^6 points taking 100 MB and a second a run;
    tests/test_faults_files.py checks the two agree point by point."""
    import itertools

    import numpy as np
    yaml_hash = sweeps.yaml_hash

    params = parameter_set(config)
    for i, p in enumerate(params):
        if p.type == HyperParameter.INT_UNIFORM:
            values = list(range(p.config["min"], p.config["max"] + 1))
        elif p.type == HyperParameter.Q_UNIFORM:
            values = np.arange(p.config["min"], p.config["max"], p.config["q"]).tolist()
        else:
            continue
        params[i] = HyperParameter(p.name, {"distribution": "categorical", "values": values})
    discrete = [p for p in params if p.type == HyperParameter.CATEGORICAL]
    names = [p.name for p in discrete]
    hashes = [[yaml_hash(v) for v in p.config["values"]] for p in discrete]
    value_of = [dict(zip(h, p.config["values"])) for h, p in zip(hashes, discrete)]
    seen = {tuple(yaml_hash(run.config[name]["value"]) for name in names if name in run.config)
            for run in engine_runs(config, records)}
    point = next((p for p in itertools.product(*hashes) if p not in seen), None)
    if point is None:
        return None
    for p, lookup, h in zip(discrete, value_of, point):
        p.value = lookup[h]
    return plain(params.to_config())


def grid_points(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every run config of a grid sweep, in the engine's order (one engine call)."""
    size = grid_size(config)
    if size == 0:
        return []
    runs = sweeps.next_runs(dict(config), [], validate=False, n=size)
    return [plain(r.config) for r in runs if r is not None]


def grid_size(config: Mapping[str, Any]) -> int:
    """How many runs a grid sweep has (the product of the parameters' value counts)."""
    size = 1
    for p in parameter_set(config):
        if p.type == HyperParameter.CATEGORICAL:
            size *= len(p.config["values"])
        elif p.type == HyperParameter.INT_UNIFORM:
            size *= p.config["max"] - p.config["min"] + 1
        elif p.type == HyperParameter.Q_UNIFORM:
            import numpy as np

            size *= len(np.arange(p.config["min"], p.config["max"], p.config["q"]))
    return size


def representative_values(p: HyperParameter) -> list[Any]:
    """Values worth checking for one parameter: each value of a categorical, the constant, else the
    distribution's lowest, median and highest values (finite ones), the first being the lowest."""
    if p.type == HyperParameter.CONSTANT:
        return [p.config["value"]]
    if p.type in (HyperParameter.CATEGORICAL, HyperParameter.CATEGORICAL_PROB):
        return list(p.config["values"])
    import math

    out: list[Any] = []
    for q in (0.0, 0.5, 1.0):
        try:
            value = plain(p.ppf(q))
        except (ValueError, TypeError, OverflowError):
            continue
        if isinstance(value, list):
            value = value[0] if value else None
        if value is None or (isinstance(value, float) and not math.isfinite(value)) or value in out:
            continue
        out.append(value)
    return out


def one_at_a_time(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Run configs that together show every representative value of every parameter: the first
    values of all, then each other value of one parameter with the others at their first."""
    params = parameter_set(config)
    values = [representative_values(p) for p in params]

    def make(choice: list[Any]) -> dict[str, Any]:
        for p, v in zip(params, choice):
            p.value = v
        return plain(params.to_config())

    first = [v[0] for v in values]
    out = [make(first)]
    for i, vs in enumerate(values):
        for v in vs[1:]:
            out.append(make([*first[:i], v, *first[i + 1:]]))
    return out


def to_stop(config: Mapping[str, Any], records: Iterable[Mapping[str, Any]]) -> set[str]:
    """Ids of running runs that early termination (hyperband) would stop now."""
    if not config.get("early_terminate"):
        return set()
    return {r.name for r in sweeps.stop_runs(dict(config), engine_runs(config, records), validate=False)}


def schema_violations(config: Mapping[str, Any]) -> list[str]:
    try:
        return list(sweeps.schema_violations_from_proposed_config(dict(config)))
    except ValueError as e:  # raised, not listed, for a parameter that is not a mapping
        return [str(e)]
