"""The statistics of the report against scipy and statsmodels, and the stopping rule of seeds-until-decided
against simulation: error rates under the null, power under an effect."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from nlstudy.report import stats

RNG_SEEDS = (0, 1, 2, 3)


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_compare_is_welchs_test_its_interval_and_tost(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(60, 4, 3 + seed), rng.normal(55, 9, 5)
    c = stats.compare(a, b, margin=2.0)
    ref = sps.ttest_ind(a, b, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert c.delta == pytest.approx(a.mean() - b.mean())
    assert (c.p, c.ci_low, c.ci_high) == pytest.approx((ref.pvalue, ci.low, ci.high), rel=1e-9)
    # TOST: the larger p of the two one-sided Welch tests against -margin and +margin
    lower = sps.ttest_ind(a + 2.0, b, equal_var=False, alternative="greater").pvalue
    upper = sps.ttest_ind(a - 2.0, b, equal_var=False, alternative="less").pvalue
    assert c.p_tost == pytest.approx(max(lower, upper), rel=1e-9)
    assert not c.exact


def test_tost_agrees_with_statsmodels():
    from statsmodels.stats.weightstats import ttost_ind

    a, b = np.array([50.1, 49.7, 50.4, 50.0]), np.array([49.9, 50.2, 49.6])
    p, _, _ = ttost_ind(a, b, -1.5, 1.5, usevar="unequal")
    assert stats.compare(a, b, margin=1.5).p_tost == pytest.approx(p, rel=1e-9)


def test_the_mde_is_what_the_power_calculation_says():
    from statsmodels.stats.power import TTestIndPower

    # the example: 3 seeds against 3 at a spread of 8 points: about 24 points
    d = TTestIndPower().solve_power(effect_size=None, nobs1=3, alpha=0.05, power=0.8, ratio=1.0)
    assert stats.mde(3, 3, 8.0) == pytest.approx(8.0 * d, rel=1e-6)
    assert 24 < stats.mde(3, 3, 8.0) < 25
    # unequal n, against statsmodels' ratio, and the power at the mde is 80 %
    d = TTestIndPower().solve_power(effect_size=None, nobs1=10, alpha=0.05, power=0.8, ratio=0.6)
    assert stats.mde(10, 6, 2.5) == pytest.approx(2.5 * d, rel=1e-6)
    assert stats.power(stats.mde(10, 6, 2.5), 10, 6, 2.5) == pytest.approx(0.8, abs=1e-8)
    assert math.isnan(stats.mde(1, 5, 3.0)) and stats.mde(3, 3, 0.0) == 0.0


def test_holm_against_statsmodels_and_by_hand():
    from statsmodels.stats.multitest import multipletests

    p = [0.01, 0.04, 0.03, 0.2, 0.005]
    assert stats.holm(p) == pytest.approx(multipletests(p, method="holm")[1])
    assert stats.holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    # an untested comparison keeps NaN and is not in the family's size
    out = stats.holm([0.01, math.nan, 0.04])
    assert math.isnan(out[1]) and out[[0, 2]].tolist() == pytest.approx([0.02, 0.04])
    assert stats.holm([]).tolist() == []


def test_verdicts():
    assert stats.verdict(+3.0, 0.01, 0.9) == "better" and stats.verdict(-3.0, 0.01, 0.9) == "worse"
    assert stats.verdict(0.3, 0.6, 0.01) == "equivalent" and stats.verdict(0.3, 0.6, 0.2) == "undecided"
    assert stats.verdict(1.0, math.nan, math.nan) == "undecided"


def test_constant_sides_are_compared_exactly():
    same = stats.compare([3.0, 3.0], [3.0, 3.0, 3.0], margin=2.0)
    assert (same.p, same.p_tost, same.exact, same.ci_low, same.ci_high) == (1.0, 0.0, True, 0.0, 0.0)
    apart = stats.compare([5.5, 5.5], [3.0, 3.0], margin=2.0)
    assert (apart.p, apart.p_tost, apart.delta) == (0.0, 1.0, 2.5)
    one = stats.compare([1.0], [1.0, 2.0], margin=2.0)
    assert one.delta == -0.5 and math.isnan(one.p) and math.isnan(one.ci_low)


def test_the_planned_looks_and_their_shares_of_alpha():
    assert stats.look_schedule(3) == (3, 6, 10)
    assert stats.look_schedule(2, 10) == (2, 4, 8, 10) and stats.look_schedule(3, 3) == (3,)
    for looks in ((3, 6, 10), (2, 4, 8, 10), (5, 10), (3,)):
        shares = stats.look_shares(looks)
        assert shares.sum() == pytest.approx(1.0)  # every state together keeps alpha
        assert (np.diag(shares)[1:] > np.diag(shares)[:-1]).all()  # most at the last look, where the power is
    assert stats.alpha_share(3, 3, None) == 1.0 and stats.alpha_share(3, 3, (3,)) == 1.0  # a fixed design
    assert stats.alpha_share(10, 10, (3, 6, 10)) == pytest.approx(0.9 * 9 / 13)
    assert stats.alpha_share(10, 6, (3, 6, 10)) == pytest.approx(0.1 / 6)  # the baseline ahead of its row
    assert stats.look_index(2, (3, 6, 10)) == 0 and stats.look_index(7, (3, 6, 10)) == 1
    assert stats.look_index(12, (3, 6, 10)) == 2


def test_a_round_adds_seeds_to_the_undecided_rows_and_their_baselines():
    rows = [("a", "base", 3, "undecided"), ("b", "base", 3, "better"), ("c", "base2", 6, "undecided"),
            ("d", "base2", 10, "undecided"), ("e", "base2", 3, "equivalent")]
    assert stats.plan_round(rows, (3, 6, 10)) == {"a": 6, "base": 6, "c": 10, "base2": 10}
    assert stats.plan_round([("d", "base2", 10, "undecided")], (3, 6, 10)) == {}  # at the most seeds: stop


# --------------------------------------------------------------------------------------------------
# the stopping rule, simulated through the same decision code the report and the sweep use
# --------------------------------------------------------------------------------------------------


def simulate(rng, effects, sd, looks=(3, 6, 10), margin=stats.MARGIN, share=stats.alpha_share):
    """One study of a baseline and len(effects) rows (true differences `effects`), seeds added until decided
    as `nlstudy sweep --until-decided` does: compare every row with the baseline, one family (Holm), the
    shares of the looks, plan_round; more seeds where it says. Returns the final verdicts."""
    draw = {"base": lambda k: rng.normal(50.0, sd, k)}
    for i, e in enumerate(effects):
        draw[i] = lambda k, e=e: rng.normal(50.0 + e, sd, k)
    values = {arm: list(f(looks[0])) for arm, f in draw.items()}
    while True:
        rows = [stats.compare(values[i], values["base"], margin=margin, with_mde=False) for i in range(len(effects))]
        shares = [share(len(values["base"]), len(values[i]), looks) for i in range(len(effects))]
        _, _, verdicts = stats.family_verdicts([c.delta for c in rows], [c.p for c in rows], [c.p_tost for c in rows],
                                               shares)
        plan = stats.plan_round([(i, "base", len(values[i]), v) for i, v in enumerate(verdicts)], looks)
        if not plan:
            return verdicts
        for arm, n in plan.items():
            values[arm] += list(draw[arm](n - len(values[arm])))


STUDIES = 2000
MC = 3 * math.sqrt(stats.ALPHA * (1 - stats.ALPHA) / STUDIES)  # three Monte Carlo standard errors


@pytest.mark.slow
def test_two_identical_arms_end_better_or_worse_at_most_alpha_of_the_time():
    rng = np.random.default_rng(12)
    ends = [simulate(rng, [0.0], sd=8.0)[0] for _ in range(STUDIES)]
    false = sum(v in ("better", "worse") for v in ends) / STUDIES
    assert false <= stats.ALPHA + MC, false
    # what the shares pay for: the same looks, each tested at the full alpha, end better or worse too often
    naive = [simulate(rng, [0.0], sd=8.0, share=lambda *_: 1.0)[0] for _ in range(STUDIES)]
    assert sum(v in ("better", "worse") for v in naive) / STUDIES > stats.ALPHA + MC


@pytest.mark.slow
def test_a_true_ten_point_effect_at_the_demos_spread_is_found_in_most_studies():
    rng = np.random.default_rng(13)
    ends = [simulate(rng, [10.0], sd=8.0)[0] for _ in range(STUDIES)]  # 8 points: the seed spread
    assert sum(v == "better" for v in ends) / STUDIES > 0.5
    assert "worse" not in ends


@pytest.mark.slow
def test_a_family_of_null_rows_with_a_shared_baseline_keeps_the_family_wise_error():
    """Three rows as good as their shared baseline: the baseline gains seeds for each undecided row, so rows
    are also looked at with the baseline ahead (the mixed states); still at most alpha of the studies end with
    any row better or worse."""
    rng = np.random.default_rng(14)
    studies = STUDIES // 2
    any_false = sum(any(v in ("better", "worse") for v in simulate(rng, [0.0, 0.0, 0.0], sd=6.0))
                    for _ in range(studies))
    assert any_false / studies <= stats.ALPHA + 3 * math.sqrt(stats.ALPHA * (1 - stats.ALPHA) / studies)


@pytest.mark.slow
def test_equivalence_is_claimed_at_most_alpha_of_the_time_when_the_arms_differ_by_the_margin():
    rng = np.random.default_rng(15)
    ends = [simulate(rng, [stats.MARGIN], sd=1.5)[0] for _ in range(STUDIES)]
    assert sum(v == "equivalent" for v in ends) / STUDIES <= stats.ALPHA + MC
    # and arms truly the same are shown equivalent, given a spread small against the margin
    same = [simulate(rng, [0.0], sd=1.0)[0] for _ in range(STUDIES // 4)]
    assert sum(v == "equivalent" for v in same) / len(same) > 0.5
