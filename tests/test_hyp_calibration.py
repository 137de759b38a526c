"""Calibration of the built-in hypotheses on synthetic stores with a planted truth.

The cases live in :mod:`kdtheory.testing.calibration` (shared with ``benchmarks/calibration.py``,
which
runs 200+ stores per case and whose last run the README records). Here:

- under every null (the claim false at its least favourable point, or true at the edge of an
  equivalence band for a wrong "rejected") the count of wrong findings over many stores stays
  within the upper 99% binomial quantile at alpha: for one experiment with 5 seeds, and — the
  pooled verdicts included — for 3 experiments × 3 seeds with 100 test samples, with the
  default pooling;
- the same on the multi-experiment design with the former pooling (DerSimonian–Laird with a
  normal z) fails, which is why it is gone: the test shows its over-rejection;
- under clear planted effects the right verdict comes in >= 90% of one-experiment stores.
"""

from __future__ import annotations

import numpy as np
import pytest

import kdtheory.hypothesis.toolkit
from kdtheory.stats import one_sample_t, pool_experiments, random_effects_meta
from kdtheory.testing.calibration import EFFECTS, NULLS, max_wrong, run_case

ALPHA = 0.05
N_NULL = 120
N_MULTI = 100
N_POWER = 20


@pytest.fixture(autouse=True)
def _no_model_summaries(monkeypatch):
    # decisions never depend on the statsmodels summary text; skipping it saves ~40% per store
    monkeypatch.setattr(kdtheory.hypothesis.toolkit, "FIT_SUMMARIES", False)


def _ids(cases):
    return [f"{c.hypothesis}-{c.decision}-{i}" for i, c in enumerate(cases)]


SINGLE_NULLS = [c for c in NULLS if c.fits("single")]


@pytest.mark.parametrize("case", SINGLE_NULLS, ids=_ids(SINGLE_NULLS))
def test_wrong_finding_rate_under_null_one_experiment(case):
    counts = run_case(case, "single", N_NULL, seed=1, alpha=ALPHA)
    assert counts[case.decision] <= max_wrong(N_NULL, ALPHA), counts


@pytest.mark.slow
@pytest.mark.parametrize("case", NULLS, ids=_ids(NULLS))
def test_wrong_finding_rate_under_null_three_experiments_pooled(case):
    counts = run_case(case, "multi", N_MULTI, seed=5, alpha=ALPHA)
    assert counts[case.decision] <= max_wrong(N_MULTI, ALPHA), counts


@pytest.mark.parametrize("case", EFFECTS, ids=_ids(EFFECTS))
def test_planted_effect_gives_the_right_verdict(case):
    counts = run_case(case, "single", N_POWER, seed=3, alpha=ALPHA)
    assert counts[case.decision] >= 0.9 * N_POWER, counts


def _null_pools(n: int, rng: np.random.Generator, sds=(0.3, 1.0, 3.0), tau: float = 0.5):
    """``n`` null sets of 3 experiments x 3 seed-level values: per-experiment estimates, their
    standard errors, and the seed counts (true pooled mean 0)."""
    for _ in range(n):
        vals = [rng.normal(rng.normal(0, tau), sd, 3) for sd in sds]
        yield (
            [v.mean() for v in vals],
            [v.std(ddof=1) / np.sqrt(3) for v in vals],
            [3, 3, 3],
        )


def test_default_pooling_holds_alpha_where_z_and_hksj_do_not():
    # 3 experiments x 3 seeds, unequal within-experiment spread and between-experiment variance:
    # the shape of the shipped store. Standard errors from 3 seeds (2 df) make inverse-variance
    # weights noisy; DerSimonian-Laird with a normal z and even Hartung-Knapp over-reject.
    rng = np.random.default_rng(7)
    n = 1500
    hits = {"mixed": 0, "hksj": 0, "dl-z": 0}
    for est, se, ns in _null_pools(n, rng):
        hits["mixed"] += pool_experiments(est, se, ns, "greater", ALPHA).p_value <= ALPHA
        hits["hksj"] += (
            pool_experiments(est, se, ns, "greater", ALPHA, method="hksj").p_value <= ALPHA
        )
        hits["dl-z"] += random_effects_meta(est, se, "greater", ALPHA).p_value <= ALPHA
    assert hits["mixed"] <= max_wrong(n, ALPHA), hits
    assert hits["hksj"] > max_wrong(n, ALPHA), hits
    assert hits["dl-z"] > max_wrong(n, ALPHA), hits


def test_mixed_pooling_is_the_t_test_of_the_experiment_estimates():
    est, se = [1.0, 2.0, 4.5], [0.2, 0.5, 1.0]
    m = pool_experiments(est, se, [3, 3, 3], "two-sided", ALPHA)
    t = one_sample_t(est, "two-sided", ALPHA)
    assert (m.estimate, m.p_value, *m.ci) == pytest.approx((t.estimate, t.p_value, *t.ci))
    assert m.k == 3 and m.tau2 == pytest.approx(
        max(0.0, np.var(est, ddof=1) - np.mean(np.square(se)))
    )
    assert 0 <= m.i2 <= 1
    # one experiment is not pooled
    assert np.isnan(pool_experiments([1.0], [0.1], [3]).p_value)
