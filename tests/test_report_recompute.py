"""Every number of a comparison, recomputed by a reader from the files the report writes (``<table>.csv`` and
``<table>_runs.csv``) with scipy alone: the Welch interval and test, TOST, Holm over the report's distinct
comparisons, the minimal detectable effect, the verdict."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize
from scipy import stats as sps

from nlstudy import keys
from nlstudy.report import cli
from nlstudy.report.schema import Collection, history_frame

NB, PW, TASK = keys.NONLOCAL_BLOCKS, keys.PAIRWISE, keys.TASK


def run(run_id, table, seed, test, **config):
    row = {"run_id": run_id, "name": None, "state": "finished", "sweep_id": f"sw-{table}", "table": table,
           "project": "p", "created_at": pd.Timestamp("2026-12-01", tz="UTC"), "source": "offline", "path": run_id,
           "note": None, keys.DATASET: "synthetic", keys.DEPTH: 18, keys.ARCH: "c2d", NB: "none",
           PW: "embedded_gaussian", TASK: "far", keys.SEED: seed, keys.PARAMS: 1000, keys.FLOPS: 2e6,
           keys.NUM_CLASSES: 2, keys.TEST_TOP1: test, keys.VAL_TOP1_BEST: min(100.0, test + 2.0),
           keys.TEST_TOP5: 100.0, keys.VAL_TOP5_BEST: 100.0}
    row.update(config)
    return row


def study() -> pd.DataFrame:
    """A small demo: the baseline and the 1-block model shared by 2a, 2c and the locality control (the same runs
    filed under each table, as reused runs are), a near task, rows better, equivalent and undecided."""
    rng = np.random.default_rng(5)
    rows = []
    shared = {"base": ({}, 50.0, 2.0), "one": ({NB: "1-block"}, 80.0, 8.0)}
    for name, (config, mean, sd) in shared.items():
        values = rng.normal(mean, sd, 4)
        for table in ("2a", "2c", "locality"):
            rows += [run(f"{name}{s}", table, s, float(min(100.0, v)), **config) for s, v in enumerate(values)]
    rows += [run(f"gau{s}", "2a", s, float(v), **{NB: "1-block", PW: "gaussian"})
             for s, v in enumerate(rng.normal(90.0, 4.0, 3))]
    rows += [run(f"dot{s}", "2a", s, float(v), **{NB: "1-block", PW: "dot_product"})
             for s, v in enumerate(rng.normal(53.0, 9.0, 3))]
    rows += [run(f"five{s}", "2c", s, float(v), **{NB: "5-block"}) for s, v in enumerate(rng.normal(92.0, 3.0, 5))]
    for name, config, mean in (("nb", {}, 99.5), ("nn", {NB: "1-block"}, 99.4)):
        rows += [run(f"{name}{s}", "locality", s, float(v), **config, **{TASK: "near"})
                 for s, v in enumerate(rng.normal(mean, 0.3, 6))]
    return pd.DataFrame.from_records(rows)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    runs = study()
    history = history_frame([(r, [{"_step": 0, "epoch": 0, keys.VAL_TOP1: 50.0}]) for r in runs["run_id"].unique()])
    cli.write_report(Collection(runs=runs, history=history), out, source="test")
    return out


def holm(p):
    """Holm's step-down adjustment, written out."""
    order = np.argsort(p, kind="stable")
    adjusted, running = np.empty(len(p)), 0.0
    for rank, i in enumerate(order):
        running = max(running, (len(p) - rank) * p[i])
        adjusted[i] = min(1.0, running)
    return adjusted


def mde(n1, n2, sd, alpha=0.05, target=0.8):
    df, shift = n1 + n2 - 2, math.sqrt(1 / n1 + 1 / n2)
    crit = sps.t.ppf(1 - alpha / 2, df)

    def power(d):
        return sps.nct.sf(crit, df, d / (sd * shift)) + sps.nct.cdf(-crit, df, d / (sd * shift))

    high = sd
    while power(high) < target:
        high *= 2
    return optimize.brentq(lambda d: power(d) - target, 1e-9, high)


def test_every_comparison_recomputes_from_the_per_run_values_with_scipy_alone(written):
    tables = {t: pd.read_csv(written / f"{t}.csv") for t in ("2a", "2c", "locality")}
    seeds = {t: pd.read_csv(written / f"{t}_runs.csv") for t in tables}
    recomputed = {}  # comparison -> (delta, low, high, p, p_tost, mde)
    for table_id, table in tables.items():
        lines = seeds[table_id][seeds[table_id]["counted"]]
        for row in table.to_dict("records"):
            if row["baseline"] or not isinstance(row["comparison"], str):
                continue
            metric, margin = row["metric"], row["margin"]
            mine = lines[(lines["group"] == row["group"]) & (lines["label"] == row["label"])][metric].to_numpy()
            base_label = table[(table["group"] == row["group"]) & table["baseline"]]["label"].iloc[0]
            base = lines[(lines["group"] == row["group"]) & (lines["label"] == base_label)][metric].to_numpy()
            assert len(mine) == row["n"]
            welch = sps.ttest_ind(mine, base, equal_var=False)
            ci = welch.confidence_interval(0.95)
            tost = max(sps.ttest_ind(mine + margin, base, equal_var=False, alternative="greater").pvalue,
                       sps.ttest_ind(mine - margin, base, equal_var=False, alternative="less").pvalue)
            pooled = math.sqrt(((len(mine) - 1) * mine.var(ddof=1) + (len(base) - 1) * base.var(ddof=1))
                               / (len(mine) + len(base) - 2))
            numbers = (mine.mean() - base.mean(), ci.low, ci.high, welch.pvalue, tost, mde(len(mine), len(base), pooled))
            assert [row[c] for c in ("delta", "delta_ci_low", "delta_ci_high", "p", "p_tost", "mde")] == \
                pytest.approx(numbers, rel=1e-6), (table_id, row["label"])
            recomputed.setdefault(row["comparison"], numbers)
            assert recomputed[row["comparison"]] == pytest.approx(numbers)  # a shared comparison: the same numbers
    # the family: every distinct comparison of the report, once (1-block vs baseline is in 2a, 2c and locality)
    ids = sorted(recomputed)
    assert len(ids) == 5 and tables["2a"]["comparison"].iloc[-1] != tables["2a"]["comparison"].iloc[1]
    assert set(tables["2c"]["comparison"].dropna()) & set(tables["2a"]["comparison"].dropna())
    p_holm = dict(zip(ids, holm(np.array([recomputed[c][3] for c in ids]))))
    p_equiv = dict(zip(ids, holm(np.array([recomputed[c][4] for c in ids]))))
    verdicts = set()
    for table in tables.values():
        for row in table[~table["baseline"]].to_dict("records"):
            c = row["comparison"]
            assert (row["p_holm"], row["p_equiv"]) == pytest.approx((p_holm[c], p_equiv[c]), rel=1e-9)
            delta = recomputed[c][0]
            expected = ("better" if delta > 0 else "worse") if p_holm[c] < 0.05 else \
                "equivalent" if p_equiv[c] < 0.05 else "undecided"
            assert row["verdict"] == expected
            verdicts.add(expected)
    assert verdicts == {"better", "equivalent", "undecided"}  # the study exercises each


def test_the_footnotes_state_alpha_the_margin_and_the_family(written):
    text = (written / "2a.md").read_text()
    assert "- α = 0.05; margin = ±2 points of `test/top1`; family: 5 comparison(s) of this report." in text
    assert ("Holm-adjusted over the 5 distinct comparisons of this report (3 table(s); a comparison that several "
            "tables show on the same runs counts once)") in text
    # the comparison's name says where it first appears
    table = pd.read_csv(written / "2c.csv")
    assert table.loc[table["label"] == "NL C2D 1-block", "comparison"].iloc[0] == "2a: NL C2D 1-block embedded_gaussian"


def test_family_table_corrects_each_table_on_its_own(tmp_path):
    runs = study()
    history = history_frame([])
    report = cli.write_report(Collection(runs=runs, history=history), tmp_path, scope="table")
    two_a = report.tables["2a"]
    assert two_a.attrs["family"] == {"scope": "table", "size": 3, "tables": 1}
    assert "the 3 comparison(s) of this table on its own" in report.markdown["2a"]
    one = two_a[two_a["label"] == "NL C2D 1-block embedded_gaussian"].iloc[0]
    others = two_a[~two_a["baseline"]]["p"].to_numpy()
    assert one["p_holm"] == pytest.approx(holm(others)[list(others).index(one["p"])])
