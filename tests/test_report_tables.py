"""Table functions on hand-built run frames: rows, groups, baselines, statistics, paper numbers, partial runs."""

import math
import warnings

import pandas as pd
import pytest
from scipy import stats

from nlstudy import keys
from nlstudy.keys import DATASET, FRAMES, TASK
from nlstudy.report import epochs, specs, tables, text
from nlstudy.report.schema import history_frame
from nlstudy.report.paper import paper_numbers
from nlstudy.report import stats as stats_
from nlstudy.report.stats import ALPHA, welch_p
from nlstudy.report.tables import MissingRowsError, build_table

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
    # the primary metric (test/top1) and the best validation top-1 beside it; top-5 the same way
    row[keys.TEST_TOP1] = row[keys.VAL_TOP1_BEST] = top1 if state == "finished" else None
    top5 = (top5 if top5 is not None else top1 + 30) if state == "finished" and top1 is not None else None
    row[keys.TEST_TOP5] = row[keys.VAL_TOP5_BEST] = top5
    return row


def frame(*rows):
    return pd.DataFrame.from_records(rows)


def by_label(table):
    return {r["label"]: r for r in table.to_dict("records")}


def notes(table):
    return text.footnotes(table)


def deltas(table):
    """Δ of the rows that are not a baseline, in table order."""
    return table.loc[~table["baseline"], "delta"].tolist()


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
    assert base["mean"] == pytest.approx(50.5)
    assert base["std"] == pytest.approx(pd.Series([50.0, 52.0, 51.0, 49.0]).std())
    dot = rows["NL C2D 1-block dot_product"]
    assert dot["mean"] == pytest.approx(61.0) and dot["val_top5_best"] == pytest.approx(91.0)
    assert dot["delta"] == pytest.approx(10.5)
    assert dot["params_rel"] == pytest.approx(1.2) and dot["flops_rel"] == pytest.approx(1.25)
    assert base["params_rel"] == 1.0 and math.isnan(base["delta"])  # the baseline is compared with nothing
    assert (table["model"].tolist(), table["variant"].tolist()) == (
        ["C2D", "NL C2D 1-block", "NL C2D 1-block"], ["baseline", "gaussian", "dot_product"])


def test_confidence_interval_of_a_rows_mean_from_two_seeds():
    runs = frame(*(run(f"b{s}", seed=s, top1=v) for s, v in enumerate([50.0, 53.0, 51.0])),
                 run("d0", seed=0, top1=60.0, **{NB: "1-block"}), run("d1", seed=1, top1=61.0, **{NB: "1-block"}))
    rows = by_label(build_table(runs, "2a"))
    base = rows["C2D baseline"]
    values = pd.Series([50.0, 53.0, 51.0])
    half = stats.t.ppf(0.975, df=2) * values.std() / math.sqrt(3)
    assert base["ci_low"] == pytest.approx(values.mean() - half)
    assert base["ci_high"] == pytest.approx(values.mean() + half)
    nl = rows["NL C2D 1-block embedded_gaussian"]
    half = stats.t.ppf(0.975, df=1) * pd.Series([60.0, 61.0]).std() / math.sqrt(2)
    assert nl["n"] == 2 and nl["ci_low"] == pytest.approx(60.5 - half)
    assert nl["ci_high"] == pytest.approx(60.5 + half)
    assert math.isnan(build_table(runs[runs["run_id"] != "d1"], "2a")["ci_low"].iloc[1])  # one seed: none


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
    assert deltas(table) == pytest.approx([5.0, 2.0, 2.0])
    assert any("not Kinetics" in note for note in notes(table))


def test_kinetics_runs_have_no_orientation_note_and_never_mix_with_synthetic():
    runs = frame(
        run("k0", seed=0, top1=71.0, **{DATASET: "kinetics", DEPTH: 50}),
        run("k1", seed=0, top1=72.5, **{DATASET: "kinetics", DEPTH: 50, NB: "1-block", PW: "gaussian"}),
        run("s0", seed=0, top1=40.0), run("s1", seed=0, top1=44.0, **{NB: "1-block", PW: "gaussian"}),
    )
    table = build_table(runs, "2a")
    assert table.attrs["varying_group_keys"] == [DATASET, DEPTH]
    assert table["baseline"].tolist() == [True, False, True, False]
    assert deltas(table) == pytest.approx([1.5, 4.0])
    assert not any("not Kinetics" in n for n in notes(build_table(runs[runs[DATASET] == "kinetics"], "2a")))


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
    assert (dot["n"], dot["n_dup"], dot["n_failed"], dot["mean"], dot["status"]) == (1, 1, 1, 70.0, "ok")
    gau = rows["NL C2D 1-block gaussian"]
    assert (gau["n"], gau["n_running"], gau["n_failed"], gau["n_missing"], gau["status"]) == (0, 1, 0, 2, "running")
    assert math.isnan(gau["mean"]) and math.isnan(gau["delta"])
    assert rows["NL C2D 1-block concatenation"]["status"] == "failed"
    unscored = rows["NL C2D 1-block embedded_gaussian"]  # finished without the metric: not a failure
    assert (unscored["n"], unscored["n_failed"], unscored["n_unscored"], unscored["status"]) == (0, 0, 1, "unscored")


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
    assert deltas(table) == pytest.approx([20.0, 0.5])
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
    assert deltas(table) == pytest.approx([3.0, 5.0])


def test_control_falls_back_to_the_residual_block_without_a_plain_row():
    runs = frame(*(run(b, "control", top1=v, **{NB: "5-block", keys.BLOCK: b})
                   for b, v in [("nonlocal", 60.0), ("residual", 52.0), ("squeeze_excitation", 54.0)]))
    table = build_table(runs, "control")
    assert table["label"].tolist() == ["Res C2D 5-block", "NL C2D 5-block", "SE C2D 5-block"]
    assert table["baseline"].tolist() == [True, False, False]
    assert deltas(table) == pytest.approx([8.0, 2.0])


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
    assert table["label"].tolist() == ["C2D baseline", "NL C2D 5 blocks (res3[1,3]+res4[1,3,5])"]
    assert table["n"].tolist() == [1, 2]


def test_table_2c_orders_its_rows_by_block_count_and_labels_say_the_count():
    """The demo's 2c: 1-block, then the maps of 2 and 4 blocks (their text sorts 4 before 2)."""
    two, four = {"res3": [1], "res4": [1]}, {"res3": [0, 1], "res4": [0, 1]}
    runs = frame(run("b", "2c"), run("four", "2c", top1=70.0, **{NB: four}), run("two", "2c", top1=65.0, **{NB: two}),
                 run("one", "2c", top1=60.0, **{NB: "1-block"}))
    table = build_table(runs, "2c")
    assert table["label"].tolist() == ["C2D baseline", "NL C2D 1-block", "NL C2D 2 blocks (res3[1]+res4[1])",
                                       "NL C2D 4 blocks (res3[0,1]+res4[0,1])"]


def test_table_ids_and_lookup():
    runs = frame(run("a", "zz"), run("b", "2c"), run("c", "2a"), run("d", None))
    assert specs.table_ids(runs) == ["2a", "2c", "zz"]
    with pytest.raises(ValueError, match="'2a', '2b'"):
        specs.table_spec("2z")


def test_packaged_paper_numbers():
    paper = paper_numbers()
    assert list(paper.columns) == ["table", "depth", "model", "variant", "top1", "top5", "params_rel", "flops_rel"]
    row = paper[(paper["table"] == "2c") & (paper["depth"] == 101) & (paper["variant"] == "5-block")]
    assert row[["top1", "top5"]].to_numpy().tolist() == [[75.1, 91.7]]
    assert sorted(paper["table"].unique()) == ["2a", "2b", "2c", "2d", "2e", "2f", "2g"]


def test_confidence_interval_is_clipped_to_valid_accuracies_and_trivial_top5_is_dropped():
    import numpy as np

    from nlstudy.report.stats import t_interval, trivial_top5

    low, high = t_interval(np.array([99.0, 100.0, 92.0]), bounds=(0.0, 100.0))
    assert high == 100.0 and 0.0 < low < 92.0
    assert t_interval(np.array([1.0, 0.0, 9.0]), bounds=(0.0, 100.0))[0] == 0.0
    assert t_interval(np.array([99.0, 100.0, 92.0]))[1] > 100.0  # unbounded: a metric that is not a %
    frame = pd.DataFrame({"test_top5": [100.0, 100.0], "test_top5_std": [0.0, 0.0]})
    assert trivial_top5(frame)
    assert trivial_top5(frame.assign(paper_top5=[89.7, 90.2]))  # the paper's Kinetics column is not ours
    assert not trivial_top5(frame.assign(test_top5=[100.0, 99.5]))
    assert not trivial_top5(pd.DataFrame({"test_top5": [float("nan")], "test_top5_std": [float("nan")]}))


# --------------------------------------------------------------------------------------------------
# significance against the baseline
# --------------------------------------------------------------------------------------------------


def test_every_variant_gets_welchs_t_test_of_top1_against_its_groups_baseline():
    base, dot, gau = [50.0, 53.0, 51.0], [60.0, 58.0, 61.0, 59.0], [51.0, 53.5]
    runs = frame(*(run(f"b{s}", seed=s, top1=v) for s, v in enumerate(base)),
                 *(run(f"d{s}", seed=s, top1=v, **{NB: "1-block", PW: "dot_product"}) for s, v in enumerate(dot)),
                 *(run(f"g{s}", seed=s, top1=v, **{NB: "1-block", PW: "gaussian"}) for s, v in enumerate(gau)),
                 run("c0", seed=0, top1=70.0, **{NB: "1-block", PW: "concatenation"}))
    table = build_table(runs, "2a")
    rows = by_label(table)
    assert table["p"].dtype == "float64" and set(table["verdict"]) <= {"", *stats_.VERDICTS}
    assert math.isnan(rows["C2D baseline"]["p"]) and rows["C2D baseline"]["verdict"] == ""
    dot_p = stats.ttest_ind(dot, base, equal_var=False).pvalue
    gau_p = stats.ttest_ind(gau, base, equal_var=False).pvalue
    assert dot_p < ALPHA < gau_p  # the test is Welch's, not Student's: these differ
    assert stats.ttest_ind(gau, base).pvalue != pytest.approx(gau_p)
    assert rows["NL C2D 1-block dot_product"]["p"] == pytest.approx(dot_p)
    assert rows["NL C2D 1-block gaussian"]["p"] == pytest.approx(gau_p)
    # two tested comparisons in the family (concatenation has one seed): Holm doubles the smaller p
    assert rows["NL C2D 1-block dot_product"]["p_holm"] == pytest.approx(min(1.0, 2 * dot_p))
    assert rows["NL C2D 1-block dot_product"]["verdict"] == ("better" if 2 * dot_p < ALPHA else "undecided")
    assert rows["NL C2D 1-block gaussian"]["verdict"] == "undecided"
    # one seed: no variance to test with, whatever the difference
    concat = rows["NL C2D 1-block concatenation"]
    assert concat["delta"] == pytest.approx(70.0 - sum(base) / 3)
    assert math.isnan(concat["p"]) and concat["verdict"] == "undecided"
    assert not table["p_exact"].any()
    assert table.attrs["family"] == {"scope": "table", "size": 2, "tables": 1}
    assert any(n.startswith("p: Welch's t-test of the difference, two-sided")
               and "n<2: fewer than two seeds on a side" in n for n in notes(table))


@pytest.mark.filterwarnings("ignore:Precision loss")  # scipy's, from the reference value computed below
def test_zero_variance_rows_are_compared_exactly():
    runs = frame(*(run(f"b{s}", seed=s, top1=50.0) for s in range(3)),
                 *(run(f"same{s}", seed=s, top1=50.0, **{NB: "1-block", PW: "gaussian"}) for s in range(2)),
                 *(run(f"up{s}", seed=s, top1=60.0, **{NB: "1-block", PW: "dot_product"}) for s in range(2)),
                 *(run(f"one{s}", seed=s, top1=v, **{NB: "1-block", PW: "concatenation"})
                   for s, v in enumerate([49.0, 51.0, 52.0])))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's "precision loss" warning for a constant side is handled
        table = build_table(runs, "2a")
    rows = by_label(table)
    same, up = rows["NL C2D 1-block gaussian"], rows["NL C2D 1-block dot_product"]
    assert (same["p"], same["p_tost"], same["verdict"], same["p_exact"]) == (1.0, 0.0, "equivalent", True)
    assert (up["p"], up["p_tost"], up["verdict"], up["p_exact"]) == (0.0, 1.0, "better", True)
    assert (up["delta_ci_low"], up["delta_ci_high"], up["mde"]) == (10.0, 10.0, 0.0)
    # only the baseline is constant: Welch's test still applies (its variance is the other side's)
    one = rows["NL C2D 1-block concatenation"]
    assert one["p_exact"] == False  # noqa: E712 (numpy bool)
    assert one["p"] == pytest.approx(stats.ttest_ind([49.0, 51.0, 52.0], [50.0] * 3, equal_var=False).pvalue)
    assert any("(exact): no spread over seeds on either side" in n for n in notes(table))


def test_welch_p_edge_cases():
    assert math.isnan(welch_p([1.0], [1.0, 2.0])[0])
    assert welch_p([3.0, 3.0], [3.0, 3.0, 3.0]) == (1.0, True)
    assert welch_p([3.0, 3.0], [4.0, 4.0]) == (0.0, True)
    p, exact = welch_p([1.0, 2.0], [3.0, 4.0])
    assert p == pytest.approx(stats.ttest_ind([1.0, 2.0], [3.0, 4.0], equal_var=False).pvalue) and not exact


# --------------------------------------------------------------------------------------------------
# crossed sweeps: a baseline per setting of the other axes
# --------------------------------------------------------------------------------------------------

DISTANCES = (12, 2, 8, 4)  # not in order: the table sorts them numerically


def distance_sweep(table_id):
    """distance x {none, 1-block} x 3 seeds; the block helps more the farther the patches are."""
    rows = []
    for d in DISTANCES:
        for nb, gain in (("1-block", d / 2), ("none", 0.0)):
            for s in range(3):
                rows.append(run(f"{table_id}-{d}-{nb}-{s}", table_id, seed=s, top1=50.0 + d + gain + s,
                                **{NB: nb, keys.DISTANCE: float(d), TASK: "within"}))
    return frame(*rows)


@pytest.mark.parametrize("table_id", ["mine", "receptive_field"])
def test_a_distance_sweep_has_one_baseline_per_distance(table_id):
    table = build_table(distance_sweep(table_id), table_id)
    assert table.attrs["row_keys"] == [NB]
    assert keys.DISTANCE in table.attrs["group_keys"]
    assert table.attrs["varying_group_keys"] == [keys.DISTANCE]
    assert table[keys.DISTANCE].tolist() == [2, 2, 4, 4, 8, 8, 12, 12]
    assert table["label"].tolist() == ["C2D baseline", "NL C2D 1-block"] * 4
    assert table["baseline"].tolist() == [True, False] * 4
    assert table["mean"].tolist() == pytest.approx([53, 54, 55, 57, 59, 63, 63, 69])
    # Δ within the distance (d / 2), not against the first distance's baseline
    assert deltas(table) == pytest.approx([1, 2, 4, 6])
    # the same spread on both sides: t = (d / 2) / sqrt(2 / 3), df = 4
    expected = [stats.ttest_ind([d / 2 + s for s in range(3)], [0.0, 1.0, 2.0], equal_var=False).pvalue
                for d in sorted(DISTANCES)]
    assert table["p"].tolist()[1::2] == pytest.approx(expected)
    holm = [min(1.0, max((4 - i) * p for i, p in enumerate(sorted(expected)[:k + 1]))) for k in range(4)]
    assert sorted(table["p_holm"].tolist()[1::2]) == pytest.approx(holm)


def test_the_generic_table_rows_are_model_keys_and_other_axes_are_groups():
    runs = distance_sweep("mine")
    runs[keys.MAX_EPOCHS] = [3.0 if i % 2 else 6.0 for i in range(len(runs))]
    runs = pd.concat([runs, runs.assign(run_id=runs["run_id"] + "-w", **{keys.WIDTH: 16})], ignore_index=True)
    runs[keys.WIDTH] = runs[keys.WIDTH].fillna(8)
    spec = specs.resolve_spec("mine", runs)
    assert spec.row_keys == (NB, keys.WIDTH)
    assert spec.group_keys == (DATASET, keys.DISTANCE, keys.MAX_EPOCHS)
    assert spec.title == "Table mine: nonlocal_blocks, width at each distance, max_epochs"
    table = build_table(runs, "mine")
    # 4 distances x 2 epoch settings, each with its own baseline (the width-8 C2D) and 3 variants
    assert len(table) == 4 * 2 * 4 and table["baseline"].sum() == 8
    assert table["label"].tolist()[:4] == ["C2D baseline, width=8", "C2D baseline, width=16",
                                           "NL C2D 1-block, width=8", "NL C2D 1-block, width=16"]
    assert table[[keys.DISTANCE, keys.MAX_EPOCHS]].drop_duplicates().to_numpy().tolist() == [
        [2, 3], [2, 6], [4, 3], [4, 6], [8, 3], [8, 6], [12, 3], [12, 6]]


def test_data_efficiency_groups_by_training_set_size_in_numeric_order():
    sizes = (2048.0, 256.0, 1024.0, 512.0)
    runs = frame(*(run(f"{n}-{nb}-{s}", "data_efficiency", seed=s, top1=(40.0 if nb == "none" else 45.0) + n / 256 + s,
                       **{NB: nb, keys.TRAIN_SAMPLES: n, TASK: "far"})
                   for n in sizes for nb in ("1-block", "none") for s in range(2)))
    table = build_table(runs, "data_efficiency")
    assert table.attrs["title"].startswith("Data efficiency: ")
    assert table.attrs["varying_group_keys"] == [keys.TRAIN_SAMPLES]
    assert table[keys.TRAIN_SAMPLES].tolist() == [256, 256, 512, 512, 1024, 1024, 2048, 2048]
    assert deltas(table) == pytest.approx([5] * 4)
    assert any(n.startswith("train_samples: clips in the training split") for n in notes(table))


def test_receptive_field_title_and_notes_say_what_was_run():
    table = build_table(distance_sweep("receptive_field"), "receptive_field")
    assert "Kinetics" not in table.attrs["title"] and "distance" in table.attrs["title"]
    lines = notes(table)
    assert any("data.synthetic.task=within" in n for n in lines)  # the task, from the runs
    assert any(n.startswith("distance: pixels between the two patches") for n in lines)


def test_titles_state_the_setting_of_the_runs_not_the_papers():
    """A title states the number and place of the blocks (or the frames, the pairwise function) only
    where every run with inserted blocks had the same; the paper's setting (2a: 1 block in res4,
    2d: 5 blocks) is never assumed."""
    def title(table_id, *nl_runs):
        runs = frame(run("base", table_id), *(run(f"r{i}", table_id, **c) for i, c in enumerate(nl_runs)))
        return build_table(runs, table_id).attrs["title"]

    res4 = {NB: "1-block", keys.NL_POSITIONS: ["res4.0"], keys.NL_COUNT: 1.0}
    assert title("2a", dict(res4, **{PW: "gaussian"}), res4) == (
        "Table 2a: pairwise function (1 non-local block at res4[0])")
    two = {NB: {"res3": [1], "res4": [1]}, keys.NL_POSITIONS: ["res3.1", "res4.1"], keys.NL_COUNT: 2}
    assert title("2d", dict(two, **{keys.MODE: "space"}), dict(two, **{keys.MODE: "time"})) == (
        "Table 2d: space-only, time-only and spacetime non-local (2 non-local blocks at res3[1]+res4[1])")
    # the same preset at two depths: other positions, the same number
    five = [{NB: "5-block", DEPTH: 50, keys.NL_POSITIONS: ["res3.1", "res3.3", "res4.1", "res4.3", "res4.5"],
             keys.NL_COUNT: 5},
            {NB: "5-block", DEPTH: 101, keys.NL_POSITIONS: ["res3.1", "res3.3", "res4.6", "res4.13", "res4.20"],
             keys.NL_COUNT: 5}]
    assert title("2d", *five) == "Table 2d: space-only, time-only and spacetime non-local (5 non-local blocks)"
    assert title("2b", {NB: "res2", keys.NL_COUNT: 1}, {NB: "res5", keys.NL_COUNT: 1}) == (
        "Table 2b: stage of the non-local block (1 non-local block)")
    # no derived facts: the placement setting where it is one, else nothing
    assert title("2a", {NB: "1-block"}) == "Table 2a: pairwise function (nonlocal_blocks=1-block)"
    assert title("2b", {NB: "res2"}, {NB: "res5"}) == "Table 2b: stage of the non-local block"
    assert title("2g", {NB: "5-block", FRAMES: 128}) == "Table 2g: longer clips (frames=128)"
    assert title("scale", {NB: "1-block", keys.SCALE: True}) == (
        "1/sqrt(d) scaling of the softmax logits (pairwise=embedded_gaussian)")
    assert title("2c", {NB: "1-block"}) == "Table 2c: number of non-local blocks"  # states no setting


# --------------------------------------------------------------------------------------------------
# order: values only, never the order, ids or times of the runs
# --------------------------------------------------------------------------------------------------


def test_the_table_does_not_depend_on_the_order_of_the_runs():
    runs = distance_sweep("receptive_field")
    runs[keys.VAL_TOP1_BEST] += [0.1 * (i % 7) for i in range(len(runs))]  # sums that round differently
    reference = build_table(runs, "receptive_field")
    for seed in range(3):
        shuffled = runs.sample(frac=1.0, random_state=seed).reset_index(drop=True)
        pd.testing.assert_frame_equal(build_table(shuffled, "receptive_field"), reference)
        layout = tables.table_rows(tables.assign_rows(shuffled, "receptive_field"))
        assert layout["label"].tolist() == reference["label"].tolist()
        assert layout["baseline"].tolist() == reference["baseline"].tolist()


def test_table_rows_puts_the_fallback_baseline_first():
    runs = frame(*(run(b, "control", top1=v, **{NB: "5-block", keys.BLOCK: b})
                   for b, v in [("squeeze_excitation", 54.0), ("nonlocal", 60.0), ("residual", 52.0)]))
    layout = tables.table_rows(tables.assign_rows(runs, "control"))
    assert layout["label"].tolist() == ["Res C2D 5-block", "NL C2D 5-block", "SE C2D 5-block"]
    assert layout["baseline"].tolist() == [True, False, False]


# --------------------------------------------------------------------------------------------------
# curves: mean ± std over seeds per row and epoch
# --------------------------------------------------------------------------------------------------


def test_curves_mean_and_std_over_seeds_per_group_row_and_epoch():
    runs = frame(*(run(f"{task}-{nb}-{s}", "locality", seed=s, **{TASK: task, NB: nb})
                   for task in ("near", "far") for nb in ("5-block", "none") for s in range(2)),
                 run("far-5-block-crashed", "locality", seed=2, state="crashed", **{TASK: "far", NB: "5-block"}))
    value = {"far": 10.0, "near": 30.0}
    histories = []
    for r in runs.to_dict("records"):
        gain = 5.0 if r[NB] == "5-block" else 0.0
        rows = [{"_step": 10 * e, "epoch": e, keys.VAL_TOP1: value[r[TASK]] + gain + e + 2 * r[keys.SEED],
                 keys.VAL_LOSS: 1.0} for e in range(3)]
        histories.append((r["run_id"], rows))
    history = history_frame(histories)
    assigned = tables.assign_rows(runs, "locality")
    out = epochs.curves(history, assigned)
    assert out.attrs["x"] == "epoch"
    assert list(out.columns) == ["group", "row", "label", "baseline", "position", DATASET, DEPTH, TASK,
                                 "epoch", "mean", "std", "n"]
    # the table's order: far before near, the baseline first, then epochs
    assert list(zip(out[TASK], out["label"], out["epoch"])) == [
        (t, lab, e) for t in ("far", "near") for lab in ("C2D baseline", "NL C2D 5-block") for e in (0, 1, 2)]
    assert out["position"].tolist() == [p for p in range(4) for _ in range(3)]
    assert out["baseline"].tolist() == [True] * 3 + [False] * 3 + [True] * 3 + [False] * 3
    # seeds 0 and 1: mean = base + 1, std = sqrt(2); the crashed run does not count
    assert out["mean"].tolist() == pytest.approx([10 + 1 + e + g for g in (0, 5, 20, 25) for e in range(3)])
    assert out["std"].tolist() == pytest.approx([math.sqrt(2)] * 12)
    assert out["n"].tolist() == [2] * 12
    loss = epochs.curves(history, assigned, metric=keys.VAL_LOSS, x="step")
    assert loss.attrs["x"] == "step" and loss["step"].tolist()[:3] == [0.0, 10.0, 20.0]
    assert loss["mean"].tolist() == pytest.approx([1.0] * 12)
    assert epochs.curves(history, assigned, metric="nope").empty


def test_curves_is_exported_for_the_notebooks():
    import nlstudy.report as report

    assert report.curves is epochs.curves and report.table_rows is tables.table_rows
    assert "curves" in report.__all__


def test_a_spec_can_name_the_reference_row_the_others_are_compared_with(monkeypatch):
    """A table whose question is the other arms against one of them (NL against GC and the plain C2D): its
    reference row comes first and every other row, the plain one included, is compared with it."""
    spec = specs.TableSpec("Mixers", (keys.BLOCK, NB), reference=lambda row: row.get(keys.BLOCK) == "nonlocal"
                           and row.get(NB) != "none")
    monkeypatch.setitem(specs.TABLES, "mixers", spec)
    runs = frame(*(run(f"{b}{s}", "mixers", seed=s, top1=v + s, **{NB: nb, keys.BLOCK: b})
                   for b, nb, v in [("nonlocal", "none", 50.0), ("nonlocal", "5-block", 80.0),
                                    ("global_context", "5-block", 79.0)] for s in range(3)))
    table = build_table(runs, "mixers")
    assert table["label"].tolist() == ["NL C2D 5-block", "C2D baseline", "GC C2D 5-block"]
    assert table["baseline"].tolist() == [True, False, False]
    assert deltas(table) == pytest.approx([-30.0, -1.0])


def test_the_study_tables_compare_each_arm_at_its_own_rate_with_c2d_at_each_distance():
    """reach: one group per distance, each arm (at the rate chosen for it: part of the row) against C2D of the
    same distance; the rates differing by arm must not split the groups."""
    arms = [("none", "nonlocal", 0.01, 70.0), ({"res3": [1]}, "nonlocal", 0.002, 90.0),
            ({"res3": [1]}, "global_context", 0.005, 80.0)]
    runs = frame(*(run(f"{i}{d}{s}", "reach", seed=s, top1=v + s + (d == 34) * 5,
                       **{NB: nb, keys.BLOCK: b, keys.LR: lr, TASK: "reach", keys.DISTANCE: d})
                   for i, (nb, b, lr, v) in enumerate(arms) for d in (6, 34) for s in range(3)))
    table = build_table(runs, "reach")
    assert list(table[keys.DISTANCE]) == [6, 6, 6, 34, 34, 34]
    assert table["baseline"].tolist() == [True, False, False] * 2
    assert table["label"].tolist()[:3] == ["C2D baseline, lr=0.01", "NL C2D 1 block (res3[1]), lr=0.002",
                                           "GC C2D 1 block (res3[1]), lr=0.005"]
    assert deltas(table) == pytest.approx([20.0, 10.0, 20.0, 10.0])


def test_far_mixers_compares_every_arm_with_the_non_local_row():
    arms = [({"res3": [1], "res4": [1]}, "nonlocal", "c2d", 80.0), ({"res3": [1], "res4": [1]}, "global_context", "c2d", 75.0),
            ({"res3": [1], "res4": [1]}, "temporal_residual", "c2d", 85.0), ("none", "nonlocal", "i3d_3x3x3", 90.0)]
    runs = frame(*(run(f"{i}{s}", "far_mixers", seed=s, top1=v + s, **{NB: nb, keys.BLOCK: b, ARCH: a, keys.LR: 0.005})
                   for i, (nb, b, a, v) in enumerate(arms) for s in range(3)))
    table = build_table(runs, "far_mixers")
    assert table["baseline"].tolist() == [True, False, False, False]
    assert table["label"].iloc[0].startswith("NL C2D 2 blocks")
    assert sorted(deltas(table)) == pytest.approx([-5.0, 5.0, 10.0])


def test_a_rate_sweep_table_compares_the_arms_at_each_rate():
    runs = frame(*(run(f"{nb}{lr}", "reach_lr", seed=10, top1=v + 100 * lr,
                       **{NB: nb, keys.LR: lr, TASK: "reach", keys.DISTANCE: 20})
                   for nb, v in (("none", 60.0), ("res3", 70.0)) for lr in (0.002, 0.01)))
    table = build_table(runs, "reach_lr")
    assert list(table[keys.LR]) == [0.002, 0.002, 0.01, 0.01]
    assert table["baseline"].tolist() == [True, False, True, False]
    assert deltas(table) == pytest.approx([10.0, 10.0])
    assert (table.loc[~table["baseline"], "verdict"] == "undecided").all()  # one selection seed: no test
