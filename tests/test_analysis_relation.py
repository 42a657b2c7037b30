"""Does ERF size predict accuracy across runs: Spearman's rho, its interval and its permutation p-value, checked
against scipy and against simulation (coverage of the interval, the false-positive rate under independence)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from nlstudy.analysis.relation import MIN_RUNS, rank_correlation


def test_rho_is_spearmans_and_the_interval_holds_it():
    x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    y = [2.0, 1.0, 4.0, 3.0, 6.0, 5.0, 8.0, 7.0]
    result = rank_correlation(x, y)
    assert result.rho == pytest.approx(stats.spearmanr(x, y).statistic)
    assert result.low < result.rho < result.high <= 1 and result.n == 8 and result.confidence == 0.95
    # Fisher's z with Bonett and Wright's standard error, by hand
    se = math.sqrt((1 + result.rho**2 / 2) / (8 - 3))
    assert result.low == pytest.approx(math.tanh(math.atanh(result.rho) - 1.959964 * se), abs=1e-6)
    # exact permutation test (8! orderings): a strong monotone relation is rare under the null
    assert result.p < 0.01
    assert rank_correlation(x, y[::-1]).rho == pytest.approx(-result.rho)
    # a perfect rank agreement of 5 runs: rho 1, and p = 2 / 5! (the orderings as extreme, either sign)
    perfect = rank_correlation([1, 2, 3, 4, 5], [10, 20, 30, 40, 55])
    assert perfect.rho == pytest.approx(1.0) and perfect.p == pytest.approx(2 / 120)


def test_the_permutation_p_agrees_with_scipys_permutation_test():
    rng = np.random.default_rng(3)
    for n in (6, 15):  # enumerated, sampled
        x = rng.standard_normal(n)
        y = 0.4 * x + rng.standard_normal(n)
        ours = rank_correlation(x, y, resamples=20000).p
        reference = stats.permutation_test((y,), lambda v: stats.spearmanr(x, v).statistic, n_resamples=2000,
                                           permutation_type="pairings", rng=np.random.default_rng(0)).pvalue
        assert ours == pytest.approx(reference, abs=0.035), n  # the reference samples 2,000 orderings for n = 15


def test_nan_pairs_are_dropped_and_bad_input_is_one_line():
    result = rank_correlation([1, 2, np.nan, 4, 5, 6, 7], [1, 3, 2, np.nan, 5, 4, 7])
    assert result.n == 5
    with pytest.raises(ValueError, match=f"at least {MIN_RUNS} runs"):
        rank_correlation([1, 2, 3, 4], [4, 3, 2, 1])
    with pytest.raises(ValueError, match="same in every run"):
        rank_correlation([1, 1, 1, 1, 1, 1], [1, 2, 3, 4, 5, 6])
    with pytest.raises(ValueError, match="same length"):
        rank_correlation([1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6])
    with pytest.raises(ValueError, match="confidence"):
        rank_correlation([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], confidence=1.0)


def test_the_interval_covers_the_true_rank_correlation_about_95_percent_of_the_time():
    """Bivariate normal with Pearson r = 0.6: the population Spearman rho is (6 / pi) asin(r / 2)."""
    rng = np.random.default_rng(0)
    r, n, studies = 0.6, 30, 400
    truth = 6 / math.pi * math.asin(r / 2)
    covered = 0
    for _ in range(studies):
        x, e = rng.standard_normal(n), rng.standard_normal(n)
        y = r * x + math.sqrt(1 - r**2) * e
        result = rank_correlation(x, y, resamples=99)
        covered += result.low <= truth <= result.high
    assert 0.92 <= covered / studies <= 0.985  # 95 % within Monte Carlo error (sd 1.1 points)


def test_independent_measures_are_called_related_at_most_alpha_of_the_time():
    rng = np.random.default_rng(1)
    studies, n = 300, 12
    rejected = sum(rank_correlation(rng.standard_normal(n), rng.standard_normal(n), resamples=199,
                                    seed=i).p < 0.05 for i in range(studies))
    assert rejected / studies <= 0.05 + 2.5 * math.sqrt(0.05 * 0.95 / studies)  # alpha within Monte Carlo error
    # and a real relation at that size is usually found
    found = 0
    for i in range(100):
        x = rng.standard_normal(n)
        found += rank_correlation(x, x + 0.5 * rng.standard_normal(n), resamples=199, seed=i).p < 0.05
    assert found >= 80
