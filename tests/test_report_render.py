"""Renderers (Markdown, LaTeX booktabs, CSV) and figures, on a table built from a hand-made run frame."""

import io

import pandas as pd
import pytest

from nlstudy import keys
from nlstudy.keys import DATASET
from scipy import stats

from nlstudy.report import plots, render, tables
from nlstudy.report.schema import history_frame
from nlstudy.report.tables import assign_rows, build_table

NB, PW = keys.NONLOCAL_BLOCKS, keys.PAIRWISE


def run(run_id, *, seed, top1, depth=18, state="finished", **config):
    row = {"run_id": run_id, "name": None, "state": state, "sweep_id": "sw", "table": "2a", "project": "p",
           "created_at": pd.Timestamp("2026-11-01", tz="UTC"), "source": "offline", "path": run_id, "note": None,
           DATASET: "synthetic", keys.DEPTH: depth, keys.ARCH: "c2d", NB: "none", PW: "embedded_gaussian",
           keys.SEED: seed, keys.PARAMS: 1000, keys.FLOPS: 2_000_000,
           keys.VAL_TOP1_BEST: top1, keys.VAL_TOP5_BEST: None if top1 is None else top1 + 20,
           keys.TEST_TOP1: None if top1 is None else top1 - 1}
    row.update(config)
    return row


@pytest.fixture(scope="module")
def runs():
    nl = {NB: "1-block", keys.PARAMS: 1100, keys.FLOPS: 2_400_000}
    return pd.DataFrame.from_records([
        *(run(f"b{s}", seed=s, top1=50.0 + s) for s in range(3)),
        *(run(f"d{s}", seed=s, top1=60.0 + 2 * s, **nl, **{PW: "dot_product"}) for s in range(3)),
        run("g0", seed=0, top1=None, state="crashed", **nl, **{PW: "gaussian"}),
        run("b50", seed=0, top1=70.0, depth=50), run("d50", seed=0, top1=72.0, depth=50, **nl, **{PW: "dot_product"}),
    ])


@pytest.fixture(scope="module")
def table(runs):
    return build_table(runs, "2a")


COLUMNS = ["depth", "model", "test top-1", "Δ [95% CI]", "p", "p Holm", "p equiv", "MDE", "verdict",
           "val top-1 (best)", "val top-5 (at best top-1)", "params", "FLOPs", "n", "paper"]


def test_display_cells_paper_style(table):
    shown = render.display_frame(table)
    # the primary metric (test top-1) first, its comparison, then the secondary metrics; no run logged test/top5
    assert list(shown.columns) == COLUMNS
    first, crashed, dot = (shown.iloc[i].to_dict() for i in range(3))
    assert first == {"depth": "18", "model": "C2D baseline", "test top-1": "50.0 ± 1.0", "Δ [95% CI]": "—", "p": "—",
                     "p Holm": "—", "p equiv": "—", "MDE": "—", "verdict": "—", "val top-1 (best)": "51.0 ± 1.0",
                     "val top-5 (at best top-1)": "71.0 ± 1.0", "params": "×1.00", "FLOPs": "×1.00", "n": "3",
                     "paper": "71.8 / 89.7 (R50)"}
    assert crashed["test top-1"] == "failed" and crashed["n"] == "0 (1 failed)" and crashed["Δ [95% CI]"] == ""
    assert crashed["p"] == "" and crashed["verdict"] == "undecided"  # nothing to compare: nothing shown
    # 59, 61, 63 vs 49, 50, 51: Welch p = 0.0037; Welch interval of the difference, Holm over 1 comparison
    ci = stats.ttest_ind([59.0, 61.0, 63.0], [49.0, 50.0, 51.0], equal_var=False).confidence_interval()
    assert dot["Δ [95% CI]"] == f"+11.0 [+{ci.low:.1f}, +{ci.high:.1f}]" == "+11.0 [+6.8, +15.2]"
    assert (dot["p"], dot["p Holm"], dot["verdict"]) == ("0.004", "0.004", "better")
    assert dot["params"] == "×1.10" and dot["FLOPs"] == "×1.20"
    assert shown.iloc[4]["paper"] == "72.9 / 90.3"  # ResNet-50: the paper's own depth, no mark
    # one seed a side: Δ without an interval, no test, undecided
    assert (shown.iloc[4]["Δ [95% CI]"], shown.iloc[4]["p"], shown.iloc[4]["verdict"]) == ("+2.0", "n<2", "undecided")


def test_markdown(table):
    text = render.to_markdown(table)
    lines = text.splitlines()
    assert lines[0] == "### Table 2a: pairwise function (nonlocal_blocks=1-block)"  # the runs' setting, not the paper's
    header = [c.strip() for c in lines[2].strip("|").split("|")]
    assert header == COLUMNS
    assert lines[3].startswith("|:---|:---|---:")
    assert "| 18 | NL C2D 1-block gaussian | failed |" in text
    table_lines = [line for line in lines if line.startswith("|")]
    assert len(table_lines) == 2 + len(table) and all(line.count("|") == len(COLUMNS) + 1 for line in table_lines)
    assert any(line.startswith("- paper: Wang et al.") for line in lines)
    assert "| +11.0 [+6.8, +15.2] | 0.004 | 0.004 | 0.997 |" in text
    # alpha, the margin and the family's size under the table
    assert "- α = 0.05; margin = ±2 points of `test/top1`; family: 1 comparison(s) of this table." in lines
    assert any(line.startswith("- p: Welch's t-test of the difference, two-sided. p Holm: Holm-adjusted over")
               for line in lines)


def test_latex_booktabs(table):
    tex = render.to_latex(table)
    assert "\\begin{tabular}{ll" + "r" * (len(COLUMNS) - 2) + "}" in tex
    body = tex[tex.index("\\toprule"):tex.index("\\bottomrule")]
    assert body.count("\\midrule") == 2  # under the header, and between the depth-18 and depth-50 groups
    assert "NL C2D 1-block dot\\_product & 61.0 $\\pm$ 2.0" in tex
    assert "$\\Delta$ [95\\% CI]" in tex and "$\\times$1.10" in tex and "$\\alpha$ = 0.05" in tex
    rows = [line for line in body.splitlines() if line.endswith("\\\\")]
    assert all(line.count(" & ") == len(COLUMNS) - 1 for line in rows)
    assert " & +11.0 [+6.8, +15.2] & 0.004 & " in tex and " & +2.0 & n$<$2 & " in tex
    assert "<" not in tex.replace("$<$", "") and "α" not in tex
    assert tex.rstrip().endswith("\\end{tabular}")


def test_csv_keeps_the_numbers(table):
    back = pd.read_csv(io.StringIO(render.to_csv(table)))
    assert len(back) == len(table)
    assert back["mean"].iloc[2] == pytest.approx(61.0) and back["n"].tolist() == table["n"].tolist()
    assert back["val_top1_best"].iloc[2] == pytest.approx(62.0)
    assert back[PW].isna().iloc[0]  # the baseline's pairwise function is not applicable: blank
    assert back["paper_top1"].iloc[0] == 71.8
    assert set(back["metric"]) == {"test/top1"}
    # the comparison, under the column names the issue fixes
    for col in ("delta", "delta_ci_low", "delta_ci_high", "p", "p_holm", "p_equiv", "margin", "mde", "verdict"):
        assert col in back.columns
    assert back["p"].iloc[2] == pytest.approx(0.0036599555836826546)
    assert back["p"].isna().tolist() == [True, True, False, True, True]
    assert back["verdict"].fillna("").tolist() == ["", "undecided", "better", "", "undecided"]
    assert back["margin"].tolist() == [2.0] * 5


def test_runs_csv_has_every_seed_behind_the_table(table):
    lines = pd.read_csv(io.StringIO(render.runs_csv(tables.seeds(table))))
    assert list(lines.columns[:7]) == ["run_id", "label", "group", "seed", "state", "counted", "sweep_id"]
    assert {"test/top1", "val/top1_best"} <= set(lines.columns)
    assert lines["run_id"].tolist() == ["b0", "b1", "b2", "g0", "d0", "d1", "d2", "b50", "d50"]  # the table's order
    assert lines["group"].tolist() == ["depth=18"] * 7 + ["depth=50"] * 2
    assert lines["counted"].tolist() == [True, True, True, False, True, True, True, True, True]
    dot = lines[(lines["label"] == "NL C2D 1-block dot_product") & (lines["group"] == "depth=18")]
    assert dot["test/top1"].tolist() == [59.0, 61.0, 63.0]


def test_latex_escapes():
    assert render.tex_escape("a_b & 50% #1 {x} ~ ^ $ \\") == (
        "a\\_b \\& 50\\% \\#1 \\{x\\} \\textasciitilde{} \\textasciicircum{} \\$ \\textbackslash{}")
    assert render.tex_escape("p < 0.001, n>2") == "p $<$ 0.001, n$>$2"


def test_figures_png_and_pdf(tmp_path, runs, table):
    fig = plots.plot_accuracy_vs_flops(table)
    paths = plots.save(fig, tmp_path / "fig" / "2a_acc_vs_flops")
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[1].read_bytes()[:5] == b"%PDF-"
    # the baseline is drawn as a star per group
    ax = fig.axes[0]
    stars = [line for line in ax.get_lines() if line.get_marker() == "*"]
    assert len(stars) == 2
    assert plots.save(plots.plot_bars(table), tmp_path / "bars")[0].stat().st_size > 1000

    history = history_frame([(r, [{"_step": e, "epoch": e, keys.VAL_TOP1: 10.0 * e + i} for e in range(3)])
                             for i, r in enumerate(runs["run_id"])])
    assigned = assign_rows(runs, "2a")
    fig = plots.plot_curves(assigned, history, title="2a")
    assert len(fig.axes) == 2  # one panel per depth
    labels = sorted(t.get_text() for t in fig.axes[0].get_legend().get_texts())
    assert labels == ["C2D baseline (n=3)", "NL C2D 1-block dot_product (n=3)"]  # the crashed variant has no curve
    # each seed's curve (thin) beside the mean: 3 + 3 runs and 2 means in the depth-18 panel
    assert len(fig.axes[0].get_lines()) == 6 + 2
    assert "95 % t interval" in fig.get_suptitle()
    assert plots.save(fig, tmp_path / "curves")[1].exists()


def test_figures_without_data_are_skipped():
    empty = build_table(pd.DataFrame.from_records([run("g0", seed=0, top1=None, state="failed")]), "2a")
    assert plots.plot_accuracy_vs_flops(empty) is None and plots.plot_bars(empty) is None
    assert render.to_markdown(empty).count("failed") >= 2


def test_bars_show_each_seed_the_interval_n_the_verdict_and_the_full_range(table):
    fig = plots.plot_bars(table)
    ax = fig.axes[0]  # the depth-18 panel: baseline, crashed gaussian, dot product
    seeds = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert [sorted(line.get_ydata().tolist()) for line in seeds] == [[49.0, 50.0, 51.0], [], [59.0, 61.0, 63.0]]
    # the mean's 95 % t interval as the error bar, labelled so
    dot = table.iloc[2]
    caps = ax.containers[1]  # the errorbar container after the bars
    segment = caps.lines[2][0].get_segments()[2]  # the third bar's whisker: from (x, low) to (x, high)
    low, high = segment[0][1], segment[1][1]
    assert (low, high) == pytest.approx((dot["ci_low"], dot["ci_high"]))
    assert "mean, 95 % t interval over seeds" in [t.get_text() for t in ax.get_legend().get_texts()]
    # n and the verdict under each label; the range of a % from 0 to 100
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "C2D baseline\nn=3", "NL C2D 1-block gaussian\nn=0, undecided", "NL C2D 1-block dot_product\nn=3, better"]
    assert ax.get_ylim() == (0.0, 100.0)
    assert "Holm over 1 comparison" in fig.get_suptitle()


def test_figures_draw_the_chance_level_when_the_runs_say_the_classes(runs):
    table = build_table(runs.assign(**{keys.NUM_CLASSES: 2}), "2a")
    assert plots.chance_level(table) == 50.0
    for fig in (plots.plot_bars(table), plots.plot_accuracy_vs_flops(table)):
        chance = [line for line in fig.axes[0].get_lines() if line.get_linestyle() == ":"]
        assert len(chance) == 1 and list(chance[0].get_ydata()) == [50.0, 50.0]
    assert plots.chance_level(build_table(runs, "2a")) is None  # no number of classes logged: no line


def test_p_cells_say_exact_and_too_few_seeds_in_words():
    nl = {NB: "1-block", keys.PARAMS: 1100, keys.FLOPS: 2_400_000}
    runs = pd.DataFrame.from_records([
        *(run(f"b{s}", seed=s, top1=50.0) for s in range(2)),
        *(run(f"g{s}", seed=s, top1=50.0, **nl, **{PW: "gaussian"}) for s in range(2)),
        *(run(f"d{s}", seed=s, top1=75.0, **nl, **{PW: "dot_product"}) for s in range(2)),
        run("c0", seed=0, top1=90.0, **nl, **{PW: "concatenation"}),
    ])
    table = build_table(runs, "2a")
    shown = render.display_frame(table).set_index("model")
    cols = ["Δ [95% CI]", "p", "verdict"]
    assert shown.loc["NL C2D 1-block gaussian", cols].tolist() == ["+0.0 [+0.0, +0.0]", "1 (exact)", "equivalent"]
    assert shown.loc["NL C2D 1-block dot_product", cols].tolist() == ["+25.0 [+25.0, +25.0]", "0 (exact)", "better"]
    assert shown.loc["NL C2D 1-block concatenation", cols].tolist() == ["+40.0", "n<2", "undecided"]
    assert "(exact): no spread over seeds on either side" in render.to_markdown(table)
    back = pd.read_csv(io.StringIO(render.to_csv(table)))
    assert back["p"].tolist()[1:3] == [1.0, 0.0] and back["p_exact"].tolist() == [False, True, True, False]


def test_accuracy_against_a_group_key_draws_one_line_per_row_in_table_order():
    runs = pd.DataFrame.from_records([
        run(f"{nb}{d}{s}", seed=s, top1=top1 + d + s, **{NB: nb, keys.DISTANCE: d}, table="mine")
        for nb, top1 in (("none", 50.0), ("1-block", 70.0)) for d in (12, 4) for s in range(2)
    ])
    table = build_table(runs, "mine")
    fig = plots.plot_against(table, keys.DISTANCE, "distance")
    bars = fig.axes[0].containers  # one error-bar container per row: its label (with n), its data line
    assert [c.get_label() for c in bars] == [f"{label} (n=2)" for label in dict.fromkeys(table["label"])]
    base = bars[0].lines[0]
    assert base.get_xdata().tolist() == [4, 12] and base.get_ydata().tolist() == [54.5 - 1, 62.5 - 1]  # test top-1
    dots = [line for line in fig.axes[0].get_lines() if line.get_marker() == "o"]
    assert len(dots) == 4 and all(len(d.get_ydata()) == 2 for d in dots)  # each seed at each distance
    assert fig.axes[0].get_ylim() == (0.0, 100.0)
    assert plots.plot_against(table.assign(mean=float("nan")), keys.DISTANCE, "distance") is None
