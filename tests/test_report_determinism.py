"""Same runs, same report: figures and files depend on the runs' values only, never on the order the
runs finished in (the frame's row order), their ids or their creation times."""

import io

import matplotlib.colors as mcolors
import pandas as pd
import pytest

from nlstudy import keys
from nlstudy.keys import DATASET, TASK
from nlstudy.report import cli, plots
from nlstudy.report.schema import Collection, history_frame
from nlstudy.report.tables import assign_rows, build_table

NB, PW = keys.NONLOCAL_BLOCKS, keys.PAIRWISE


def run(run_id, table, *, seed, top1, minute, **config):
    row = {"run_id": run_id, "name": None, "state": "finished", "sweep_id": "sw", "table": table, "project": "p",
           "created_at": pd.Timestamp("2026-11-01", tz="UTC") + pd.Timedelta(minutes=minute), "source": "offline",
           "path": run_id, "note": None, DATASET: "synthetic", keys.DEPTH: 18, keys.ARCH: "c2d", NB: "none",
           PW: "embedded_gaussian", keys.SEED: seed, keys.PARAMS: 1000, keys.FLOPS: 2_000_000,
           keys.VAL_TOP1_BEST: top1, keys.VAL_TOP5_BEST: 100.0, keys.TEST_TOP1: top1 - 0.3}
    row.update(config)
    return row


def study(ids):
    """Runs of two tables (2a, and a distance sweep) in the order given by `ids` (one id per run, in
    a fixed order of the runs' contents), with the time each run finished taken from its id's place."""
    nl = {NB: "1-block", keys.PARAMS: 1100, keys.FLOPS: 2_400_000}
    contents = [
        *(("2a", s, 50.1 + 0.7 * s, {}) for s in range(3)),
        *(("2a", s, 60.3 + 1.9 * s, {**nl, PW: "dot_product"}) for s in range(3)),
        *(("2a", s, 55.7 + 0.1 * s, {**nl, PW: "gaussian"}) for s in range(2)),
        *(("receptive_field", s, 40.0 + d + 0.3 * s + (d / 3 if nb == "1-block" else 0.0),
           {**(nl if nb == "1-block" else {}), keys.DISTANCE: float(d), TASK: "within"})
          for d in (8, 2, 4) for nb in ("none", "1-block") for s in range(3)),
    ]
    assert len(ids) == len(contents)
    rows = [run(run_id, table, seed=s, top1=top1, minute=i, **config)
            for i, (run_id, (table, s, top1, config)) in enumerate(zip(ids, contents))]
    histories = [(r["run_id"], [{"_step": e, "epoch": e, keys.VAL_TOP1: r[keys.VAL_TOP1_BEST] * (e + 1) / 3.0 + 0.1}
                                for e in range(3)]) for r in rows]
    return pd.DataFrame.from_records(rows), history_frame(histories)


N_RUNS = 8 + 18


@pytest.fixture(scope="module")
def one_way():
    return study([f"a{i:02d}" for i in range(N_RUNS)])


@pytest.fixture(scope="module")
def other_way():
    """The same runs with other ids (sorting the other way round), finishing in the reverse order,
    listed in a shuffled order."""
    runs, history = study([f"z{N_RUNS - i:02d}" for i in range(N_RUNS)])
    runs = runs.assign(created_at=runs["created_at"].iloc[::-1].to_numpy())
    runs = runs.sample(frac=1.0, random_state=7).reset_index(drop=True)
    history = history.sample(frac=1.0, random_state=3).reset_index(drop=True)
    return runs, history


def lines(fig):
    return [[(line.get_label(), mcolors.to_hex(line.get_color()), line.get_linestyle(), tuple(line.get_ydata()))
             for line in ax.get_lines()] for ax in fig.axes]


@pytest.mark.parametrize("table_id", ["2a", "receptive_field"])
def test_curve_colours_labels_and_pixels_do_not_depend_on_run_order_or_ids(tmp_path, one_way, other_way, table_id):
    figs = []
    for name, (runs, history) in (("one", one_way), ("other", other_way)):
        assigned = assign_rows(runs, table_id)
        fig = plots.plot_curves(assigned, history, title=table_id)
        figs.append((fig, plots.save(fig, tmp_path / name / "curves")))
    (first, first_paths), (second, second_paths) = figs
    assert lines(first) == lines(second)
    for ax in first.axes:  # the baseline first (after its seeds' thin lines), dashed, in the first colour
        labelled = [line for line in lines(first)[first.axes.index(ax)] if not line[0].startswith("_")]
        label, colour, style, _ = labelled[0]
        assert label == "C2D baseline (n=3)" and colour == mcolors.to_hex("C0") and style == "--"
    if table_id == "receptive_field":
        assert [ax.get_title() for ax in first.axes] == ["distance=2", "distance=4", "distance=8"]
    for a, b in zip(first_paths, second_paths):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_bar_and_flops_figures_do_not_depend_on_run_order_or_ids(tmp_path, one_way, other_way):
    for table_id in ("2a", "receptive_field"):
        tables_ = [build_table(runs, table_id) for runs, _ in (one_way, other_way)]
        pd.testing.assert_frame_equal(*tables_)
        for kind, plot in (("bars", plots.plot_bars), ("flops", plots.plot_accuracy_vs_flops)):
            paths = [plots.save(plot(t), tmp_path / name / f"{table_id}_{kind}") for name, t in zip("ab", tables_)]
            for a, b in zip(*paths):
                assert a.read_bytes() == b.read_bytes(), a.name


def test_write_report_twice_on_shuffled_runs_gives_the_same_bytes(tmp_path, one_way, other_way):
    reports = []
    for name, (runs, history) in (("one", one_way), ("other", other_way)):
        report = cli.write_report(Collection(runs=runs, history=history), tmp_path / name, source="runs/x")
        reports.append({p.relative_to(tmp_path / name): p.read_bytes() for p in report.files})
    first, second = reports
    assert sorted(map(str, first)) == sorted(map(str, second))
    suffixes = {p.suffix for p in first}
    assert suffixes == {".md", ".tex", ".csv", ".png", ".pdf"}
    assert len([p for p in first if p.suffix == ".png"]) == 2 * 3
    different = [str(p) for p in first if first[p] != second[p] and not p.name.endswith("_runs.csv")]
    assert not different
    # the per-run lines name the runs by id (they differ here by design), in an order that depends on values only
    for path in (p for p in first if p.name.endswith("_runs.csv")):
        one, other = (pd.read_csv(io.BytesIO(r[path])) for r in (first, second))
        pd.testing.assert_frame_equal(one.drop(columns="run_id"), other.drop(columns="run_id"))


def test_readme_run_counts_and_failed_runs_do_not_depend_on_the_order_of_the_runs():
    states = pd.DataFrame({"state": ["crashed", "finished", "failed", "finished", "killed", "failed", "crashed"],
                           "table": "2a", "run_id": [f"run{i}" for i in range(7)],
                           "note": ["killed early", None, "NonFiniteLossError: train/loss became nan at step 3 "
                                    "(epoch 0)", None, None, None, None]})
    orders = ([0, 1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1, 0])
    texts = {cli._readme([], states.iloc[order], cli.PROG, "", {}) for order in orders}
    assert len(texts) == 1
    text = texts.pop()
    assert "From 7 runs (2 finished, 2 failed, 2 crashed, 1 killed)." in text
    assert text.split("## Failed runs")[1].strip().splitlines()[-4:] == [
        "| run0 | 2a | crashed | killed early |",
        "| run2 | 2a | failed | NonFiniteLossError: train/loss became nan at step 3 (epoch 0) |",
        "| run5 | 2a | failed | no reason recorded |",
        "| run6 | 2a | crashed | no reason recorded |",
    ]

