"""One-sample, paired and equivalence (TOST) tests of per-seed values.

Every function here treats *seeds as the unit of replication*: the caller reduces each seed to one
number (a paired difference, a per-seed slope, ...) and the tests run on those numbers. Missing
values (NaN) are dropped, never imputed, and a test without enough data returns a result full of
NaN (``n`` says how many values were usable) instead of raising: a sweep that is still running
must not crash a report. Intervals follow :mod:`kdtheory.stats.levels`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kdtheory.stats.levels import check_alternative, ci_level
from kdtheory.stats.reference import NAN, interval, p_value, quantile
from kdtheory.stats.results import TestResult, TostResult

__all__ = ["one_sample_t", "paired_t", "sign_flip_p", "tost"]


def sign_flip_p(n: int, deviation: float, alternative: str) -> float:
    """Exact sign-flip p-value of ``n`` equal values lying ``deviation`` from the null value.

    Under a null distribution symmetric about the null value, each of the ``2**n`` sign
    patterns of the deviations is equally likely; when every value is the same, the observed
    mean is the most extreme of them. So the one-sided p-value is ``2**-n`` in the direction
    of ``deviation`` and 1 against it, and the two-sided one ``min(1, 2 * 2**-n)``. This is
    the p-value a zero-variance sample gets from :func:`one_sample_t` and :func:`tost`.

    Parameters
    ----------
    n : int
        Number of values (>= 1).
    deviation : float
        Common value minus the null value; not 0.
    alternative : {"two-sided", "greater", "less"}

    Returns
    -------
    float
    """
    check_alternative(alternative, 0.05)
    if n < 1 or not deviation or math.isnan(deviation):
        raise ValueError(f"sign_flip_p needs n >= 1 and a nonzero deviation; got {n}, {deviation}")
    tail = 0.5**n
    if alternative == "two-sided":
        return min(1.0, 2.0 * tail)
    towards = (deviation > 0) == (alternative == "greater")
    return tail if towards else 1.0


def _mean_se(v: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of ``v`` (n >= 2); se is exactly 0 when all values are equal
    (``std`` would leave round-off)."""
    mean = float(v.mean())
    if bool(np.all(v == v[0])):
        return mean, 0.0
    return mean, float(v.std(ddof=1)) / math.sqrt(v.size)


def _deviation_p(deviation: float, se: float, n: int, alternative: str) -> float:
    """p-value of a mean lying ``deviation`` from the null: the t distribution with ``n - 1``
    df, or for zero variance the exact :func:`sign_flip_p`; NaN when both are 0."""
    if se > 0:
        return p_value(deviation / se, alternative, float(n - 1))
    if deviation != 0:
        return sign_flip_p(n, deviation, alternative)
    return NAN


def _clean(x: Any) -> np.ndarray:
    arr = np.asarray(x, dtype=float).ravel()
    return arr[~np.isnan(arr)]


def one_sample_t(
    x: Any, alternative: str = "two-sided", alpha: float = 0.05, null: float = 0.0
) -> TestResult:
    """One-sample t-test of ``mean(x) == null``.

    Parameters
    ----------
    x : array_like
        One value per unit of replication (seed). NaNs are dropped.
    alternative : {"two-sided", "greater", "less"}
    alpha : float
        Sets the CI level (``1 - alpha`` two-sided, ``1 - 2*alpha`` for one-sided tests).
    null : float
        Value of the mean under the null hypothesis.

    Returns
    -------
    TestResult
        With ``n < 2`` every number is NaN. When all values are equal (zero variance) the
        statistic is ±inf if the mean differs from ``null`` (NaN otherwise) and the p-value is
        the exact sign-flip one, see :func:`sign_flip_p`: the t distribution would give p = 0,
        which discrete data such as test accuracies on a small test set reach far more often
        than alpha under the null (a few seeds with the same difference of one test sample).
    """
    check_alternative(alternative, alpha)
    v = _clean(x)
    n = int(v.size)
    method = "one-sample t-test"
    if n < 2:
        return TestResult.empty(n, alternative, method)
    mean, se = _mean_se(v)
    df = float(n - 1)
    diff = mean - null
    p = _deviation_p(diff, se, n, alternative)
    if se > 0:
        t = diff / se
    elif diff != 0:
        t = math.copysign(math.inf, diff)
        method += " (zero variance: exact sign-flip p)"
    else:
        t = NAN
    low, high = interval(mean, se, ci_level(alternative, alpha), df)
    return TestResult(mean, se, low, high, t, df, p, n, alternative, method)


def paired_t(a: Any, b: Any, alternative: str = "two-sided", alpha: float = 0.05) -> TestResult:
    """Paired t-test of ``mean(a - b) == 0`` (pairs, e.g. seeds, where either value is NaN are
    dropped). ``estimate`` is the mean difference ``a - b``; ``"greater"`` means a > b."""
    a_arr = np.asarray(a, dtype=float).ravel()
    b_arr = np.asarray(b, dtype=float).ravel()
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"paired_t needs equally long inputs; got {a_arr.size} and {b_arr.size}")
    res = one_sample_t(a_arr - b_arr, alternative=alternative, alpha=alpha)
    res.method = "paired t-test"
    return res


def tost(x: Any, low: float, high: float, alpha: float = 0.05) -> TostResult:
    """One-sample TOST equivalence test: is ``mean(x)`` inside the margins ``(low, high)``?

    Two one-sided t-tests at level ``alpha``: H0 ``mean <= low`` (``p_lower``) and H0
    ``mean >= high`` (``p_upper``). Equivalence is declared when both reject, i.e. when
    ``p_value = max(p_lower, p_upper) < alpha``, which is the same as the ``1 - 2*alpha``
    two-sided CI lying inside ``(low, high)``. For paired data pass the per-seed differences.
    ``n < 2`` gives NaN p-values and ``equivalent=False``. A zero-variance sample gets the exact
    sign-flip p-values of :func:`sign_flip_p` (``2**-n`` for each margin it lies inside), not
    the t distribution's 0.
    """
    check_alternative("two-sided", alpha)
    low, high = float(low), float(high)
    if not low < high:
        raise ValueError(f"tost needs low < high; got low={low!r}, high={high!r}")
    v = _clean(x)
    n = int(v.size)
    if n < 2:
        return TostResult(NAN, False, NAN, NAN, NAN, NAN, low, high, n)
    mean, se = _mean_se(v)
    df = float(n - 1)
    # NaN only for zero variance exactly on a margin, where that null holds exactly: p = 1
    p_lower = _deviation_p(mean - low, se, n, "greater")
    p_upper = _deviation_p(mean - high, se, n, "less")
    p_lower, p_upper = (1.0 if math.isnan(q) else q for q in (p_lower, p_upper))
    p = max(p_lower, p_upper)
    crit = quantile(1.0 - alpha, df)  # the 1 - 2*alpha interval's quantile, exactly
    return TostResult(
        p_value=p,
        equivalent=bool(p < alpha),
        p_lower=p_lower,
        p_upper=p_upper,
        ci_low=mean - crit * se,
        ci_high=mean + crit * se,
        low=low,
        high=high,
        n=n,
        estimate=mean,
        se=se,
        df=df,
    )
