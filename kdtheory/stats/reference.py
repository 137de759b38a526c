"""p-values and intervals from a reference distribution: the t with ``df`` degrees of freedom,
or the standard normal when ``df`` is None.

scipy is imported on first use, so that importing :mod:`kdtheory.stats` (and the CLI) stays fast.
"""

from __future__ import annotations

import math

from kdtheory._lazy import lazy_module

_sps = lazy_module("scipy.stats")

__all__ = ["NAN", "interval", "p_value"]

NAN = float("nan")


def p_value(statistic: float, alternative: str, df: float | None = None) -> float:
    """p-value of ``statistic`` for ``alternative`` under the t (``df``) or normal reference.

    Parameters
    ----------
    statistic : float
    alternative : {"two-sided", "greater", "less"}
    df : float or None
        Degrees of freedom of the t reference; None for the standard normal.

    Returns
    -------
    float
        NaN when ``statistic`` or ``df`` is NaN.
    """
    if math.isnan(statistic) or (df is not None and math.isnan(df)):
        return NAN
    dist, args = (_sps.norm, ()) if df is None else (_sps.t, (df,))
    if alternative == "two-sided":
        return float(2.0 * dist.sf(abs(statistic), *args))
    if alternative == "greater":
        return float(dist.sf(statistic, *args))
    return float(dist.cdf(statistic, *args))


def interval(
    estimate: float, se: float, level: float, df: float | None = None
) -> tuple[float, float]:
    """Two-sided interval ``estimate ± crit * se`` at ``level``, with ``crit`` the t (``df``) or
    normal quantile ``1 - (1 - level) / 2``.

    Parameters
    ----------
    estimate, se : float
    level : float
        Two-sided coverage, e.g. 0.95.
    df : float or None
        Degrees of freedom of the t reference; None for the standard normal.

    Returns
    -------
    tuple of float
        ``(low, high)``.
    """
    q = 1.0 - (1.0 - level) / 2.0
    crit = float(_sps.norm.ppf(q) if df is None else _sps.t.ppf(q, df))
    return (estimate - crit * se, estimate + crit * se)
