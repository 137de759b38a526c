"""kdtheory.stats against scipy/statsmodels, textbook examples, and simulated error rates."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats as sps
from scipy.stats import binom
from statsmodels.stats.meta_analysis import combine_effects
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired

from kdtheory.stats import (
    ci_level,
    ci_level_note,
    holm,
    one_sample_t,
    paired_t,
    random_effects_meta,
    sign_flip_p,
    slope_test,
    tost,
)

# ----------------------------------------------------------------------------- t-tests


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_one_sample_t_matches_scipy(alternative):
    x = np.random.default_rng(1).normal(0.4, 1.0, size=9)
    r = one_sample_t(x, alternative=alternative, alpha=0.05, null=0.1)
    ref = sps.ttest_1samp(x, 0.1, alternative=alternative)
    assert r.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert r.df == 8 and r.n == 9
    assert r.estimate == pytest.approx(x.mean())
    assert r.se == pytest.approx(sps.sem(x))
    # CI: 1 - alpha two-sided for two-sided tests, 1 - 2*alpha for one-sided tests, so the
    # relevant bound equals scipy's one-sided 1 - alpha bound
    if alternative == "two-sided":
        lo, hi = ref.confidence_interval(0.95)
        assert (r.ci_low, r.ci_high) == pytest.approx((lo, hi))
    elif alternative == "greater":
        assert r.ci_low == pytest.approx(ref.confidence_interval(0.95).low)
        lo, hi = sps.ttest_1samp(x, 0.1).confidence_interval(0.90)
        assert (r.ci_low, r.ci_high) == pytest.approx((lo, hi))
    else:
        assert r.ci_high == pytest.approx(ref.confidence_interval(0.95).high)


def test_one_sided_ci_agrees_with_one_sided_decision():
    rng = np.random.default_rng(2)
    for _ in range(200):
        x = rng.normal(0.3, 1.0, size=6)
        r = one_sample_t(x, alternative="greater", alpha=0.05)
        assert (r.p_value < 0.05) == (r.ci_low > 0)
        r = one_sample_t(x, alternative="less", alpha=0.05)
        assert (r.p_value < 0.05) == (r.ci_high < 0)


def test_one_sample_t_drops_nan_and_small_n_is_nan():
    x = np.array([1.0, np.nan, 2.0, 4.0])
    r = one_sample_t(x)
    ref = sps.ttest_1samp([1.0, 2.0, 4.0], 0.0)
    assert r.n == 3 and r.p_value == pytest.approx(ref.pvalue)
    small = one_sample_t([np.nan, 3.0])
    assert small.n == 1
    assert all(math.isnan(v) for v in (small.estimate, small.se, small.p_value, small.ci_low))
    assert one_sample_t([]).n == 0


def test_one_sample_t_zero_variance_gets_the_exact_sign_flip_p():
    # three equal positive values: 1 of the 2**3 equally likely sign patterns is as extreme
    r = one_sample_t([0.2, 0.2, 0.2], alternative="greater")
    assert r.statistic == math.inf and r.p_value == 1 / 8 and "sign-flip" in r.method
    assert one_sample_t([0.2] * 3, alternative="less").p_value == 1.0
    assert one_sample_t([0.2] * 3, alternative="two-sided").p_value == 1 / 4
    assert one_sample_t([-0.2] * 5, alternative="less").p_value == 1 / 32
    assert one_sample_t([1.0] * 4, null=1.0).p_value != one_sample_t([1.0] * 4).p_value
    r0 = one_sample_t([0.0, 0.0, 0.0])
    assert math.isnan(r0.statistic) and math.isnan(r0.p_value)


def test_sign_flip_p_is_the_permutation_tail():
    # against brute force over every sign pattern of n equal deviations
    for n in (1, 2, 3, 6):
        means = [np.mean(s) for s in itertools.product((-1.0, 1.0), repeat=n)]
        assert sign_flip_p(n, 0.3, "greater") == np.mean([m >= 1.0 for m in means])
        assert sign_flip_p(n, 0.3, "two-sided") == min(1.0, np.mean([abs(m) >= 1 for m in means]))
    assert sign_flip_p(3, -0.3, "greater") == 1.0
    with pytest.raises(ValueError, match="nonzero deviation"):
        sign_flip_p(3, 0.0, "greater")


def _discrete_null_differences(rng, reps: int, seeds: int) -> np.ndarray:
    """Per-seed accuracy differences of two equally good models on a 20-sample test set."""
    a = rng.binomial(20, 0.9, size=(reps, seeds))
    b = rng.binomial(20, 0.9, size=(reps, seeds))
    return (a - b) / 20


def test_holm_family_keeps_alpha_on_discrete_null_data():
    """A tie of a few seeds on a small test set is common; with p = 0 for it, no multiplicity
    correction could help: 20 one-sided tests made a wrong rejection in 15% of families."""
    rng = np.random.default_rng(12)
    families, members, seeds = 1000, 20, 3
    diffs = _discrete_null_differences(rng, families * members, seeds)
    ties = np.array([d[0] > 0 and np.all(d == d[0]) for d in diffs])
    assert ties.mean() > 0.005  # about 1% of the tests: in most families of 20 for none
    p = np.array([one_sample_t(d, "greater").p_value for d in diffs])
    assert np.all(p[ties] == 1 / 8)
    family_p = p.reshape(families, members)
    wrong = sum(bool(np.nanmin(holm(row)) <= 0.05) for row in family_p if np.isfinite(row).any())
    assert wrong <= binom.ppf(0.999, families, 0.05), wrong


def test_tost_keeps_alpha_on_discrete_data_at_the_margin():
    # true mean difference exactly on the upper margin: a wrong "equivalent" at most alpha
    rng = np.random.default_rng(13)
    diffs = _discrete_null_differences(rng, 4000, 3) + 0.05
    eq = np.array([tost(d, -0.05, 0.05).equivalent for d in diffs])
    assert eq.mean() <= 0.06


def test_paired_t_matches_scipy_and_drops_incomplete_pairs():
    rng = np.random.default_rng(3)
    a = rng.normal(1.0, 1.0, 8)
    b = a - 0.3 + rng.normal(0, 0.4, 8)
    a_nan, b_nan = a.copy(), b.copy()
    a_nan[2] = np.nan
    b_nan[5] = np.nan
    r = paired_t(a_nan, b_nan, alternative="greater")
    keep = np.ones(8, bool)
    keep[[2, 5]] = False
    ref = sps.ttest_rel(a[keep], b[keep], alternative="greater")
    assert r.n == 6 and r.method == "paired t-test"
    assert r.statistic == pytest.approx(ref.statistic)
    assert r.p_value == pytest.approx(ref.pvalue)
    assert r.estimate == pytest.approx((a[keep] - b[keep]).mean())
    with pytest.raises(ValueError):
        paired_t([1, 2, 3], [1, 2])


def test_bad_alternative_and_alpha():
    with pytest.raises(ValueError, match="alternative"):
        one_sample_t([1, 2, 3], alternative="bigger")
    with pytest.raises(ValueError, match="alpha"):
        one_sample_t([1, 2, 3], alpha=0.7)


def test_ci_level_note():
    assert ci_level_note("two-sided", 0.05) == "95% two-sided CI"
    assert ci_level("greater", 0.05) == pytest.approx(0.90)
    assert ci_level_note("greater", 0.05).startswith("90% two-sided CI")
    assert "one-sided" in ci_level_note("less", 0.05)
    assert ci_level_note("two-sided", 0.025) == "97.5% two-sided CI"


# ----------------------------------------------------------------------------- TOST


def test_tost_matches_statsmodels_ttost_paired():
    rng = np.random.default_rng(4)
    x1 = rng.normal(5.0, 1.0, 12)
    x2 = x1 + rng.normal(0.05, 0.3, 12)
    for low, high in [(-0.3, 0.3), (-0.1, 0.2), (-1.0, 0.0)]:
        p_ref, (t1, p1, df1), (t2, p2, df2) = ttost_paired(x1, x2, low, high)
        r = tost(x1 - x2, low, high)
        assert r.p_value == pytest.approx(p_ref, rel=1e-10)
        assert r.p_lower == pytest.approx(p1, rel=1e-10)
        assert r.p_upper == pytest.approx(p2, rel=1e-10)
        assert r.df == df1 == df2 == 11
        assert r.equivalent == (p_ref < 0.05)


def test_tost_hand_worked_example():
    # x: mean 0.1, sd 0.2, n = 16 -> se 0.05, df 15; margins +-0.25
    # t_lower = (0.1 + 0.25)/0.05 = 7, t_upper = (0.1 - 0.25)/0.05 = -3
    # p = max(P(T15 > 7), P(T15 < -3)) = P(T15 < -3) = 0.004486 (t tables)
    z = np.array([1.0, -1.0] * 8)
    x = 0.1 + 0.2 * z / z.std(ddof=1)
    r = tost(x, -0.25, 0.25, alpha=0.05)
    assert r.estimate == pytest.approx(0.1) and r.se == pytest.approx(0.05)
    assert r.p_upper == pytest.approx(0.004486, abs=2e-6)
    assert r.p_value == r.p_upper and r.equivalent
    # the 90% CI: 0.1 +- 1.7531 * 0.05
    assert (r.ci_low, r.ci_high) == pytest.approx((0.1 - 0.087655, 0.1 + 0.087655), abs=1e-5)
    r_tight = tost(x, -0.15, 0.15, alpha=0.05)  # CI upper 0.1877 > 0.15
    assert not r_tight.equivalent


def test_tost_equivalent_iff_ci_inside_margins():
    rng = np.random.default_rng(5)
    for _ in range(200):
        x = rng.normal(rng.uniform(-0.3, 0.3), 0.3, size=8)
        r = tost(x, -0.2, 0.2, alpha=0.05)
        assert r.equivalent == (r.ci_low > -0.2 and r.ci_high < 0.2)


def test_tost_edge_cases():
    r = tost([0.1], -1, 1)
    assert r.n == 1 and not r.equivalent and math.isnan(r.p_value)
    # zero variance inside the margins: sign-flip p = 2**-n for each margin
    three, five = tost([0.1] * 3, -1, 1), tost([0.1] * 5, -1, 1)
    assert three.p_value == 1 / 8 and not three.equivalent
    assert five.p_value == 1 / 32 and five.equivalent
    assert tost([1.0] * 5, -1, 1).p_value == 1.0  # on a margin
    assert tost([2.0] * 5, -1, 1).p_value == 1.0  # outside
    with pytest.raises(ValueError, match="low < high"):
        tost([1, 2, 3], 0.5, -0.5)


# ----------------------------------------------------------------------------- Holm


def test_holm_textbook_example():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, max(0.04*1, 0.06) = 0.06
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1])


def test_holm_nan_aware_and_random_against_statsmodels():
    out = holm([0.01, np.nan, 0.04, np.nan])
    assert np.isnan(out[1]) and np.isnan(out[3])
    np.testing.assert_allclose(out[[0, 2]], [0.02, 0.04])  # m = 2, not 4
    rng = np.random.default_rng(6)
    for _ in range(3):  # multipletests is slow (~0.1 s a call)
        p = rng.uniform(0, 0.2, size=7)
        np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1])
    assert holm([]).shape == (0,)
    np.testing.assert_allclose(holm([0.9, 0.8]), [1.0, 1.0])
    with pytest.raises(ValueError):
        holm([0.5, 1.5])


# ----------------------------------------------------------------------------- meta-analysis


@pytest.mark.parametrize("method", ["dl", "pm"])
def test_random_effects_meta_matches_statsmodels(method):
    eff = np.array([0.10, 0.45, 0.22, 0.05, 0.30])
    se = np.array([0.05, 0.08, 0.06, 0.04, 0.10])
    r = random_effects_meta(eff, se, method=method)
    ref = combine_effects(eff, se**2, method_re="iterated" if method == "pm" else "dl")
    assert ref.tau2 > 0  # heterogeneous: no truncation involved
    assert r.estimate == pytest.approx(ref.mean_effect_re, rel=1e-6)
    assert r.se == pytest.approx(ref.sd_eff_w_re, rel=1e-6)
    assert r.tau2 == pytest.approx(ref.tau2, rel=1e-6)
    assert r.i2 == pytest.approx(ref.i2, rel=1e-6)
    assert (r.ci_low, r.ci_high) == pytest.approx(tuple(ref.conf_int(alpha=0.05)[1]), rel=1e-6)
    z = ref.mean_effect_re / ref.sd_eff_w_re
    assert r.statistic == pytest.approx(z, rel=1e-6)
    assert r.p_value == pytest.approx(2 * sps.norm.sf(abs(z)), rel=1e-6)
    assert r.k == 5
    one = random_effects_meta(eff, se, alternative="greater", method=method)
    assert one.p_value == pytest.approx(sps.norm.sf(z), rel=1e-6)
    assert (one.ci_low, one.ci_high) == pytest.approx(tuple(ref.conf_int(alpha=0.10)[1]), rel=1e-6)


def test_random_effects_meta_knapp_hartung_matches_statsmodels():
    eff = np.array([0.10, 0.45, 0.22, 0.05])
    se = np.array([0.05, 0.08, 0.06, 0.04])
    r = random_effects_meta(eff, se, knapp_hartung=True)
    ref = combine_effects(eff, se**2, method_re="dl")
    assert ref.tau2 > 0
    ci = ref.conf_int(alpha=0.05, use_t=True)[3]  # random effects, HKSJ scale, t(k-1)
    assert (r.ci_low, r.ci_high) == pytest.approx(tuple(ci), rel=1e-6)
    assert r.se == pytest.approx(math.sqrt(ref.var_hksj_re), rel=1e-6)


def test_random_effects_meta_truncates_negative_dl_tau2():
    eff = np.array([1.0, 1.01, 0.99])
    se = np.sqrt(np.array([0.1, 0.1, 0.1]))
    ref = combine_effects(eff, se**2, method_re="dl")
    assert ref.tau2 < 0  # statsmodels does not truncate
    r = random_effects_meta(eff, se)
    assert r.tau2 == 0.0 and r.i2 == 0.0
    assert r.estimate == pytest.approx(ref.mean_effect_fe)
    assert r.se == pytest.approx(ref.sd_eff_w_fe)  # collapses to the fixed-effect model


@pytest.mark.parametrize(
    "eff, se",
    [
        ([3.0, 3.333333333333334, 3.2222222222222245], [7.69e-16, 0.3333333, 0.5879447]),
        ([3.0, 5.0, 1.0, 2.5], [1e-15, 0.3, 0.3, 0.5]),  # heterogeneous: tau2 > 0
    ],
)
def test_random_effects_meta_with_a_near_zero_standard_error(eff, se):
    """One experiment whose seeds agree exactly (se ~ 1e-15): DL tau2 stays finite and exact.

    The textbook c = sum(w) - sum(w^2)/sum(w) cancels to 0 in floats here (statsmodels then
    gives tau2 = inf and every weight 0); the reference below is computed in exact fractions.
    """
    r = random_effects_meta(eff, se, alternative="greater")
    w = [Fraction(1) / Fraction(s) ** 2 for s in se]
    e = [Fraction(x) for x in eff]
    total = sum(w)
    fixed = sum(wi * ei for wi, ei in zip(w, e, strict=True)) / total
    q = sum(wi * (ei - fixed) ** 2 for wi, ei in zip(w, e, strict=True))
    c = total - sum(wi * wi for wi in w) / total
    tau2 = max(Fraction(0), (q - (len(eff) - 1)) / c)
    assert math.isfinite(r.tau2) and r.tau2 == pytest.approx(float(tau2), rel=1e-9, abs=1e-12)
    wr = [1 / (Fraction(s) ** 2 + tau2) for s in se]
    mean = sum(wi * ei for wi, ei in zip(wr, e, strict=True)) / sum(wr)
    assert r.estimate == pytest.approx(float(mean), rel=1e-9)
    assert r.se == pytest.approx(math.sqrt(float(1 / sum(wr))), rel=1e-9)
    assert math.isfinite(r.statistic) and 0.0 <= r.p_value < 0.05


def test_random_effects_meta_single_and_dropped_rows():
    r = random_effects_meta([0.3], [0.1])
    assert r.k == 1 and r.estimate == 0.3 and r.se == 0.1
    assert r.statistic == pytest.approx(3.0)
    assert (r.ci_low, r.ci_high) == pytest.approx((0.3 - 1.959964 * 0.1, 0.3 + 1.959964 * 0.1))
    assert math.isnan(r.tau2)
    # NaN rows and se <= 0 rows are dropped -> the single valid effect comes back unchanged
    r2 = random_effects_meta([0.3, np.nan, 0.5, 0.7], [0.1, 0.1, 0.0, np.nan])
    assert r2.k == 1 and r2.estimate == 0.3
    empty = random_effects_meta([np.nan], [0.1])
    assert empty.k == 0 and math.isnan(empty.estimate)


# ----------------------------------------------------------------------------- slopes


def test_slope_test_recovers_planted_slope():
    rng = np.random.default_rng(7)
    seeds, x_levels = 6, np.log([50, 100, 200, 400, 800])
    x = np.tile(x_levels, seeds)
    g = np.repeat(np.arange(seeds), x_levels.size)
    y = -0.8 * x + rng.normal(0, 1, seeds)[g] + rng.normal(0, 0.05, x.size)
    y[3] = np.nan  # a cell still training
    r = slope_test(y, x, g, alternative="less")
    assert r.n == seeds and r.df == seeds - 1
    assert r.estimate == pytest.approx(-0.8, abs=0.05)
    assert r.ci_high < 0 and r.p_value < 1e-4
    assert r.ci_low < -0.8 < r.ci_high
    assert "cluster" in r.summary and "OLS" in r.summary


def test_slope_test_needs_two_groups_with_two_x():
    r = slope_test([1.0, 2.0, 3.0], [0.0, 1.0, 2.0], [0, 0, 0])
    assert r.n == 1 and math.isnan(r.p_value)
    r = slope_test([1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 1.0, 1.0], ["a", "a", "b", "b"])
    assert r.n == 0 and math.isnan(r.estimate)
    assert "not fitted" in r.summary or "could not" in r.summary or r.summary


@pytest.mark.parametrize("alternative", ["two-sided", "greater"])
def test_slope_test_false_positive_rate_under_null(alternative):
    """Slope 0 on average but every seed has its own random slope: a pooled OLS treating
    observations as independent over-rejects; slopes per seed keep the error rate at alpha."""
    rng = np.random.default_rng(8)
    n_sim, seeds, alpha = 400, 4, 0.05
    x_levels = np.linspace(0, 1, 5)
    x = np.tile(np.repeat(x_levels, 6), seeds)  # 6 observations per (x, seed)
    g = np.repeat(np.arange(seeds), x_levels.size * 6)
    rejections = 0
    for _ in range(n_sim):
        seed_slopes = rng.normal(0.0, 0.5, seeds)
        y = seed_slopes[g] * x + rng.normal(0, 0.2, x.size)
        r = slope_test(y, x, g, alternative=alternative, alpha=alpha, fit_pooled=False)
        rejections += r.p_value < alpha
    slack = 3 * math.sqrt(alpha * (1 - alpha) / n_sim)
    assert rejections / n_sim <= alpha + slack
    assert rejections / n_sim >= alpha - slack  # exact test: the rate is not far below alpha


# ---------------------------------------------------------------------------- pooling, Holm CIs
def test_pool_experiments_hksj_matches_random_effects_meta_and_needs_two():
    from kdtheory.stats import pool_experiments

    est, se = [0.5, 1.2, 0.9], [0.3, 0.4, 0.2]
    h = pool_experiments(est, se, [3, 3, 3], "greater", 0.05, method="hksj")
    r = random_effects_meta(est, se, "greater", 0.05, knapp_hartung=True)
    assert (h.estimate, h.p_value, h.ci_low) == pytest.approx((r.estimate, r.p_value, r.ci_low))
    assert "Hartung-Knapp" in h.method
    for method in ("mixed", "hksj"):
        one = pool_experiments([0.5, np.nan], [0.3, 0.2], [3, 3], method=method)
        assert one.k == 1 and np.isnan(one.p_value)
    with pytest.raises(ValueError, match="pooling method"):
        pool_experiments(est, se, [3, 3, 3], method="dl")


def test_pool_experiments_mixed_ignores_the_standard_errors_weights():
    from kdtheory.stats import pool_experiments

    # a tiny standard error (all seeds of one experiment agree) must not dominate the pool
    a = pool_experiments([0.1, 2.0, 2.2], [1e-9, 0.5, 0.5], [3, 3, 3], "greater")
    b = pool_experiments([0.1, 2.0, 2.2], [0.5, 0.5, 0.5], [3, 3, 3], "greater")
    assert a.estimate == pytest.approx(b.estimate) == pytest.approx(1.4333333)
    assert a.p_value == pytest.approx(b.p_value)


@pytest.mark.parametrize("alternative", ["greater", "two-sided"])
def test_holm_adjusted_ci_clears_the_null_exactly_when_the_holm_p_is_below_alpha(alternative):
    from kdtheory.stats import ci_at_level, holm_ci_level

    rng = np.random.default_rng(3)
    agree = 0
    for _ in range(300):
        samples = [rng.normal(rng.choice([0.0, 1.0]), 1.0, 5) for _ in range(4)]
        tests = [one_sample_t(s, alternative, 0.05) for s in samples]
        adjusted = holm([t.p_value for t in tests])
        for t, p_adj in zip(tests, adjusted, strict=True):
            level = holm_ci_level(t.p_value, p_adj, alternative, 0.05)
            lo, hi = ci_at_level(t.estimate, t.se, t.df, level)
            clears = lo > 0 if alternative == "greater" else (lo > 0 or hi < 0)
            assert clears == (p_adj <= 0.05), (t.p_value, p_adj, lo, hi)
            agree += 1
    assert agree == 1200


# ----------------------------------------------------------------------------- package layout


def test_every_module_name_is_exported_from_the_package():
    """``from kdtheory.stats import X`` works for every public name of every module."""
    import importlib

    import kdtheory.stats as package

    for module in ("levels", "multiplicity", "pooling", "results", "slopes", "tests"):
        names = importlib.import_module(f"kdtheory.stats.{module}").__all__
        missing = [n for n in names if n not in package.__all__ or not hasattr(package, n)]
        assert not missing, (module, missing)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize("df", [None, 4.0])
def test_reference_p_value_and_interval_match_scipy(alternative, df):
    from kdtheory.stats.reference import interval, p_value, quantile

    dist = sps.norm if df is None else sps.t(df)
    stat = 1.7
    expected = {
        "two-sided": 2 * dist.sf(stat),
        "greater": dist.sf(stat),
        "less": dist.cdf(stat),
    }[alternative]
    assert p_value(stat, alternative, df) == pytest.approx(expected, rel=1e-12)
    assert math.isnan(p_value(float("nan"), alternative, df))
    low, high = interval(2.0, 0.5, 0.9, df)
    crit = dist.ppf(0.95)
    assert (low, high) == pytest.approx((2.0 - crit * 0.5, 2.0 + crit * 0.5), rel=1e-12)
    # far tails too: scipy.special's functions are what scipy.stats evaluates
    for stat in (-40.0, 8.5, 40.0):
        assert p_value(stat, alternative, df) == pytest.approx(
            {"two-sided": 2 * dist.sf(abs(stat)), "greater": dist.sf(stat), "less": dist.cdf(stat)}[
                alternative
            ],
            rel=1e-9,
            abs=1e-300,
        )
    for q in (1e-6, 0.3, 0.999999):
        assert quantile(q, df) == pytest.approx(dist.ppf(q), rel=1e-12)


def test_estimate_fields_carries_a_test_into_a_pooled_result():
    from kdtheory.stats import MetaResult, estimate_fields

    t = one_sample_t([0.1, 0.3, 0.2, 0.5], alternative="greater")
    fields = estimate_fields(t)
    assert fields == {
        "estimate": t.estimate,
        "se": t.se,
        "ci_low": t.ci_low,
        "ci_high": t.ci_high,
        "statistic": t.statistic,
        "p_value": t.p_value,
    }
    pooled = MetaResult(**fields, tau2=0.0, i2=0.0, k=4, method="m", alternative="greater")
    assert pooled.ci == t.ci and pooled.p_value == t.p_value


def test_deferred_text_is_made_once_on_first_use_and_pickles_as_its_text():
    import pickle

    from kdtheory.stats import DeferredText

    made = []

    def make() -> str:
        made.append(1)
        return "OLS summary"

    text = DeferredText(make)
    assert made == [] and "not made" in repr(text)
    assert f"model:\n{text}" == "model:\nOLS summary"
    assert "a " + text == "a OLS summary" and text + "!" == "OLS summary!"
    assert str(text) == "OLS summary" and text == "OLS summary" and bool(text)
    assert "OLS" in text and len(text) == 11 and text.splitlines() == ["OLS summary"]
    assert made == [1]  # once, however often it is read
    assert pickle.loads(pickle.dumps(text)) == "OLS summary"


def test_slope_test_fits_its_pooled_summary_only_when_read(monkeypatch):
    from kdtheory.stats import slopes

    calls = []
    real = slopes._pooled_cluster_ols
    monkeypatch.setattr(slopes, "_pooled_cluster_ols", lambda *a: calls.append(1) or real(*a))
    rng = np.random.default_rng(0)
    x = np.tile(np.log([10.0, 20, 40, 80]), 3)
    groups = np.repeat([0, 1, 2], 4)
    res = slopes.slope_test(-0.5 * x + rng.normal(0, 0.1, x.size), x, groups, "less")
    assert calls == [] and res.p_value < 0.05
    assert "cluster-robust" in str(res.summary) and calls == [1]
