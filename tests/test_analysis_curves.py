"""The learning-curve fit and the notebooks' own families of comparisons, on hand-built cases."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from nlstudy.analysis.claims import measured_family, sentence
from nlstudy.analysis.curves import curve_ratio, fit_learning_curve, logistic

SIZES = np.repeat([128, 256, 512, 1024, 2048, 4096], 3)


def test_a_known_curve_is_recovered_exactly_without_noise():
    values = logistic(SIZES, 98.0, math.log2(600), 0.8)
    fit = fit_learning_curve(SIZES, values, resamples=50)
    assert fit.identified
    assert fit.top == pytest.approx(98.0, abs=1e-3) and fit.n50 == pytest.approx(600, rel=1e-3)
    assert fit.scale == pytest.approx(0.8, rel=1e-3)
    assert fit.n50_ci[0] == pytest.approx(600, rel=1e-3) and fit.n50_ci[1] == pytest.approx(600, rel=1e-3)
    assert fit.curve == pytest.approx(logistic(fit.grid, 98.0, math.log2(600), 0.8), abs=1e-3)
    assert "half-way from chance at 600 [600, 600] clips" in fit.text()


def test_the_interval_covers_the_true_curve_in_most_noisy_samples_and_is_seeded():
    truth = dict(top=95.0, log2_n50=math.log2(500), scale=1.0)
    covered = 0
    for s in range(20):
        rng = np.random.default_rng(s)
        values = logistic(SIZES, **truth) + rng.normal(0, 2.0, len(SIZES))
        fit = fit_learning_curve(SIZES, values, resamples=200, seed=s)
        covered += fit.n50_ci[0] <= 500 <= fit.n50_ci[1]
        if s == 0:
            again = fit_learning_curve(SIZES, values, resamples=200, seed=s)
            assert again.n50_ci == fit.n50_ci and again.top_ci == fit.top_ci
            assert (fit.band[0] <= fit.curve + 1e-9).all() and (fit.curve <= fit.band[1] + 1e-9).all()
    assert covered >= 15  # a 95 % interval of 3 seeds a size: most of 20 samples (the bootstrap runs a bit narrow)


def test_a_flat_curve_has_no_n50_and_says_why():
    fit = fit_learning_curve(SIZES, np.full(len(SIZES), 100.0))
    assert not fit.identified and math.isnan(fit.n50) and "at its plateau" in fit.reason
    assert "no curve fitted" in fit.text()
    chance = fit_learning_curve(SIZES, np.full(len(SIZES), 50.0) + np.tile([0.0, 0.5, -0.5], 6))
    assert not chance.identified and "at chance" in chance.reason
    with pytest.raises(ValueError, match="at least 4 distinct"):
        fit_learning_curve([128, 256, 512], [60, 70, 80])


def test_curve_ratio_of_a_curve_shifted_by_one_doubling_is_two():
    a = fit_learning_curve(SIZES, logistic(SIZES, 98.0, math.log2(300), 0.8), resamples=30)
    b = fit_learning_curve(SIZES, logistic(SIZES, 98.0, math.log2(600), 0.8), resamples=30)
    ratio, low, high = curve_ratio(a, b)
    assert ratio == pytest.approx(2.0, rel=1e-3) and low == pytest.approx(2.0, rel=1e-3)
    flat = fit_learning_curve(SIZES, np.full(len(SIZES), 100.0))
    assert all(math.isnan(v) for v in curve_ratio(a, flat))


def test_measured_family_is_welch_then_holm_then_tost():
    rng = np.random.default_rng(0)
    far = ("far", rng.normal(0.5, 0.05, 3), rng.normal(0.1, 0.05, 3))
    same = ("same", np.array([0.30, 0.31, 0.29]), np.array([0.30, 0.30, 0.31]))
    one = ("one seed", np.array([0.4]), np.array([0.1, 0.2]))
    family = measured_family([far, same, one], margin=0.05)
    assert family.attrs["family"] == {"scope": "table", "size": 2}
    p = [sps.ttest_ind(a, b, equal_var=False).pvalue for _, a, b in (far, same)]
    holm = sorted(p)[0] * 2, max(sorted(p)[0] * 2, sorted(p)[1])
    order = np.argsort(p)
    assert family["p"].iloc[:2].tolist() == pytest.approx(p)
    assert family["p_holm"].iloc[order[0]] == pytest.approx(min(1, holm[0]))
    rows = family.set_index("comparison")
    assert rows.loc["far", "verdict"] == "better" and rows.loc["same", "verdict"] == "equivalent"
    assert rows.loc["one seed", "verdict"] == "undecided" and math.isnan(rows.loc["one seed", "p_holm"])
    assert sentence(family, "far").startswith("far: +0.")
    row = family.set_index("comparison").loc["far"]
    assert sentence(family, "far", digits=3).startswith(
        f"far: {row['delta']:+.3f} [{row['delta_ci_low']:+.3f}, {row['delta_ci_high']:+.3f}], better")
    assert sentence(family, "one seed", digits=2).startswith("one seed: +0.25, undecided: fewer than two")
    assert "better after Holm over 2 comparisons of this table" in sentence(family, "far")
    with pytest.raises(ValueError, match="no comparison 'nope'"):
        sentence(family, "nope")
