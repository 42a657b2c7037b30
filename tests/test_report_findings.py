"""Findings sentences on tables built with build_table from hand-made run frames, and schema.combine."""

from __future__ import annotations

import pandas as pd
import pytest
from scipy import stats

from nlstudy import keys
from nlstudy.keys import DATASET, TASK
from nlstudy.report import findings, schema
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
    row[keys.TEST_TOP1] = row[keys.VAL_TOP1_BEST] = top1 if state == "finished" else None
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


def test_row_findings_read_every_number_from_the_table_and_speak_from_the_verdict():
    table = table_2a()
    rows = by_label(table)
    lines = findings.row_findings(table)
    assert len(lines) == len(table) - 1  # every row but the baseline
    assert not any(line.startswith("C2D baseline") for line in lines)
    assert table.attrs["family"]["size"] == 3  # dot_product, gaussian, 5-block gaussian (one-seed and failed rows untested)

    dot = rows["NL C2D 1-block dot_product"]
    p = stats.ttest_ind(DOT, BASE, equal_var=False).pvalue
    assert dot["p"] == pytest.approx(p) and dot["verdict"] == "better"
    ci = stats.ttest_ind(DOT, BASE, equal_var=False).confidence_interval()
    assert sentence_for(lines, "NL C2D 1-block dot_product") == (
        f"NL C2D 1-block dot_product: test top-1 {dot['mean']:.1f} (n=4), Δ {dot['delta']:+.1f} "
        f"[{ci.low:+.1f}, {ci.high:+.1f}] points against its baseline: better after Holm over 3 comparisons of "
        f"this table (p Holm = {dot['p_holm']:.2g}).")
    assert "test top-1 59.5 (n=4), Δ +8.2 [" in sentence_for(lines, "NL C2D 1-block dot_product")

    gau = rows["NL C2D 1-block gaussian"]
    assert gau["verdict"] == "undecided"
    line = sentence_for(lines, "NL C2D 1-block gaussian")
    assert line.startswith(f"NL C2D 1-block gaussian: test top-1 {gau['mean']:.1f} (n=2), Δ {gau['delta']:+.1f} [")
    assert (f"undecided after Holm over 3 comparisons of this table: neither a difference (p Holm = {gau['p_holm']:.2g}) nor "
            f"equivalence within ±2 (p equiv = {gau['p_equiv']:.2g}) is shown; the seeds detect |Δ| ≥ "
            f"{gau['mde']:.1f} with 80 % power.") in line
    assert "p = " not in line  # never the uncorrected p

    worse = rows["NL C2D 5-block, pairwise=gaussian"]
    assert worse["verdict"] == "worse" and worse["delta"] < 0
    assert sentence_for(lines, "NL C2D 5-block, pairwise=gaussian").startswith(
        "NL C2D 5-block, pairwise=gaussian: test top-1 40.2 (n=3), Δ -11.2 [")
    assert ": worse after Holm over 3 comparisons of this table" in sentence_for(lines, "NL C2D 5-block, pairwise=gaussian")

    assert sentence_for(lines, "NL C2D 1-block concatenation") == (
        "NL C2D 1-block concatenation: test top-1 70.0 (n=1), Δ +18.7 points against its baseline: "
        "undecided: fewer than two seeds on a side, not tested.")
    assert sentence_for(lines, "NL C2D 1-block embedded_gaussian") == (
        "NL C2D 1-block embedded_gaussian: no counted run (failed).")


def test_no_difference_is_said_only_of_an_equivalent_row():
    same = [50.0, 50.2, 49.8, 50.1, 49.9, 50.0]
    table = build_table(frame(*(run(f"b{s}", seed=s, top1=v) for s, v in enumerate(same)),
                              *(run(f"u{s}", seed=s, top1=v + 0.1, **{NB: "1-block"}) for s, v in enumerate(same)),
                              *(run(f"w{s}", seed=s, top1=v, **{NB: "1-block", PW: "dot_product"})
                                for s, v in enumerate([44.0, 56.0, 51.0]))), "2a")
    rows = by_label(table)
    assert rows["NL C2D 1-block embedded_gaussian"]["verdict"] == "equivalent"
    assert rows["NL C2D 1-block dot_product"]["verdict"] == "undecided"  # a wide interval: neither shown
    eq = findings.claim(table, rows["NL C2D 1-block embedded_gaussian"])
    assert eq.endswith(", equivalent within ±2") and eq.startswith("+0.1 [")
    assert findings.claim(table, rows["NL C2D 1-block dot_product"]).endswith(", undecided")
    assert findings.claim(table, rows["C2D baseline"]) == ""


def test_rows_compared_exactly_say_so():
    table = build_table(frame(*(run(f"b{s}", seed=s, top1=50.0) for s in range(2)),
                              *(run(f"u{s}", seed=s, top1=60.0, **{NB: "1-block"}) for s in range(2))), "2a")
    (line,) = findings.row_findings(table)
    assert line == ("NL C2D 1-block embedded_gaussian: test top-1 60.0 (n=2), Δ +10.0 [+10.0, +10.0] points against "
                    "its baseline: better after Holm over 1 comparison of this table (p Holm = 0).")


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
    assert lines[1].startswith(f"NL C2D 1-block (distance=12): test top-1 {far['mean']:.1f} (n=3), Δ +9.0 [")
    assert far["verdict"] == "better" and near["verdict"] == "undecided"
    summary = findings.table_summary(table)
    assert summary.startswith(f"{table.attrs['title']}: 2 row(s) compared with their baseline after Holm over 2 "
                              "comparisons of this table (α = 0.05): 1 better, 0 worse, 0 equivalent, 1 undecided; "
                              "the largest gain shown is NL C2D 1-block (distance=12), +9.0 [")


def test_a_constant_group_key_is_not_named():
    table = table_2a()
    assert table.attrs["varying_group_keys"] == []
    assert not any("(" in line.split(":")[0] for line in findings.row_findings(table))


def test_rows_without_a_baseline_say_there_is_nothing_to_compare_with():
    table = build_table(frame(run("a", "mine", seed=0, top1=40.0, **{NB: "1-block"}),
                              run("b", "mine", seed=0, top1=45.0, **{NB: "5-block"})), "mine")
    assert not table["baseline"].any()
    lines = findings.row_findings(table)
    assert lines == ["NL C2D 1-block: test top-1 40.0 (n=1); no baseline to compare with.",
                     "NL C2D 5-block: test top-1 45.0 (n=1); no baseline to compare with."]
    assert findings.table_summary(table) == f"{table.attrs['title']}: no row to compare with a baseline."


def test_table_summary_counts_every_verdict():
    table = table_2a()
    rows = by_label(table)
    summary = findings.table_summary(table)
    # compared: dot_product, gaussian (1-block), concatenation, 5-block gaussian, and the failed row (undecided)
    assert summary.startswith(f"{table.attrs['title']}: 5 row(s) compared with their baseline after Holm over 3 "
                              "comparisons of this table (α = 0.05): 1 better, 1 worse, 0 equivalent, 3 undecided; "
                              "the largest gain shown is NL C2D 1-block dot_product, +8.2 [")
    assert summary.endswith("an undecided row needs more seeds (nlstudy sweep --until-decided) before anything is "
                            "said of it.")
    # the one-seed row has the largest difference but was not tested: it is not the "largest gain"
    assert rows["NL C2D 1-block concatenation"]["delta"] > rows["NL C2D 1-block dot_product"]["delta"]
    assert sorted(findings.decided(table, "better")["label"]) == ["NL C2D 1-block dot_product"]
    assert sorted(findings.decided(table, "worse")["label"]) == ["NL C2D 5-block, pairwise=gaussian"]


def test_table_summary_without_decided_rows_names_no_gain():
    table = build_table(frame(*(run(f"b{s}", seed=s, top1=v) for s, v in enumerate(BASE)),
                              *(run(f"g{s}", seed=s, top1=v, **{NB: "1-block"}) for s, v in enumerate(GAU))), "2a")
    assert findings.table_summary(table).startswith(
        f"{table.attrs['title']}: 1 row(s) compared with their baseline after Holm over 1 comparison of this table "
        "(α = 0.05): 0 better, 0 worse, 0 equivalent, 1 undecided; an undecided row")
    assert findings.decided(table, "better").empty
    assert findings.decided(table.drop(columns="verdict"), "better").empty


# --- schema.combine ---


def record(run_id, config, history=(), **summary):
    return schema.RunRecord(run_id=run_id, state="finished", config=config, summary=summary,
                             history=[dict(h) for h in history], source="offline", path=f"/runs/{run_id}",
                             created_at="2026-01-01T00:00:00Z")


def test_combine_concatenates_runs_and_history_and_merges_config_columns():
    one = schema.tidy([record("a", {"table": "2a", keys.SEED: 0, NB: "none"},
                               [{"_step": 0, "epoch": 0, keys.VAL_TOP1: 50.0}], **{keys.VAL_TOP1_BEST: 50.0}),
                        record("b", {"table": "2a", keys.SEED: 1, NB: "none"}, **{keys.VAL_TOP1_BEST: 52.0})])
    two = schema.tidy([record("c", {"table": "2a", keys.SEED: 0, NB: "1-block", PW: "gaussian"},
                               [{"_step": 0, "epoch": 0, keys.VAL_TOP1: 60.0},
                                {"_step": 1, "epoch": 1, keys.VAL_TOP1: 61.0}],
                               **{keys.VAL_TOP1_BEST: 61.0})])
    both = schema.combine([one, two])
    assert both.runs["run_id"].tolist() == ["a", "b", "c"] and both.runs.index.tolist() == [0, 1, 2]
    assert both.runs.attrs["config_columns"] == sorted({keys.SEED, NB, PW, "table"} - set(schema.FIXED_COLUMNS))
    merged = set(one.runs.attrs["config_columns"]) | set(two.runs.attrs["config_columns"])
    assert both.runs.attrs["config_columns"] == sorted(merged)
    assert both.runs[keys.VAL_TOP1_BEST].tolist() == [50.0, 52.0, 61.0]
    assert both.runs[PW].isna().tolist() == [True, True, False]
    assert both.history["run_id"].tolist() == ["a", "c", "c"] and both.history["value"].tolist() == [50.0, 60.0, 61.0]
    assert list(both.history.columns) == list(schema.HISTORY_COLUMNS) and both.history.index.tolist() == [0, 1, 2]
    # one collection combines to itself
    alone = schema.combine(iter([one]))  # any iterable, a generator too
    pd.testing.assert_frame_equal(alone.runs, one.runs)
    pd.testing.assert_frame_equal(alone.history, one.history)
    assert alone.runs.attrs["config_columns"] == one.runs.attrs["config_columns"]
    # the combined frame builds the same table as one frame of all the runs
    everything = schema.tidy([
        record("a", {"table": "2a", keys.SEED: 0, NB: "none"}, **{keys.VAL_TOP1_BEST: 50.0}),
        record("b", {"table": "2a", keys.SEED: 1, NB: "none"}, **{keys.VAL_TOP1_BEST: 52.0}),
        record("c", {"table": "2a", keys.SEED: 0, NB: "1-block", PW: "gaussian"}, **{keys.VAL_TOP1_BEST: 61.0})])
    top1 = build_table(both.runs, "2a")["mean"].tolist()
    assert top1 == build_table(everything.runs, "2a")["mean"].tolist() == [51.0, 61.0]


def test_combine_of_nothing_is_an_empty_collection():
    empty = schema.combine([])
    assert isinstance(empty, schema.Collection)
    assert empty.runs.empty and list(empty.runs.columns) == list(schema.FIXED_COLUMNS)
    assert empty.runs.attrs["config_columns"] == []
    assert empty.history.empty and list(empty.history.columns) == list(schema.HISTORY_COLUMNS)
