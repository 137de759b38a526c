"""Pooling one effect across experiments: random-effects meta-analysis and the default
experiment-as-random-effect t-test (:func:`pool_experiments`).

statsmodels is imported on first use (Paule–Mandel ``tau2`` only).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from kdtheory.stats.levels import check_alternative, ci_level
from kdtheory.stats.reference import NAN, interval, p_value
from kdtheory.stats.results import MetaResult, estimate_fields
from kdtheory.stats.tests import one_sample_t

__all__ = ["POOLING_METHODS", "pool_experiments", "random_effects_meta"]

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

_TAU2_METHODS = {
    "dl": "DerSimonian-Laird",
    "chi2": "DerSimonian-Laird",
    "pm": "Paule-Mandel",
    "iterated": "Paule-Mandel",
}


def _effects(estimates: Any, std_errors: Any) -> tuple[np.ndarray, np.ndarray]:
    """``estimates`` and ``std_errors`` as flat float arrays of the same length."""
    eff = np.asarray(estimates, dtype=float).ravel()
    se = np.asarray(std_errors, dtype=float).ravel()
    if eff.shape != se.shape:
        raise ValueError("estimates and std_errors must have the same length")
    return eff, se


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
    check_alternative(alternative, alpha)
    method_key = method.lower()
    if method_key not in _TAU2_METHODS:
        raise ValueError(f"method must be 'dl' or 'pm'/'iterated'; got {method!r}")
    eff, se = _effects(estimates, std_errors)
    keep = ~np.isnan(eff) & ~np.isnan(se) & (se > 0)
    eff, se = eff[keep], se[keep]
    k = int(eff.size)
    level = ci_level(alternative, alpha)
    if k == 0:
        return MetaResult.empty(0, "no experiments", alternative)
    if k == 1:
        est, s = float(eff[0]), float(se[0])
        z = (est - null) / s
        low, high = interval(est, s, level)
        p = p_value(z, alternative)
        label = "single experiment (no pooling)"
        return MetaResult(est, s, low, high, z, p, NAN, NAN, 1, label, alternative)
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
    name = _TAU2_METHODS[method_key]
    if knapp_hartung:
        s = math.sqrt(float((w * (eff - mean) ** 2).sum() / ((k - 1) * w.sum())))
        stat = (mean - null) / s if s > 0 else NAN
        df: float | None = k - 1
        label = f"random-effects meta-analysis ({name}, Hartung-Knapp t, k={k})"
    else:
        s = math.sqrt(1.0 / float(w.sum()))
        stat = (mean - null) / s
        df = None
        label = f"random-effects meta-analysis ({name}, z, k={k})"
    low, high = interval(mean, s, level, df)
    p = p_value(stat, alternative, df)
    return MetaResult(mean, s, low, high, stat, p, tau2, i2, k, label, alternative)


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
    pooled interval too narrow; :func:`~kdtheory.stats.one_sample_t` also gives equal estimates
    the exact sign-flip p). ``tau2`` is the method-of-moments estimate
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
    check_alternative(alternative, alpha)
    if method not in POOLING_METHODS:
        raise ValueError(
            f"pooling method must be one of {', '.join(POOLING_METHODS)}; got {method!r}"
        )
    eff, se = _effects(estimates, std_errors)
    if method == "hksj":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = random_effects_meta(eff, se, alternative, alpha, knapp_hartung=True, null=null)
        if res.k < 2:
            return MetaResult.empty(res.k, "not pooled", alternative)
        res.method = (
            f"random-effects, DerSimonian-Laird tau2, Hartung-Knapp-Sidik-Jonkman t, k={res.k}"
        )
        return res
    keep = np.isfinite(eff)
    eff, se = eff[keep], se[keep]
    k = int(eff.size)
    if k < 2:
        return MetaResult.empty(k, "not pooled", alternative)
    t = one_sample_t(eff, alternative, alpha, null=null)
    var_means = float(eff.var(ddof=1))
    within = float(np.nanmean(se**2)) if np.isfinite(se).any() else NAN
    tau2 = max(0.0, var_means - within) if np.isfinite(within) else NAN
    i2 = tau2 / var_means if var_means > 0 and np.isfinite(tau2) else 0.0
    return MetaResult(
        **estimate_fields(t),
        tau2=tau2,
        i2=i2,
        k=k,
        method=f"random-effects (experiment as random effect), t on k - 1 = {k - 1} df",
        alternative=alternative,
    )
