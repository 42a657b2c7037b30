"""Renderers (Markdown, LaTeX booktabs, CSV) and figures, on a table built from a hand-made run frame."""

import io

import pandas as pd
import pytest

from nlstudy import keys
from nlstudy.keys import DATASET
from nlstudy.report import plots, render
from nlstudy.report.collect import history_frame
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


def test_display_cells_paper_style(table):
    shown = render.display_frame(table)
    # no run logged test/top5: no such column
    assert list(shown.columns) == ["depth", "model", "top-1", "top-5", "test top-1", "Δ top-1", "p",
                                   "95% CI", "params", "FLOPs", "n", "paper"]
    first, crashed, dot = (shown.iloc[i].to_dict() for i in range(3))
    assert first == {"depth": "18", "model": "C2D baseline", "top-1": "51.0 ± 1.0", "top-5": "71.0 ± 1.0",
                     "test top-1": "50.0 ± 1.0", "Δ top-1": "—", "p": "—", "95% CI": "[48.5, 53.5]",
                     "params": "×1.00", "FLOPs": "×1.00", "n": "3", "paper": "71.8 / 89.7 (R50)"}
    assert crashed["top-1"] == "failed" and crashed["n"] == "0 (1 failed)" and crashed["Δ top-1"] == ""
    assert crashed["p"] == ""  # nothing to compare
    # 60, 62, 64 vs 50, 51, 52: Welch p = 0.0037, significant
    assert dot["Δ top-1"] == "+11.0*" and dot["p"] == "0.004"
    assert dot["params"] == "×1.10" and dot["FLOPs"] == "×1.20"
    assert shown.iloc[4]["paper"] == "72.9 / 90.3"  # ResNet-50: the paper's own depth, no mark
    assert (shown.iloc[4]["Δ top-1"], shown.iloc[4]["p"]) == ("+2.0", "n<2")  # one seed a side: no test


def test_markdown(table):
    text = render.to_markdown(table)
    lines = text.splitlines()
    assert lines[0] == "### Table 2a: pairwise function (nonlocal_blocks=1-block)"  # the runs' setting, not the paper's
    header = [c.strip() for c in lines[2].strip("|").split("|")]
    assert header[:3] == ["depth", "model", "top-1"]
    assert lines[3].startswith("|:---|:---|---:")
    assert "| 18 | NL C2D 1-block gaussian | failed | failed |" in text
    table_lines = [line for line in lines if line.startswith("|")]
    assert len(table_lines) == 2 + len(table) and all(line.count("|") == 13 for line in table_lines)
    assert any(line.startswith("- paper: Wang et al.") for line in lines)
    assert "| +11.0* | 0.004 |" in text
    assert ("- p: Welch's t-test of top-1 over seeds against the group's baseline, two-sided, not corrected "
            "for multiple comparisons; * p < 0.05; n<2: fewer than two seeds on a side.") in lines


def test_latex_booktabs(table):
    tex = render.to_latex(table)
    assert "\\begin{tabular}{llrrrrrrrrrr}" in tex
    body = tex[tex.index("\\toprule"):tex.index("\\bottomrule")]
    assert body.count("\\midrule") == 2  # under the header, and between the depth-18 and depth-50 groups
    assert "NL C2D 1-block dot\\_product & 62.0 $\\pm$ 2.0" in tex
    assert "95\\% CI" in tex and "$\\Delta$ top-1" in tex and "$\\times$1.10" in tex
    rows = [line for line in body.splitlines() if line.endswith("\\\\")]
    assert all(line.count(" & ") == 11 for line in rows)
    assert " & +11.0* & 0.004 & " in tex and " & +2.0 & n$<$2 & " in tex
    assert "* p $<$ 0.05" in tex and "<" not in tex.replace("$<$", "")
    assert tex.rstrip().endswith("\\end{tabular}")


def test_csv_keeps_the_numbers(table):
    back = pd.read_csv(io.StringIO(render.to_csv(table)))
    assert len(back) == len(table)
    assert back["top1"].iloc[2] == pytest.approx(62.0) and back["n"].tolist() == table["n"].tolist()
    assert back[PW].isna().iloc[0]  # the baseline's pairwise function is not applicable: blank
    assert back["paper_top1"].iloc[0] == 71.8
    # the raw test: p_top1 (blank for the baseline and without two seeds a side) and sig
    assert back["p_top1"].iloc[2] == pytest.approx(0.0036599555836826546)
    assert back["p_top1"].isna().tolist() == [True, True, False, True, True]
    assert back["sig"].tolist() == [False, False, True, False, False]


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
    assert labels == ["C2D baseline", "NL C2D 1-block dot_product"]  # the crashed variant has no curve
    assert plots.save(fig, tmp_path / "curves")[1].exists()


def test_figures_without_data_are_skipped():
    empty = build_table(pd.DataFrame.from_records([run("g0", seed=0, top1=None, state="failed")]), "2a")
    assert plots.plot_accuracy_vs_flops(empty) is None and plots.plot_bars(empty) is None
    assert render.to_markdown(empty).count("failed") >= 2


def test_bars_mark_significant_rows_like_the_table(table):
    fig = plots.plot_bars(table)
    marks = [t for ax in fig.axes for t in ax.texts if t.get_text() == plots.SIG_MARK]
    assert len(marks) == int(table["sig"].sum()) == 1
    dot = table[table["sig"]].iloc[0]
    ax = fig.axes[0]
    assert marks[0].axes is ax
    # above the dot_product bar (the third of the depth-18 panel), over its error bar
    assert marks[0].xy == pytest.approx((2.0, dot["top1"] + dot["top1_std"]))
    assert "* p < 0.05" in fig.get_suptitle()
    plain = plots.plot_bars(table.assign(sig=False))
    assert not [t for ax in plain.axes for t in ax.texts if t.get_text() == plots.SIG_MARK]


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
    assert shown.loc["NL C2D 1-block gaussian", ["Δ top-1", "p"]].tolist() == ["+0.0", "1 (exact)"]
    assert shown.loc["NL C2D 1-block dot_product", ["Δ top-1", "p"]].tolist() == ["+25.0*", "0 (exact)"]
    assert shown.loc["NL C2D 1-block concatenation", ["Δ top-1", "p"]].tolist() == ["+40.0", "n<2"]
    assert "(exact): no spread over seeds on either side" in render.to_markdown(table)
    back = pd.read_csv(io.StringIO(render.to_csv(table)))
    assert back["p_top1"].tolist()[1:3] == [1.0, 0.0] and back["p_exact"].tolist() == [False, True, True, False]


def test_accuracy_against_a_group_key_draws_one_line_per_row_in_table_order():
    runs = pd.DataFrame.from_records([
        run(f"{nb}{d}{s}", seed=s, top1=top1 + d + s, **{NB: nb, keys.DISTANCE: d}, table="mine")
        for nb, top1 in (("none", 50.0), ("1-block", 70.0)) for d in (12, 4) for s in range(2)
    ])
    table = build_table(runs, "mine")
    fig = plots.plot_against(table, keys.DISTANCE, "distance")
    bars = fig.axes[0].containers  # one error-bar container per row: its label, its data line
    assert [c.get_label() for c in bars] == list(dict.fromkeys(table["label"]))
    base = bars[0].lines[0]
    assert base.get_xdata().tolist() == [4, 12] and base.get_ydata().tolist() == [54.5, 62.5]
    assert plots.plot_against(table.assign(top1=float("nan")), keys.DISTANCE, "distance") is None
