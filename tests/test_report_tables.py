"""Table functions on hand-built run frames: rows, groups, baselines, statistics, paper numbers, partial runs."""

import math

import pandas as pd
import pytest
from scipy import stats

from nlstudy import keys
from nlstudy.report import tables
from nlstudy.report.tables import DATASET, FRAMES, TASK, MissingRowsError, build_table

NB, PW, ARCH, DEPTH = keys.NONLOCAL_BLOCKS, keys.PAIRWISE, keys.ARCH, keys.DEPTH


def run(run_id, table="2a", *, seed=0, top1=50.0, top5=None, state="finished", minute=0, **config):
    """One row of the tidy runs frame, with the config keys a sweep of `table` sets."""
    row = {
        "run_id": run_id, "name": None, "state": state, "sweep_id": "sw", "table": table, "project": "p",
        "created_at": pd.Timestamp("2026-11-01", tz="UTC") + pd.Timedelta(minutes=minute),
        "source": "offline", "path": run_id, "note": None,
        DATASET: "synthetic", DEPTH: 18, ARCH: "c2d", NB: "none", PW: "embedded_gaussian",
        keys.BLOCK: "nonlocal", keys.SEED: seed,
    }
    row.update(config)
    blocks = row[NB]
    row.setdefault(keys.PARAMS, 1000 if blocks == "none" else 1200)
    row.setdefault(keys.FLOPS, 2_000_000 if blocks == "none" else 2_500_000)
    row[keys.VAL_TOP1_BEST] = top1 if state == "finished" else None
    row[keys.VAL_TOP5_BEST] = (top5 if top5 is not None else top1 + 30) if state == "finished" and top1 is not None else None
    return row


def frame(*rows):
    return pd.DataFrame.from_records(rows)


def by_label(table):
    return {r["label"]: r for r in table.to_dict("records")}


def test_2a_baseline_first_means_deltas_and_relative_cost():
    runs = frame(
        run("b0", seed=0, top1=50.0), run("b1", seed=1, top1=52.0), run("b2", seed=2, top1=51.0),
        # the baseline's pairwise does not matter: a none x pairwise grid gives one baseline row
        run("b3", seed=3, top1=49.0, **{PW: "dot_product"}),
        run("d0", seed=0, top1=60.0, **{NB: "1-block", PW: "dot_product"}),
        run("d1", seed=1, top1=62.0, **{NB: "1-block", PW: "dot_product"}),
        run("g0", seed=0, top1=55.0, **{NB: "1-block", PW: "gaussian"}),
    )
    table = build_table(runs, "2a")
    assert list(table["label"]) == ["C2D baseline", "NL C2D 1-block gaussian", "NL C2D 1-block dot_product"]
    rows = by_label(table)
    base = rows["C2D baseline"]
    assert base["baseline"] and base["n"] == 4
    assert base["top1"] == pytest.approx(50.5)
    assert base["top1_std"] == pytest.approx(pd.Series([50.0, 52.0, 51.0, 49.0]).std())
    dot = rows["NL C2D 1-block dot_product"]
    assert dot["top1"] == pytest.approx(61.0) and dot["top5"] == pytest.approx(91.0)
    assert dot["delta_top1"] == pytest.approx(10.5)
    assert dot["params_rel"] == pytest.approx(1.2) and dot["flops_rel"] == pytest.approx(1.25)
    assert base["params_rel"] == 1.0 and base["delta_top1"] == 0.0
    assert (table["model"].tolist(), table["variant"].tolist()) == (
        ["C2D", "NL C2D 1-block", "NL C2D 1-block"], ["baseline", "gaussian", "dot_product"])


def test_confidence_interval_only_from_three_seeds():
    runs = frame(*(run(f"b{s}", seed=s, top1=v) for s, v in enumerate([50.0, 53.0, 51.0])),
                 run("d0", seed=0, top1=60.0, **{NB: "1-block"}), run("d1", seed=1, top1=61.0, **{NB: "1-block"}))
    rows = by_label(build_table(runs, "2a"))
    base = rows["C2D baseline"]
    values = pd.Series([50.0, 53.0, 51.0])
    half = stats.t.ppf(0.975, df=2) * values.std() / math.sqrt(3)
    assert base["top1_ci_low"] == pytest.approx(values.mean() - half)
    assert base["top1_ci_high"] == pytest.approx(values.mean() + half)
    nl = rows["NL C2D 1-block embedded_gaussian"]
    assert nl["n"] == 2 and math.isnan(nl["top1_ci_low"])


def test_paper_column_at_the_same_depth_and_marked_fallback():
    runs = frame(
        run("b50", "2c", seed=0, top1=71.0, **{DEPTH: 50}), run("n50", "2c", seed=0, top1=73.0, **{DEPTH: 50, NB: "5-block"}),
        run("b101", "2c", seed=0, top1=72.0, **{DEPTH: 101}), run("n101", "2c", seed=0, top1=74.0, **{DEPTH: 101, NB: "5-block"}),
        run("b18", "2c", seed=0, top1=40.0), run("n18", "2c", seed=0, top1=45.0, **{NB: "10-block"}),
    )
    table = build_table(runs, "2c")
    assert table.attrs["varying_group_keys"] == [DEPTH]
    # groups by depth (ascending), each with its own baseline first
    assert [(int(d), label) for d, label in zip(table[DEPTH], table["label"])] == [
        (18, "C2D baseline"), (18, "NL C2D 10-block"), (50, "C2D baseline"), (50, "NL C2D 5-block"),
        (101, "C2D baseline"), (101, "NL C2D 5-block")]
    paper = list(zip(table["paper_top1"], table["paper_depth"]))
    assert paper[3] == (73.8, 50) and paper[5] == (75.1, 101) and paper[4] == (73.1, 101)
    assert paper[1] == (74.3, 50)  # no ResNet-18 in the paper: the nearest published depth, marked
    assert table["delta_top1"].tolist()[1::2] == pytest.approx([5.0, 2.0, 2.0])
    assert any("not Kinetics" in note for note in table.attrs["footnotes"])


def test_kinetics_runs_have_no_orientation_note_and_never_mix_with_synthetic():
    runs = frame(
        run("k0", seed=0, top1=71.0, **{DATASET: "kinetics", DEPTH: 50}),
        run("k1", seed=0, top1=72.5, **{DATASET: "kinetics", DEPTH: 50, NB: "1-block", PW: "gaussian"}),
        run("s0", seed=0, top1=40.0), run("s1", seed=0, top1=44.0, **{NB: "1-block", PW: "gaussian"}),
    )
    table = build_table(runs, "2a")
    assert table.attrs["varying_group_keys"] == [DATASET, DEPTH]
    assert table["baseline"].tolist() == [True, False, True, False]
    assert table["delta_top1"].tolist() == pytest.approx([0.0, 1.5, 0.0, 4.0])
    assert not any("not Kinetics" in n for n in build_table(runs[runs[DATASET] == "kinetics"], "2a").attrs["footnotes"])


@pytest.mark.parametrize("table_id, config, paper", [
    ("2a", {NB: "1-block", PW: "concatenation"}, ("NL C2D 1-block", "concatenation")),
    ("2b", {NB: "res2"}, ("NL C2D 1-block", "res2")),
    ("2c", {NB: "10-block"}, ("NL C2D", "10-block")),
    ("2d", {NB: "5-block", keys.MODE: "space"}, ("NL C2D 5-block", "space-only")),
    ("2d", {NB: "5-block", keys.MODE: "time"}, ("NL C2D 5-block", "time-only")),
    ("2e", {ARCH: "i3d_3x3x3"}, ("I3D", "3x3x3")),
    ("2e", {ARCH: "i3d_3x1x1"}, ("I3D", "3x1x1")),
    ("2e", {NB: "5-block"}, ("NL C2D", "5-block")),
    ("2f", {ARCH: "i3d_3x1x1"}, ("I3D", "baseline")),
    ("2f", {ARCH: "i3d_3x1x1", NB: "5-block"}, ("NL I3D", "5-block")),
    ("2g", {ARCH: "i3d_3x1x1", NB: "5-block", FRAMES: 128}, ("NL I3D", "128-frame")),
])
def test_rows_map_to_the_papers_naming(table_id, config, paper):
    runs = frame(run("b", table_id, **({FRAMES: 128} if table_id == "2g" else {})),
                 run("v", table_id, top1=55.0, **{DEPTH: 50}, **config),
                 run("b50", table_id, **{DEPTH: 50}, **({FRAMES: 128} if table_id == "2g" else {})))
    table = build_table(runs, table_id)
    row = table[table["label"] != table["label"].iloc[0]].iloc[-1]
    assert (row["model"], row["variant"]) == paper
    assert not math.isnan(row["paper_top1"])
    assert row["paper_depth"] == (101 if table_id == "2e" else 50)  # the paper has 2e at ResNet-101 only


def test_2g_without_128_frames_has_no_paper_row():
    table = build_table(frame(run("b", "2g", **{FRAMES: 32})), "2g")
    assert table["model"].isna().all() and table["paper_top1"].isna().all()


def test_failed_running_missing_and_duplicate_seeds_are_counted_not_fatal():
    runs = frame(
        run("b0", seed=0), run("b1", seed=1, top1=54.0),
        run("d0", seed=0, top1=60.0, minute=1, **{NB: "1-block", PW: "dot_product"}),
        run("d0again", seed=0, top1=70.0, minute=5, **{NB: "1-block", PW: "dot_product"}),  # rerun: the latest counts
        run("d1", seed=1, state="crashed", **{NB: "1-block", PW: "dot_product"}),
        run("g0", seed=0, state="failed", **{NB: "1-block", PW: "gaussian"}),
        run("g0retry", seed=0, state="running", **{NB: "1-block", PW: "gaussian"}),
        run("c0", seed=0, state="killed", **{NB: "1-block", PW: "concatenation"}),
        run("x0", seed=0, top1=None, **{NB: "1-block", PW: "embedded_gaussian"}),  # finished, no result logged
    )
    planned = pd.DataFrame({"table": "2a", "sweep_id": "sw", NB: "1-block", PW: "gaussian", keys.SEED: [0, 1, 2]})
    rows = by_label(build_table(runs, "2a", expected=planned))
    dot = rows["NL C2D 1-block dot_product"]
    assert (dot["n"], dot["n_dup"], dot["n_failed"], dot["top1"], dot["status"]) == (1, 1, 1, 70.0, "ok")
    gau = rows["NL C2D 1-block gaussian"]
    assert (gau["n"], gau["n_running"], gau["n_failed"], gau["n_missing"], gau["status"]) == (0, 1, 0, 2, "running")
    assert math.isnan(gau["top1"]) and math.isnan(gau["delta_top1"])
    assert rows["NL C2D 1-block concatenation"]["status"] == "failed"
    assert rows["NL C2D 1-block embedded_gaussian"]["n_failed"] == 1


def test_expected_rows_from_the_sweep_and_strict():
    runs = frame(run("b0"), run("d0", top1=60.0, **{NB: "1-block", PW: "dot_product"}))
    # a grid the sweep plans: none x 2 pairwise x 2 seeds; dataset and depth come from the base config
    planned = pd.DataFrame([{"table": "2a", "sweep_id": "sw", NB: nb, PW: pw, keys.SEED: s}
                            for nb in ("none", "1-block") for pw in ("gaussian", "dot_product") for s in (0, 1)])
    table = build_table(runs, "2a", expected=planned)
    rows = by_label(table)
    assert list(rows) == ["C2D baseline", "NL C2D 1-block gaussian", "NL C2D 1-block dot_product"]
    assert rows["NL C2D 1-block gaussian"]["status"] == "missing"
    assert rows["NL C2D 1-block gaussian"]["n_missing"] == 2
    assert rows["NL C2D 1-block gaussian"][DEPTH] == 18  # filled from the sweep's runs
    assert rows["C2D baseline"]["n_missing"] == 1 and rows["NL C2D 1-block dot_product"]["n_missing"] == 1
    with pytest.raises(MissingRowsError, match="gaussian"):
        build_table(runs, "2a", expected=planned, strict=True)
    assert build_table(runs, "2a", strict=True)["n"].tolist() == [1, 1]


def test_strict_counts_a_row_with_only_failed_runs_as_missing():
    runs = frame(run("b0"), run("d0", state="failed", **{NB: "1-block"}))
    with pytest.raises(MissingRowsError, match=r"NL C2D 1-block embedded_gaussian \(failed\)"):
        build_table(runs, "2a", strict=True)
    with pytest.raises(MissingRowsError, match="no runs"):
        build_table(runs, "2c", strict=True)


def test_locality_groups_by_task_with_a_baseline_each():
    runs = frame(*(run(f"{task}{nb}{s}", "locality", seed=s, top1=top1 + s, **{TASK: task, NB: nb})
                   for task, nb, top1 in [("far", "none", 40.0), ("far", "5-block", 60.0),
                                          ("near", "none", 80.0), ("near", "5-block", 80.5)] for s in range(3)))
    table = build_table(runs, "locality")
    assert table.attrs["varying_group_keys"] == [TASK]
    assert [(t, lab) for t, lab in zip(table[TASK], table["label"])] == [
        ("far", "C2D baseline"), ("far", "NL C2D 5-block"), ("near", "C2D baseline"), ("near", "NL C2D 5-block")]
    assert table["delta_top1"].tolist() == pytest.approx([0.0, 20.0, 0.0, 0.5])
    assert table["model"].isna().all()


def test_an_unforeseen_varying_key_splits_groups_and_the_baseline_serves_each():
    # inter_ratio is not a 2c row key; it varies among the block runs, and the baseline (no block:
    # inter_ratio means nothing) is the reference of both groups
    runs = frame(run("b0", "2c", top1=50.0, **{keys.INTER_RATIO: 0.5}),
                 run("h0", "2c", top1=55.0, **{NB: "5-block", keys.INTER_RATIO: 0.5}),
                 run("q0", "2c", top1=53.0, **{NB: "5-block", keys.INTER_RATIO: 0.25}))
    table = build_table(runs, "2c")
    assert table.attrs["varying_group_keys"] == [keys.INTER_RATIO]
    assert table["label"].tolist() == ["C2D baseline", "NL C2D 5-block"] * 2
    assert table[keys.INTER_RATIO].tolist() == [0.25, 0.25, 0.5, 0.5]
    assert table["delta_top1"].tolist() == pytest.approx([0.0, 3.0, 0.0, 5.0])


def test_control_falls_back_to_the_residual_block_without_a_plain_row():
    runs = frame(*(run(b, "control", top1=v, **{NB: "5-block", keys.BLOCK: b})
                   for b, v in [("nonlocal", 60.0), ("residual", 52.0), ("squeeze_excitation", 54.0)]))
    table = build_table(runs, "control")
    assert table["label"].tolist() == ["Res C2D 5-block", "NL C2D 5-block", "SE C2D 5-block"]
    assert table["baseline"].tolist() == [True, False, False]
    assert table["delta_top1"].tolist() == pytest.approx([0.0, 8.0, 2.0])


def test_unknown_table_id_gives_a_generic_table_over_the_varying_keys():
    runs = frame(run("a", "mine", seed=0, top1=40.0, **{keys.WIDTH: 8}), run("b", "mine", seed=1, top1=42.0, **{keys.WIDTH: 8}),
                 run("c", "mine", seed=0, top1=45.0, **{keys.WIDTH: 16, keys.PARAMS: 4000}))
    table = build_table(runs, "mine")
    assert table.attrs["row_keys"] == [keys.WIDTH]
    assert table["label"].tolist() == ["C2D baseline, width=8", "C2D baseline, width=16"]
    assert table["n"].tolist() == [2, 1]
    assert table["params_rel"].tolist() == pytest.approx([1.0, 4.0])


def test_explicit_placement_maps_and_integral_floats_are_one_row():
    placement = {"res3": [1, 3], "res4": [1, 3, 5]}
    runs = frame(run("b", "2c", **{DEPTH: 18.0}), run("m0", "2c", seed=0, top1=60.0, **{NB: placement}),
                 run("m1", "2c", seed=1, top1=62.0, **{NB: {"res4": [1, 3, 5], "res3": [1.0, 3.0]}, DEPTH: 18.0}))
    table = build_table(runs, "2c")
    assert table["label"].tolist() == ["C2D baseline", "NL C2D res3[1,3]+res4[1,3,5]"]
    assert table["n"].tolist() == [1, 2]


def test_table_ids_and_lookup():
    runs = frame(run("a", "zz"), run("b", "2c"), run("c", "2a"), run("d", None))
    assert tables.table_ids(runs) == ["2a", "2c", "zz"]
    with pytest.raises(ValueError, match="'2a', '2b'"):
        tables.table_spec("2z")


def test_packaged_paper_numbers():
    paper = tables.paper_numbers()
    assert list(paper.columns) == ["table", "depth", "model", "variant", "top1", "top5", "params_rel", "flops_rel"]
    row = paper[(paper["table"] == "2c") & (paper["depth"] == 101) & (paper["variant"] == "5-block")]
    assert row[["top1", "top5"]].to_numpy().tolist() == [[75.1, 91.7]]
    assert sorted(paper["table"].unique()) == ["2a", "2b", "2c", "2d", "2e", "2f", "2g"]


def test_confidence_interval_is_clipped_to_valid_accuracies_and_trivial_top5_is_dropped():
    import numpy as np

    from nlstudy.report.tables import _t_interval, trivial_top5

    low, high = _t_interval(np.array([99.0, 100.0, 92.0]))
    assert high == 100.0 and 0.0 < low < 92.0
    assert _t_interval(np.array([1.0, 0.0, 9.0]))[0] == 0.0
    frame = pd.DataFrame({"top5": [100.0, 100.0], "top5_std": [0.0, 0.0]})
    assert trivial_top5(frame)
    assert not trivial_top5(frame.assign(top5=[100.0, 99.5]))
    assert not trivial_top5(pd.DataFrame({"top5": [float("nan")], "top5_std": [float("nan")]}))
