"""The `sweeps` package's names nlstudy relies on, in one place: its public engine calls and the internal names
the local agent needs (the parameter classes, the grid's value hash, SweepRun's field aliases).
tests/test_adapters_sweeps.py checks each one against the installed sweeps, so an upgrade that moves or changes
one fails there, by name, instead of a grid that proposes its first point forever. The pitfalls of sweeps 0.2.0
that these names work around are written up in nlstudy.sweep.engine.

    next_run, next_runs, stop_runs, schema_violations_from_proposed_config, SweepRun   the engine (public)
    HyperParameter, HyperParameterSet, NEST     sweeps.params: a sweep's parameters and the internal name of a
                                                nested one (`model.wbnest[...].lr`, the engine's lookup key)
    yaml_hash                                   sweeps.grid_search's hash of a value: how the grid tells which
                                                points earlier runs had (the lazy grid walk must agree)
    HISTORY, SUMMARY                            SweepRun's aliases of history= and summary_metrics=, which
                                                pydantic 2 drops without a word when given by field name
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():  # pydantic's "allow_population_by_field_name" notice on import
    warnings.simplefilter("ignore")
    import sweeps
    from sweeps.grid_search import yaml_hash
    from sweeps.params import HyperParameter, HyperParameterSet

SweepRun = sweeps.SweepRun
next_run = sweeps.next_run
next_runs = sweeps.next_runs
stop_runs = sweeps.stop_runs
schema_violations_from_proposed_config = sweeps.schema_violations_from_proposed_config
NEST = HyperParameterSet.NESTING_DELIMITER
HISTORY, SUMMARY = "sampledHistory", "summaryMetrics"

__all__ = ["HISTORY", "NEST", "SUMMARY", "HyperParameter", "HyperParameterSet", "SweepRun", "next_run", "next_runs",
           "schema_violations_from_proposed_config", "stop_runs", "yaml_hash"]
