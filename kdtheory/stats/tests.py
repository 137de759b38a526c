"""Statistics helpers shared by the hypothesis plugins.

Every function here treats *seeds as the unit of replication*: the caller reduces each seed to one
number (a paired difference, a per-seed slope, ...) and the tests below run on those numbers.

Conventions, fixed once for the whole toolkit
---------------------------------------------
* ``alternative`` is ``"two-sided"``, ``"greater"`` or ``"less"``, with scipy's meaning: for
  ``"greater"`` the alternative hypothesis is *estimate > null*.
* **Confidence intervals are always reported as two-sided intervals.** For a two-sided test the
  level is ``1 - alpha``; for a one-sided test it is ``1 - 2*alpha`` (a 90% interval for
  ``alpha = 0.05``). That interval's relevant bound is exactly the one-sided ``1 - alpha`` bound, so
  the interval and the one-sided test always agree: with ``alternative="greater"`` the test
  rejects at ``alpha`` if and only if ``ci_low > null``. TOST uses the same ``1 - 2*alpha``
  interval, so "equivalent" means "the interval lies inside the margins".
  :func:`ci_level` returns the level and :func:`ci_level_note` the words every renderer prints.
* Missing values (NaN) are dropped, never imputed, and a test without enough data returns a result
  full of NaN (``n`` says how many values were usable) instead of raising: a sweep that is still
  running must not crash a report.

scipy and statsmodels are imported lazily so that importing this module (and the CLI) stays fast.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from kdtheory._lazy import lazy_module
from kdtheory.errors import SpecError

_sps = lazy_module("scipy.stats")

__all__ = [
    "ALTERNATIVES",
    "MetaResult",
    "TestResult",
    "TostResult",
    "check_alpha",
    "ci_level",
    "ci_level_note",
    "holm",
    "POOLING_METHODS",
    "holm_ci_level",
    "one_sample_t",
    "paired_t",
    "pool_experiments",
    "random_effects_meta",
    "sign_flip_p",
    "slope_test",
    "tost",
]

ALTERNATIVES = ("two-sided", "greater", "less")
NAN = float("nan")


# --------------------------------------------------------------------------------------------
# result types


@dataclass
class TestResult:
    """Result of a t-test (one-sample, paired, or of per-seed slopes).

    Attributes
    ----------
    estimate : float
        Mean (of the values, the paired differences, or the per-group slopes).
    se : float
        Standard error of ``estimate``.
    ci_low, ci_high : float
        Two-sided CI at level :func:`ci_level` ``(alternative, alpha)``.
    statistic : float
        t statistic against the null value.
    df : float
        Degrees of freedom (``n - 1``).
    p_value : float
        p-value for ``alternative``.
    n : int
        Number of units of replication used (after dropping NaN).
    alternative, method : str
    summary : str
        Optional text summary of a fitted model (``slope_test`` puts the pooled OLS here).
    """

    __test__ = False  # not a pytest test class

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    statistic: float
    df: float
    p_value: float
    n: int
    alternative: str
    method: str
    summary: str = ""

    def significant(self, alpha: float = 0.05) -> bool:
        """Whether the test rejects its null at ``alpha`` (False when the p-value is NaN)."""
        return bool(self.p_value < alpha)

    @property
    def ci(self) -> tuple[float, float]:
        return (self.ci_low, self.ci_high)


@dataclass
class TostResult:
    """Result of a one-sample two one-sided tests (TOST) equivalence procedure.

    ``p_lower`` tests H0: mean <= low, ``p_upper`` tests H0: mean >= high; ``p_value`` is their
    maximum and ``equivalent`` is ``p_value < alpha``, which happens exactly when the
    ``1 - 2*alpha`` interval ``(ci_low, ci_high)`` lies inside ``(low, high)``.
    """

    p_value: float
    equivalent: bool
    p_lower: float
    p_upper: float
    ci_low: float
    ci_high: float
    low: float
    high: float
    n: int
    estimate: float = NAN
    se: float = NAN
    df: float = NAN

    @property
    def ci(self) -> tuple[float, float]:
        return (self.ci_low, self.ci_high)


@dataclass
class MetaResult:
    """Random-effects meta-analysis of one effect across experiments.

    Attributes
    ----------
    estimate, se : float
        Pooled (random-effects) estimate and its standard error.
    ci_low, ci_high : float
        Two-sided CI at level :func:`ci_level` ``(alternative, alpha)`` (normal, or t with
        ``k - 1`` df under the Hartung–Knapp adjustment).
    statistic, p_value : float
        z (or t) statistic against 0 and its p-value for ``alternative``.
    tau2 : float
        Between-experiment variance (truncated at 0; NaN when ``k == 1``).
    i2 : float
        I² heterogeneity in [0, 1] (NaN when ``k == 1``).
    k : int
        Number of experiments pooled.
    method : str
    """

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    statistic: float
    p_value: float
    tau2: float
    i2: float
    k: int
    method: str
    alternative: str = "two-sided"

    @property
    def ci(self) -> tuple[float, float]:
        return (self.ci_low, self.ci_high)


# --------------------------------------------------------------------------------------------
# conventions


def check_alpha(alpha: Any, name: str = "alpha") -> float:
    """``alpha`` as a float if it is a significance level kdtheory accepts, in (0, 0.5).

    The one check every entry point uses (tests, families, reports, the CLI's ``--alpha``). A
    one-sided test reports a ``1 - 2*alpha`` interval, which is empty for ``alpha >= 0.5``.

    Parameters
    ----------
    alpha : Any
        A number (or a string of one).
    name : str
        How the message names it, e.g. ``"--alpha"``.

    Returns
    -------
    float

    Raises
    ------
    SpecError
        (a ``ValueError``) when ``alpha`` is not a number in (0, 0.5); NaN is not.
    """
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise SpecError(f"{name} must be a number in (0, 0.5); got {alpha!r}") from None
    if not 0.0 < value < 0.5:  # False for NaN too
        raise SpecError(f"{name} must lie in (0, 0.5); got {alpha!r}")
    return value


def _check(alternative: str, alpha: float) -> None:
    if alternative not in ALTERNATIVES:
        raise ValueError(
            f"alternative must be one of {', '.join(ALTERNATIVES)}; got {alternative!r}"
        )
    check_alpha(alpha)


def ci_level(alternative: str, alpha: float) -> float:
    """Level of the two-sided CI reported with a test: ``1 - alpha``, or ``1 - 2*alpha`` when
    ``alternative`` is one-sided (see the module docstring)."""
    _check(alternative, alpha)
    return 1.0 - alpha if alternative == "two-sided" else 1.0 - 2.0 * alpha


def _percent(level: float) -> str:
    return f"{round(100.0 * level, 6):g}%"


def ci_level_note(alternative: str, alpha: float) -> str:
    """Words describing the reported CI, e.g. ``"95% two-sided CI"`` or, for a one-sided test at
    alpha 0.05, ``"90% two-sided CI (one-sided test, alpha=0.05)"``."""
    level = ci_level(alternative, alpha)
    if alternative == "two-sided":
        return f"{_percent(level)} two-sided CI"
    return f"{_percent(level)} two-sided CI (one-sided test, alpha={alpha:g})"


def _p_from_t(t: float, df: float, alternative: str) -> float:
    if math.isnan(t) or math.isnan(df):
        return NAN
    if alternative == "two-sided":
        return float(2.0 * _sps.t.sf(abs(t), df))
    if alternative == "greater":
        return float(_sps.t.sf(t, df))
    return float(_sps.t.cdf(t, df))


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
    _check(alternative, 0.05)
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
        return _p_from_t(deviation / se, float(n - 1), alternative)
    if deviation != 0:
        return sign_flip_p(n, deviation, alternative)
    return NAN


def _p_from_z(z: float, alternative: str) -> float:
    if math.isnan(z):
        return NAN
    if alternative == "two-sided":
        return float(2.0 * _sps.norm.sf(abs(z)))
    if alternative == "greater":
        return float(_sps.norm.sf(z))
    return float(_sps.norm.cdf(z))


def _clean(x: Any) -> np.ndarray:
    arr = np.asarray(x, dtype=float).ravel()
    return arr[~np.isnan(arr)]


def _nan_test(n: int, alternative: str, method: str, summary: str = "") -> TestResult:
    return TestResult(NAN, NAN, NAN, NAN, NAN, NAN, NAN, n, alternative, method, summary)


# --------------------------------------------------------------------------------------------
# t-tests


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
    _check(alternative, alpha)
    v = _clean(x)
    n = int(v.size)
    method = "one-sample t-test"
    if n < 2:
        return _nan_test(n, alternative, method)
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
    crit = float(_sps.t.ppf(1.0 - (1.0 - ci_level(alternative, alpha)) / 2.0, df))
    return TestResult(
        estimate=mean,
        se=se,
        ci_low=mean - crit * se,
        ci_high=mean + crit * se,
        statistic=t,
        df=df,
        p_value=p,
        n=n,
        alternative=alternative,
        method=method,
    )


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
    _check("two-sided", alpha)
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
    crit = float(_sps.t.ppf(1.0 - alpha, df))
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


# --------------------------------------------------------------------------------------------
# multiplicity


def holm(p_values: Any) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values.

    NaN entries stay NaN and do not count towards the family size ``m``. With the valid
    p-values sorted ascending, ``p_adj(i) = max_{j<=i} min(1, (m - j + 1) * p(j))``; reject a
    hypothesis at family-wise level alpha when its adjusted p-value is ``<= alpha``.
    """
    p = np.asarray(p_values, dtype=float)
    shape = p.shape
    p = p.ravel()
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    if valid.size:
        if np.any((p[valid] < 0) | (p[valid] > 1)):
            raise ValueError("p-values must lie in [0, 1]")
        m = valid.size
        order = valid[np.argsort(p[valid], kind="stable")]
        factors = m - np.arange(m)
        adj = np.minimum(1.0, np.maximum.accumulate(factors * p[order]))
        out[order] = adj
    return out.reshape(shape)


# --------------------------------------------------------------------------------------------
# pooling across experiments


def _dersimonian_laird(eff: np.ndarray, var: np.ndarray) -> tuple[float, float]:
    """Cochran's Q and the DerSimonian–Laird ``tau2`` (truncated at 0), computed stably.

    ``tau2 = (Q - (k - 1)) / c`` with ``c = sum(w) - sum(w**2) / sum(w)``. Written that way, ``c``
    cancels to 0 when one experiment's variance is tiny (all its seeds agree exactly, e.g. on a
    coarse test set) and ``tau2`` becomes infinite; the equal form
    ``c = sum_i w_i * (sum_{j != i} w_j) / sum(w)`` keeps it finite.
    """
    w = 1.0 / var
    total = float(w.sum())
    fixed = float((w * eff).sum() / total)
    q = float((w * (eff - fixed) ** 2).sum())
    others = np.array([float(np.delete(w, i).sum()) for i in range(w.size)])
    c = float((w * others).sum() / total)
    tau2 = max(0.0, (q - (w.size - 1)) / c) if c > 0 else 0.0
    return q, tau2


def random_effects_meta(
    estimates: Any,
    std_errors: Any,
    alternative: str = "two-sided",
    alpha: float = 0.05,
    *,
    method: str = "dl",
    knapp_hartung: bool = False,
    null: float = 0.0,
) -> MetaResult:
    """Random-effects meta-analysis of one effect measured on several experiments.

    Estimates the between-experiment variance ``tau2`` by DerSimonian–Laird (``method="dl"``,
    computed here, stable when one experiment's standard error is tiny) or iterated
    Paule–Mandel (``method="pm"``/``"iterated"``, by
    :func:`statsmodels.stats.meta_analysis.combine_effects`). ``tau2`` is truncated at 0 (the
    textbook estimator, as in R's metafor; statsmodels does not truncate DerSimonian–Laird, and a
    negative value would give an interval that is too narrow) and I² at 0. The pooled estimate
    is then the inverse-variance weighted mean with weights ``1 / (se_i**2 + tau2)``.

    Parameters
    ----------
    estimates, std_errors : array_like
        One effect and its standard error per experiment. Rows with a NaN or ``se <= 0`` are
        dropped.
    alternative, alpha
        As everywhere (CI at ``1 - alpha``, or ``1 - 2*alpha`` for a one-sided test).
    method : {"dl", "pm", "iterated"}
    knapp_hartung : bool
        Use the Hartung–Knapp(–Sidik–Jonkman) variance and a t reference with ``k - 1`` df:
        better coverage with few experiments.
    null : float
        Null value of the pooled effect.

    Returns
    -------
    MetaResult
        With ``k == 1`` the single effect is returned unchanged (its estimate and se, a z-test,
        ``tau2`` and ``i2`` NaN); with ``k == 0`` every number is NaN.
    """
    _check(alternative, alpha)
    method_key = method.lower()
    if method_key not in ("dl", "chi2", "pm", "iterated"):
        raise ValueError(f"method must be 'dl' or 'pm'/'iterated'; got {method!r}")
    eff = np.asarray(estimates, dtype=float).ravel()
    se = np.asarray(std_errors, dtype=float).ravel()
    if eff.shape != se.shape:
        raise ValueError("estimates and std_errors must have the same length")
    keep = ~np.isnan(eff) & ~np.isnan(se) & (se > 0)
    eff, se = eff[keep], se[keep]
    k = int(eff.size)
    level = ci_level(alternative, alpha)
    name = {
        "dl": "DerSimonian-Laird",
        "chi2": "DerSimonian-Laird",
        "pm": "Paule-Mandel",
        "iterated": "Paule-Mandel",
    }[method_key]
    if k == 0:
        return MetaResult(NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, 0, "no experiments", alternative)
    if k == 1:
        est, s = float(eff[0]), float(se[0])
        z = (est - null) / s
        crit = float(_sps.norm.ppf(1.0 - (1.0 - level) / 2.0))
        return MetaResult(
            est,
            s,
            est - crit * s,
            est + crit * s,
            z,
            _p_from_z(z, alternative),
            NAN,
            NAN,
            1,
            "single experiment (no pooling)",
            alternative,
        )
    var = se**2
    if method_key in ("dl", "chi2"):
        q, tau2 = _dersimonian_laird(eff, var)
    else:
        from statsmodels.stats.meta_analysis import combine_effects

        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            res = combine_effects(eff, var, method_re=method_key, alpha=alpha)
        q, tau2 = float(res.q), max(0.0, float(res.tau2))
    w = 1.0 / (var + tau2)
    mean = float((w * eff).sum() / w.sum())
    i2 = max(0.0, (q - (k - 1)) / q) if q > 0 else 0.0
    if knapp_hartung:
        s = math.sqrt(float((w * (eff - mean) ** 2).sum() / ((k - 1) * w.sum())))
        stat = (mean - null) / s if s > 0 else NAN
        p = _p_from_t(stat, k - 1, alternative)
        crit = float(_sps.t.ppf(1.0 - (1.0 - level) / 2.0, k - 1))
        label = f"random-effects meta-analysis ({name}, Hartung-Knapp t, k={k})"
    else:
        s = math.sqrt(1.0 / float(w.sum()))
        stat = (mean - null) / s
        p = _p_from_z(stat, alternative)
        crit = float(_sps.norm.ppf(1.0 - (1.0 - level) / 2.0))
        label = f"random-effects meta-analysis ({name}, z, k={k})"
    return MetaResult(
        estimate=mean,
        se=s,
        ci_low=mean - crit * s,
        ci_high=mean + crit * s,
        statistic=stat,
        p_value=p,
        tau2=tau2,
        i2=i2,
        k=k,
        method=label,
        alternative=alternative,
    )


#: Ways :func:`pool_experiments` pools one effect across experiments, with their descriptions.
POOLING_METHODS: dict[str, str] = {
    "mixed": (
        "random-effects model on the seed-level values with experiment as a random effect; "
        "t-test of the k experiment estimates, k - 1 df"
    ),
    "hksj": (
        "random-effects meta-analysis, DerSimonian-Laird tau2 with the Hartung-Knapp-Sidik-"
        "Jonkman t interval, k - 1 df"
    ),
}


def pool_experiments(
    estimates: Any,
    std_errors: Any,
    n: Any,
    alternative: str = "two-sided",
    alpha: float = 0.05,
    *,
    method: str = "mixed",
    null: float = 0.0,
) -> MetaResult:
    """Pool one effect measured on several experiments, honestly for a handful of them.

    ``method="mixed"`` (the default) treats the seed-level values behind each experiment's
    estimate as ``value = mu + u_experiment + e_seed`` with a random experiment effect ``u``
    (variance ``tau2``) and tests ``mu`` on ``k - 1`` degrees of freedom. In a balanced design
    (every experiment with the same number of seeds) the REML test of ``mu`` in that model is
    exactly the one-sample t-test of the ``k`` experiment estimates, which is what is computed
    (unweighted, so a noisy per-experiment standard error from 2 or 3 seeds cannot make the
    pooled interval too narrow; :func:`one_sample_t` also gives equal estimates the exact
    sign-flip p). ``tau2`` is the method-of-moments estimate
    ``max(0, var(estimates) - mean(se**2))`` and I² is ``tau2 / var(estimates)``.

    ``method="hksj"`` is :func:`random_effects_meta` with DerSimonian–Laird ``tau2`` and the
    Hartung–Knapp–Sidik–Jonkman t interval. It weights experiments by their estimated standard
    errors, which with 3 seeds rest on 2 degrees of freedom each; on synthetic null data with
    3 experiments × 3 seeds it rejected at about 9–12% at alpha 0.05 (``benchmarks/
    calibration.py``), against about 5% for ``"mixed"``, hence the default.

    Parameters
    ----------
    estimates, std_errors, n : array_like
        Per experiment: the estimate, its standard error and the number of seeds behind it.
        Experiments with a NaN estimate are dropped (``"hksj"`` also drops ``se <= 0``).
    alternative, alpha
        As everywhere (CI at ``1 - alpha``, or ``1 - 2*alpha`` for a one-sided test).
    method : {"mixed", "hksj"}
    null : float
        Null value of the pooled effect.

    Returns
    -------
    MetaResult
        ``statistic`` is the t statistic; ``k`` the number of experiments pooled. With
        ``k < 2`` every number is NaN (one experiment is not pooled).
    """
    _check(alternative, alpha)
    if method not in POOLING_METHODS:
        raise ValueError(
            f"pooling method must be one of {', '.join(POOLING_METHODS)}; got {method!r}"
        )
    eff = np.asarray(estimates, dtype=float).ravel()
    se = np.asarray(std_errors, dtype=float).ravel()
    if eff.shape != se.shape:
        raise ValueError("estimates and std_errors must have the same length")
    if method == "hksj":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = random_effects_meta(eff, se, alternative, alpha, knapp_hartung=True, null=null)
        if res.k < 2:
            return MetaResult(
                NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, res.k, "not pooled", alternative
            )
        res.method = (
            f"random-effects, DerSimonian-Laird tau2, Hartung-Knapp-Sidik-Jonkman t, k={res.k}"
        )
        return res
    keep = np.isfinite(eff)
    eff, se = eff[keep], se[keep]
    k = int(eff.size)
    if k < 2:
        return MetaResult(NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, k, "not pooled", alternative)
    t = one_sample_t(eff, alternative, alpha, null=null)
    var_means = float(eff.var(ddof=1))
    within = float(np.nanmean(se**2)) if np.isfinite(se).any() else NAN
    tau2 = max(0.0, var_means - within) if np.isfinite(within) else NAN
    i2 = tau2 / var_means if var_means > 0 and np.isfinite(tau2) else 0.0
    return MetaResult(
        estimate=t.estimate,
        se=t.se,
        ci_low=t.ci_low,
        ci_high=t.ci_high,
        statistic=t.statistic,
        p_value=t.p_value,
        tau2=tau2,
        i2=i2,
        k=k,
        method=f"random-effects (experiment as random effect), t on k - 1 = {k - 1} df",
        alternative=alternative,
    )


def holm_ci_level(p_raw: float, p_holm: float, alternative: str, alpha: float) -> float:
    """Level of a CI that agrees with a Holm-adjusted p-value.

    Holm multiplies a member's p-value by ``m_eff = p_holm / p_raw`` (its step's factor, or more
    where monotonicity lifts it); the member's CI at the Bonferroni-style level for
    ``alpha / m_eff`` then excludes the null exactly when ``p_holm <= alpha``. Returns
    :func:`ci_level` when no adjustment applies (``p_holm <= p_raw`` or NaN values).
    """
    base = ci_level(alternative, alpha)
    if not (np.isfinite(p_raw) and np.isfinite(p_holm)) or p_raw <= 0 or p_holm <= p_raw:
        return base
    m_eff = p_holm / p_raw
    a = alpha / m_eff
    return 1.0 - a if alternative == "two-sided" else 1.0 - 2.0 * a


def ci_at_level(estimate: float, se: float, df: float, level: float) -> tuple[float, float]:
    """Two-sided t interval ``estimate ± t_{df} * se`` at ``level`` (NaN when undefined)."""
    if not (np.isfinite(estimate) and np.isfinite(se) and np.isfinite(df)) or df <= 0:
        return (NAN, NAN)
    crit = float(_sps.t.ppf(1.0 - (1.0 - level) / 2.0, df))
    return (estimate - crit * se, estimate + crit * se)


# --------------------------------------------------------------------------------------------
# slopes with seeds as the unit of replication


def slope_test(
    y: Any,
    x: Any,
    groups: Any,
    alternative: str = "two-sided",
    alpha: float = 0.05,
    *,
    fit_pooled: bool = True,
) -> TestResult:
    """Test the slope of ``y`` on ``x`` with groups (seeds) as the unit of replication.

    Within each group an OLS slope of ``y`` on ``x`` is fitted; the per-group slopes are then
    tested with a one-sample t-test against 0 (``df = G - 1``), so observations within a seed are
    never treated as independent. ``estimate`` is the mean per-group slope.

    Parameters
    ----------
    y, x, groups : array_like, same length
        Observations; rows with NaN in ``y`` or ``x`` are dropped. ``groups`` labels the seed.
    alternative, alpha
        As everywhere.
    fit_pooled : bool
        Also fit a pooled OLS ``y ~ x`` with cluster-robust (by group) standard errors and put
        its statsmodels text summary in ``summary`` (a note instead when it cannot be fitted).

    Returns
    -------
    TestResult
        NaN numbers unless at least 2 groups have at least 2 distinct ``x`` values; ``n`` is
        the number of groups with a slope.
    """
    _check(alternative, alpha)
    y_arr = np.asarray(y, dtype=float).ravel()
    x_arr = np.asarray(x, dtype=float).ravel()
    g_arr = np.asarray(groups).ravel()
    if not (y_arr.size == x_arr.size == g_arr.size):
        raise ValueError(
            f"slope_test needs y, x and groups of equal length; got {y_arr.size}, "
            f"{x_arr.size}, {g_arr.size}"
        )
    keep = ~np.isnan(y_arr) & ~np.isnan(x_arr)
    y_arr, x_arr, g_arr = y_arr[keep], x_arr[keep], g_arr[keep]
    import pandas as pd

    codes, uniques = pd.factorize(g_arr, sort=True)
    slopes = []
    for gi in range(len(uniques)):
        sel = codes == gi
        xs, ys = x_arr[sel], y_arr[sel]
        if np.unique(xs).size < 2:
            continue
        xc = xs - xs.mean()
        slopes.append(float((xc * (ys - ys.mean())).sum() / (xc * xc).sum()))
    method = "t-test of per-seed OLS slopes"
    summary = ""
    if fit_pooled:
        summary = _pooled_cluster_ols(y_arr, x_arr, codes)
    if len(slopes) < 2:
        return _nan_test(len(slopes), alternative, method, summary)
    res = one_sample_t(np.asarray(slopes), alternative=alternative, alpha=alpha)
    res.method = method
    res.summary = summary
    return res


def _pooled_cluster_ols(y: np.ndarray, x: np.ndarray, codes: np.ndarray) -> str:
    """Text summary of OLS ``y ~ x`` with cluster-robust SEs by group, or why it can't be fit."""
    n_groups = int(np.unique(codes).size)
    if y.size < 3 or np.unique(x).size < 2 or n_groups < 2:
        return (
            "pooled OLS y ~ x (cluster-robust by seed) not fitted: needs at least 3 observations, "
            f"2 distinct x and 2 groups (have {y.size}, {np.unique(x).size}, {n_groups})."
        )
    try:
        import statsmodels.api as sm

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = sm.OLS(y, sm.add_constant(x, has_constant="add"))
            fit = model.fit(cov_type="cluster", cov_kwds={"groups": codes})
            return str(
                fit.summary(
                    yname="y",
                    xname=["const", "x"],
                    title="Pooled OLS y ~ x, cluster-robust SEs by seed",
                ).as_text()
            )
    except Exception as exc:  # noqa: BLE001 - a summary must never break the test itself
        return f"pooled OLS y ~ x (cluster-robust by seed) could not be fitted: {exc}"
