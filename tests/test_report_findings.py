"""Findings sentences on tables built with build_table from hand-made run frames, and collect.combine."""

from __future__ import annotations

import pandas as pd
import pytest
from scipy import stats

from nlstudy import keys
from nlstudy.keys import DATASET, TASK
from nlstudy.report import collect, findings
from nlstudy.report.stats import ALPHA
from nlstudy.report.tables import build_table

NB, PW, ARCH, DEPTH = keys.NONLOCAL_BLOCKS, keys.PAIRWISE, keys.ARCH, keys.DEPTH


def run(run_id, table="2a", *, seed=0, top1=50.0, state="finished", **config):
    """One row of the tidy runs frame (as in test_report_tables)."""
    row = {
        "run_id": run_id, "name": None, "state": state, "sweep_id": "sw", "table": table, "project": "p",
        "created_at": pd.Timestamp("2026-11-01", tz="UTC"), "source": "offline", "path": run_id, "note": None,
        DATASET: "synthetic", DEPTH: 18, ARCH: "c2d", NB: "none", PW: "embedded_gaussian",
        keys.BLOCK: "nonlocal", keys.SEED: seed,
    }
    row.update(config)
    row.setdefault(keys.PARAMS, 1000 if row[NB] == "none" else 1200)
    row.setdefault(keys.FLOPS, 2_000_000 if row[NB] == "none" else 2_500_000)
    row[keys.VAL_TOP1_BEST] = top1 if state == "finished" else None
    row[keys.VAL_TOP5_BEST] = top1 + 30 if state == "finished" and top1 is not None else None
    return row


def frame(*rows):
    return pd.DataFrame.from_records(rows)


BASE, DOT, GAU, WORSE = [50.0, 53.0, 51.0], [60.0, 58.0, 61.0, 59.0], [51.0, 53.5], [40.0, 41.0, 39.5]


def table_2a():
    """Baseline (3 seeds); dot_product clearly better; gaussian not significant; concatenation one seed;
    embedded_gaussian only failed runs; plus, in 2a's pairwise column, one clearly worse row."""
    return build_table(frame(
        *(run(f"b{s}", seed=s, top1=v) for s, v in enumerate(BASE)),
        *(run(f"d{s}", seed=s, top1=v, **{NB: "1-block", PW: "dot_product"}) for s, v in enumerate(DOT)),
        *(run(f"g{s}", seed=s, top1=v, **{NB: "1-block", PW: "gaussian"}) for s, v in enumerate(GAU)),
        run("c0", seed=0, top1=70.0, **{NB: "1-block", PW: "concatenation"}),
        run("e0", seed=0, state="failed", **{NB: "1-block", PW: "embedded_gaussian"}),
        *(run(f"w{s}", seed=s, top1=v, **{NB: "5-block", PW: "gaussian"}) for s, v in enumerate(WORSE)),
    ), "2a")


def by_label(table):
    return {r["label"]: r for r in table.to_dict("records")}


def sentence_for(lines, label):
    (line,) = [line for line in lines if line.startswith(label + ":") or line.startswith(label + " (")]
    return line


def test_row_findings_read_every_number_from_the_table():
    table = table_2a()
    rows = by_label(table)
    lines = findings.row_findings(table)
    assert len(lines) == len(table) - 1  # every row but the baseline
    assert not any(line.startswith("C2D baseline") for line in lines)

    dot = rows["NL C2D 1-block dot_product"]
    p = stats.ttest_ind(DOT, BASE, equal_var=False).pvalue
    assert dot["p_top1"] == pytest.approx(p) and p < ALPHA
    assert sentence_for(lines, "NL C2D 1-block dot_product") == (
        f"NL C2D 1-block dot_product: top-1 {dot['top1']:.1f} % (n=4), {dot['delta_top1']:+.1f} points against "
        f"its baseline (p = {dot['p_top1']:.3g}, significant at {ALPHA}).")
    assert "top-1 59.5 % (n=4), +8.2 points" in sentence_for(lines, "NL C2D 1-block dot_product")

    gau = rows["NL C2D 1-block gaussian"]
    assert not gau["sig"]
    assert sentence_for(lines, "NL C2D 1-block gaussian") == (
        f"NL C2D 1-block gaussian: top-1 {gau['top1']:.1f} % (n=2), {gau['delta_top1']:+.1f} points against "
        f"its baseline (p = {gau['p_top1']:.3g}, not significant at {ALPHA}).")

    worse = rows["NL C2D 5-block, pairwise=gaussian"]
    assert worse["sig"] and worse["delta_top1"] < 0
    assert f"{worse['delta_top1']:+.1f} points" in sentence_for(lines, "NL C2D 5-block, pairwise=gaussian")
    assert sentence_for(lines, "NL C2D 5-block, pairwise=gaussian").startswith(
        "NL C2D 5-block, pairwise=gaussian: top-1 40.2 % (n=3), -11.2")
    assert ", significant at" in sentence_for(lines, "NL C2D 5-block, pairwise=gaussian")

    assert sentence_for(lines, "NL C2D 1-block concatenation") == (
        "NL C2D 1-block concatenation: top-1 70.0 % (n=1), +18.7 points against its baseline "
        "(not tested: fewer than two seeds on a side).")
    assert sentence_for(lines, "NL C2D 1-block embedded_gaussian") == (
        "NL C2D 1-block embedded_gaussian: no finished run (failed).")


def test_rows_compared_exactly_say_so():
    table = build_table(frame(*(run(f"b{s}", seed=s, top1=50.0) for s in range(2)),
                              *(run(f"u{s}", seed=s, top1=60.0, **{NB: "1-block"}) for s in range(2))), "2a")
    (line,) = findings.row_findings(table)
    assert line == ("NL C2D 1-block embedded_gaussian: top-1 60.0 % (n=2), +10.0 points against its baseline "
                    f"(p = 0, significant at {ALPHA}, every seed gave the same value on both sides, compared exactly).")


def test_a_varying_group_key_is_named_in_each_sentence():
    rows = []
    for d, gain in ((4, 0.5), (12, 9.0)):  # the block helps far more at 12 pixels
        for nb, g in (("none", 0.0), ("1-block", gain)):
            for s in range(3):
                rows.append(run(f"{d}-{nb}-{s}", "receptive_field", seed=s, top1=50.0 + g + s,
                                **{NB: nb, keys.DISTANCE: d, TASK: "within"}))
    table = build_table(frame(*rows), "receptive_field")
    assert table.attrs["varying_group_keys"] == [keys.DISTANCE]
    lines = findings.row_findings(table)
    assert [line.split(":")[0] for line in lines] == ["NL C2D 1-block (distance=4)", "NL C2D 1-block (distance=12)"]
    near, far = [r for r in table.to_dict("records") if not r["baseline"]]
    assert lines[1] == (f"NL C2D 1-block (distance=12): top-1 {far['top1']:.1f} % (n=3), +9.0 points against its "
                        f"baseline (p = {far['p_top1']:.3g}, significant at {ALPHA}).")
    assert f"+0.5 points against its baseline (p = {near['p_top1']:.3g}, not significant" in lines[0]
    summary = findings.table_summary(table)
    assert summary == (f"{table.attrs['title']}: 2 row(s) compared with their baseline; 1 better and 0 worse at "
                       f"p < {ALPHA}; the largest gain is NL C2D 1-block (distance=12), +9.0 points.")


def test_a_constant_group_key_is_not_named():
    table = table_2a()
    assert table.attrs["varying_group_keys"] == []
    assert not any("(" in line.split(":")[0] for line in findings.row_findings(table))


def test_rows_without_a_baseline_say_there_is_nothing_to_compare_with():
    table = build_table(frame(run("a", "mine", seed=0, top1=40.0, **{NB: "1-block"}),
                              run("b", "mine", seed=0, top1=45.0, **{NB: "5-block"})), "mine")
    assert not table["baseline"].any()
    lines = findings.row_findings(table)
    assert lines == ["NL C2D 1-block: top-1 40.0 % (n=1); no baseline to compare with.",
                     "NL C2D 5-block: top-1 45.0 % (n=1); no baseline to compare with."]
    assert findings.table_summary(table) == f"{table.attrs['title']}: no row to compare with a baseline."


def test_table_summary_counts_better_and_worse_rows():
    table = table_2a()
    rows = by_label(table)
    summary = findings.table_summary(table)
    # compared: dot_product, gaussian (1-block), concatenation, 5-block gaussian (the failed row has no delta)
    assert summary == (f"{table.attrs['title']}: 4 row(s) compared with their baseline; 1 better and 1 worse at "
                       f"p < {ALPHA}; the largest gain is NL C2D 1-block dot_product, "
                       f"{rows['NL C2D 1-block dot_product']['delta_top1']:+.1f} points.")
    # the one-seed row has the largest difference but was not tested: it is not the "largest gain"
    assert rows["NL C2D 1-block concatenation"]["delta_top1"] > rows["NL C2D 1-block dot_product"]["delta_top1"]
    sig = findings.significant_rows(table)
    assert sorted(sig["label"]) == ["NL C2D 1-block dot_product", "NL C2D 5-block, pairwise=gaussian"]


def test_table_summary_without_significant_rows_names_no_gain():
    table = build_table(frame(*(run(f"b{s}", seed=s, top1=v) for s, v in enumerate(BASE)),
                              *(run(f"g{s}", seed=s, top1=v, **{NB: "1-block"}) for s, v in enumerate(GAU))), "2a")
    assert findings.table_summary(table) == (
        f"{table.attrs['title']}: 1 row(s) compared with their baseline; 0 better and 0 worse at p < {ALPHA}.")
    assert findings.significant_rows(table).empty
    assert findings.significant_rows(table.drop(columns="sig")).empty


# --- collect.combine ---


def record(run_id, config, history=(), **summary):
    return collect.RunRecord(run_id=run_id, state="finished", config=config, summary=summary,
                             history=[dict(h) for h in history], source="offline", path=f"/runs/{run_id}",
                             created_at="2026-01-01T00:00:00Z")


def test_combine_concatenates_runs_and_history_and_merges_config_columns():
    one = collect.tidy([record("a", {"table": "2a", keys.SEED: 0, NB: "none"},
                               [{"_step": 0, "epoch": 0, keys.VAL_TOP1: 50.0}], **{keys.VAL_TOP1_BEST: 50.0}),
                        record("b", {"table": "2a", keys.SEED: 1, NB: "none"}, **{keys.VAL_TOP1_BEST: 52.0})])
    two = collect.tidy([record("c", {"table": "2a", keys.SEED: 0, NB: "1-block", PW: "gaussian"},
                               [{"_step": 0, "epoch": 0, keys.VAL_TOP1: 60.0},
                                {"_step": 1, "epoch": 1, keys.VAL_TOP1: 61.0}],
                               **{keys.VAL_TOP1_BEST: 61.0})])
    both = collect.combine([one, two])
    assert both.runs["run_id"].tolist() == ["a", "b", "c"] and both.runs.index.tolist() == [0, 1, 2]
    assert both.runs.attrs["config_columns"] == sorted({keys.SEED, NB, PW, "table"} - set(collect.FIXED_COLUMNS))
    merged = set(one.runs.attrs["config_columns"]) | set(two.runs.attrs["config_columns"])
    assert both.runs.attrs["config_columns"] == sorted(merged)
    assert both.runs[keys.VAL_TOP1_BEST].tolist() == [50.0, 52.0, 61.0]
    assert both.runs[PW].isna().tolist() == [True, True, False]
    assert both.history["run_id"].tolist() == ["a", "c", "c"] and both.history["value"].tolist() == [50.0, 60.0, 61.0]
    assert list(both.history.columns) == list(collect.HISTORY_COLUMNS) and both.history.index.tolist() == [0, 1, 2]
    # one collection combines to itself
    alone = collect.combine(iter([one]))  # any iterable, a generator too
    pd.testing.assert_frame_equal(alone.runs, one.runs)
    pd.testing.assert_frame_equal(alone.history, one.history)
    assert alone.runs.attrs["config_columns"] == one.runs.attrs["config_columns"]
    # the combined frame builds the same table as one frame of all the runs
    everything = collect.tidy([
        record("a", {"table": "2a", keys.SEED: 0, NB: "none"}, **{keys.VAL_TOP1_BEST: 50.0}),
        record("b", {"table": "2a", keys.SEED: 1, NB: "none"}, **{keys.VAL_TOP1_BEST: 52.0}),
        record("c", {"table": "2a", keys.SEED: 0, NB: "1-block", PW: "gaussian"}, **{keys.VAL_TOP1_BEST: 61.0})])
    top1 = build_table(both.runs, "2a")["top1"].tolist()
    assert top1 == build_table(everything.runs, "2a")["top1"].tolist() == [51.0, 61.0]


def test_combine_of_nothing_is_an_empty_collection():
    empty = collect.combine([])
    assert isinstance(empty, collect.Collection)
    assert empty.runs.empty and list(empty.runs.columns) == list(collect.FIXED_COLUMNS)
    assert empty.runs.attrs["config_columns"] == []
    assert empty.history.empty and list(empty.history.columns) == list(collect.HISTORY_COLUMNS)
