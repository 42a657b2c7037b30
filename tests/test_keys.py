"""The one flattening of a config (nlstudy.keys.flatten), tested once for every writer it serves: the
training CLI's resolved config, the sweep engine's run configs, wandb's stored configs and summaries."""

from __future__ import annotations

from nlstudy import keys


def test_nested_and_dotted_keys_flatten_to_the_same_names():
    tree = {"model": {"backbone": {"depth": 50, "nl": {"mode": "time"}}}, "model.optim": {"lr": 0.1}, "seed_everything": 3}
    assert keys.flatten(tree) == {"model.backbone.depth": 50, "model.backbone.nl.mode": "time",
                                  "model.optim.lr": 0.1, "seed_everything": 3}


def test_lists_and_empty_dicts_stay_values():
    assert keys.flatten({"a": {"b": [1, {"c": 2}], "d": {}}}) == {"a.b": [1, {"c": 2}], "a.d": {}}


def test_flattened_config_keeps_a_placement_map_as_one_value():
    tree = {"model": {"backbone": {"nonlocal_blocks": {"res3": [1], "res4": [1, 3]}, "nl": {"mode": "time"}}}}
    assert keys.flatten(tree) == {"model.backbone.nonlocal_blocks": {"res3": [1], "res4": [1, 3]},
                                  "model.backbone.nl.mode": "time"}


def test_nested_flat_and_placement_maps_of_a_stored_config():
    config = {
        "_wandb": {"cli_version": "0.31.0"},
        "model.backbone": {"nonlocal_blocks": "res3", "depth": 50},
        "model": {"backbone": {"nl": {"pairwise": "dot_product"}}},
        keys.NONLOCAL_BLOCKS: {"res3": [1, 3]},
        "data.dataset": "synthetic",
    }
    assert keys.flatten(config) == {
        keys.NONLOCAL_BLOCKS: {"res3": [1, 3]},  # the flat key wins, and its dict value stays whole
        keys.DEPTH: 50, keys.PAIRWISE: "dot_product", "data.dataset": "synthetic",
    }
    # a placement map that only exists nested stays one value
    assert keys.flatten({"model": {"backbone": {"nonlocal_blocks": {"res4": [1, 3, 5]}}}}) == {
        keys.NONLOCAL_BLOCKS: {"res4": [1, 3, 5]}}


def test_keys_that_reach_inside_a_placement_map_fold_back_into_it():
    split = {f"{keys.NONLOCAL_BLOCKS}.res3": [1], f"{keys.NONLOCAL_BLOCKS}.res4": [1, 3], keys.DEPTH: 50}
    assert keys.flatten(split) == {keys.NONLOCAL_BLOCKS: {"res3": [1], "res4": [1, 3]}, keys.DEPTH: 50}
    # a preset written out whole wins over stray parts, whichever comes first
    assert keys.flatten({keys.NONLOCAL_BLOCKS: "1-block", f"{keys.NONLOCAL_BLOCKS}.res4": [1]}) == {
        keys.NONLOCAL_BLOCKS: "1-block"}
    assert keys.flatten({"model": {"backbone": {"nonlocal_blocks": {"res4": [2]}}}, keys.NONLOCAL_BLOCKS: "none"}) == {
        keys.NONLOCAL_BLOCKS: "none"}


def test_bookkeeping_keys_with_a_leading_underscore_are_dropped():
    summary = {"_step": 9, "_runtime": 3.2, "_wandb": {"runtime": 3}, "val/top1": 50.0, "perf": {"wall_s": 2.0}}
    assert keys.flatten(summary) == {"val/top1": 50.0, "perf.wall_s": 2.0}
    assert keys.flatten({"model": {"__path__": "x.yaml", "lr": 1}}) == {"model.lr": 1}
