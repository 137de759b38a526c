"""p-values and intervals from a reference distribution: the t with ``df`` degrees of freedom,
or the standard normal when ``df`` is None.

The distribution functions are scipy.special's (``stdtr``, ``stdtrit``, ``ndtr``, ``ndtri``: the
functions ``scipy.stats.t`` and ``scipy.stats.norm`` evaluate), imported on first use:
``scipy.stats`` itself takes about half a second to import, most of a test command's start-up.
"""

from __future__ import annotations

import math

from kdtheory._lazy import lazy_module

_special = lazy_module("scipy.special")

__all__ = ["NAN", "interval", "p_value", "quantile"]

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
    if alternative == "two-sided":
        return float(2.0 * _cdf(-abs(statistic), df))
    if alternative == "greater":
        return float(_cdf(-statistic, df))
    return float(_cdf(statistic, df))


def _cdf(x: float, df: float | None) -> float:
    """CDF of the t (``df``) or standard normal at ``x`` (the survival function at ``-x``)."""
    return float(_special.ndtr(x) if df is None else _special.stdtr(df, x))


def quantile(q: float, df: float | None = None) -> float:
    """The ``q`` quantile of the t with ``df`` degrees of freedom, or of the standard normal.

    Parameters
    ----------
    q : float
        Probability in (0, 1).
    df : float or None
        Degrees of freedom of the t reference; None for the standard normal.
    """
    return float(_special.ndtri(q) if df is None else _special.stdtrit(df, q))


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
    crit = quantile(q, df)
    return (estimate - crit * se, estimate + crit * se)
