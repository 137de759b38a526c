"""Multiplicity: Holm-adjusted p-values and the confidence intervals that agree with them."""

from __future__ import annotations

from typing import Any

import numpy as np

from kdtheory.stats.levels import ci_level
from kdtheory.stats.reference import NAN, interval

__all__ = ["ci_at_level", "holm", "holm_ci_level"]


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


def holm_ci_level(p_raw: float, p_holm: float, alternative: str, alpha: float) -> float:
    """Level of a CI that agrees with a Holm-adjusted p-value.

    Holm multiplies a member's p-value by ``m_eff = p_holm / p_raw`` (its step's factor, or more
    where monotonicity lifts it); the member's CI at the Bonferroni-style level for
    ``alpha / m_eff`` then excludes the null exactly when ``p_holm <= alpha``. Returns
    :func:`~kdtheory.stats.ci_level` when no adjustment applies (``p_holm <= p_raw`` or NaN
    values).
    """
    base = ci_level(alternative, alpha)
    if not (np.isfinite(p_raw) and np.isfinite(p_holm)) or p_raw <= 0 or p_holm <= p_raw:
        return base
    a = alpha / (p_holm / p_raw)  # may lie below any level check_alpha accepts
    return 1.0 - a if alternative == "two-sided" else 1.0 - 2.0 * a


def ci_at_level(estimate: float, se: float, df: float, level: float) -> tuple[float, float]:
    """Two-sided t interval ``estimate ± t_{df} * se`` at ``level`` (NaN when undefined)."""
    if not (np.isfinite(estimate) and np.isfinite(se) and np.isfinite(df)) or df <= 0:
        return (NAN, NAN)
    return interval(estimate, se, level, df)
