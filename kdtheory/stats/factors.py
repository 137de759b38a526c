"""Does a factor change an effect? Interaction tests on per-unit slopes, units replicated.

The data-efficiency slope (KD gain on log kappa) is first fitted per seed; these tests then ask
whether it differs between the levels of a factor (temperature, objective, student, teacher
share) with the right unit of replication:

- :func:`repeated_measures_anova`: levels measured on the same units (every KD temperature is
  trained on the same seeds' subsets, or on the same experiments): the level effect tested
  against the level × unit interaction, with the Greenhouse–Geisser correction of its degrees of
  freedom (levels need not be equally variable or equally correlated);
- :func:`oneway_anova`: each unit at one level (one experiment per student): a one-way F-test;
- :func:`paired_contrasts` / :func:`group_contrasts`: each level against a reference level,
  estimate, standard error and degrees of freedom, for intervals and equivalence tests.

scipy is imported on first use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kdtheory.stats.reference import NAN

__all__ = [
    "Contrast",
    "InteractionTest",
    "group_contrasts",
    "oneway_anova",
    "paired_contrasts",
    "repeated_measures_anova",
]


@dataclass
class InteractionTest:
    """An F-test of "the levels differ".

    Attributes
    ----------
    statistic : float
        The F statistic.
    df_num, df_den : float
        Its degrees of freedom (Greenhouse–Geisser corrected for a repeated-measures design).
    p_value : float
    n_units : int
        Units of replication (seeds or experiments) the test used.
    n_levels : int
    method : str
        The test in words.
    epsilon : float
        Greenhouse–Geisser epsilon (1 for a one-way design, NaN when not computed).
    """

    statistic: float
    df_num: float
    df_den: float
    p_value: float
    n_units: int
    n_levels: int
    method: str
    epsilon: float = NAN

    @classmethod
    def empty(cls, n_units: int, n_levels: int, method: str) -> InteractionTest:
        """A test that could not be computed (too few units or levels)."""
        return cls(NAN, NAN, NAN, NAN, n_units, n_levels, method)

    def significant(self, alpha: float) -> bool:
        """``p < alpha`` (False for a NaN p)."""
        return bool(np.isfinite(self.p_value) and self.p_value < alpha)


@dataclass
class Contrast:
    """One level minus the reference level: estimate, standard error, degrees of freedom.

    Attributes
    ----------
    level, reference : str
    estimate, std_error, df : float
    n : int
        Units behind the estimate.
    """

    level: str
    reference: str
    estimate: float
    std_error: float
    df: float
    n: int

    def interval(self, alpha: float) -> tuple[float, float]:
        """Two-sided ``1 - alpha`` t interval."""
        from scipy import stats

        if not (np.isfinite(self.std_error) and self.df > 0):
            return NAN, NAN
        half = float(stats.t.ppf(1 - alpha / 2, self.df)) * self.std_error
        return self.estimate - half, self.estimate + half

    def equivalence_p(self, margin: float) -> float:
        """TOST p of ``|difference| < margin`` (the larger of the two one-sided t p-values)."""
        from scipy import stats

        if not (np.isfinite(self.std_error) and self.std_error > 0 and self.df > 0):
            return NAN
        lower = float(stats.t.sf((self.estimate + margin) / self.std_error, self.df))
        upper = float(stats.t.cdf((self.estimate - margin) / self.std_error, self.df))
        return max(lower, upper)


def _complete_rows(matrix: np.ndarray) -> np.ndarray:
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2:
        raise ValueError(f"expected a (unit, level) matrix, got shape {m.shape}")
    return m[np.isfinite(m).all(axis=1)]


def repeated_measures_anova(matrix: np.ndarray) -> InteractionTest:
    """Repeated-measures one-way ANOVA of a (unit, level) matrix, Greenhouse–Geisser corrected.

    ``F = MS_level / MS_(level x unit)``; both degrees of freedom are multiplied by the
    Greenhouse–Geisser epsilon estimated from the double-centred covariance of the levels, so
    the test keeps its level when the levels' variances or correlations differ (sphericity
    fails). Units with a missing level are dropped.

    Parameters
    ----------
    matrix : array_like, shape (units, levels)
        E.g. per-seed slopes, one column per temperature.

    Returns
    -------
    InteractionTest
        NaN numbers with fewer than 2 complete units or 2 levels.
    """
    from scipy import stats

    m = _complete_rows(matrix)
    n, k = m.shape
    method = "repeated-measures ANOVA, Greenhouse-Geisser corrected"
    if n < 2 or k < 2:
        return InteractionTest.empty(n, k, method)
    grand = m.mean()
    ss_level = n * float(((m.mean(axis=0) - grand) ** 2).sum())
    resid = m - m.mean(axis=0) - m.mean(axis=1, keepdims=True) + grand
    ss_error = float((resid**2).sum())
    df1, df2 = k - 1, (k - 1) * (n - 1)
    if ss_error <= 0:
        return InteractionTest.empty(n, k, method)
    f = (ss_level / df1) / (ss_error / df2)
    cov = np.cov(m, rowvar=False)
    centre = np.eye(k) - np.full((k, k), 1.0 / k)
    dc = centre @ cov @ centre
    denom = (k - 1) * float(np.trace(dc @ dc))
    eps = float(np.trace(dc)) ** 2 / denom if denom > 0 else 1.0
    eps = min(1.0, max(1.0 / (k - 1), eps))
    p = float(stats.f.sf(f, eps * df1, eps * df2))
    return InteractionTest(f, eps * df1, eps * df2, p, n, k, method, eps)


def oneway_anova(values: Sequence[float], groups: Sequence[str]) -> InteractionTest:
    """One-way ANOVA F-test of ``values`` by ``groups`` (each unit in one group).

    Parameters
    ----------
    values : array_like
        One value per unit (a seed's slope, or an experiment's mean slope); NaN dropped.
    groups : array_like
        The level of each unit.

    Returns
    -------
    InteractionTest
        NaN numbers unless there are 2 levels and more units than levels.
    """
    from scipy import stats

    v = np.asarray(values, dtype=float)
    g = np.asarray(groups, dtype=object)
    keep = np.isfinite(v)
    v, g = v[keep], g[keep]
    levels = list(dict.fromkeys(g.tolist()))
    n, k = v.size, len(levels)
    method = "one-way ANOVA F-test"
    if k < 2 or n <= k:
        return InteractionTest.empty(n, k, method)
    means = {lv: float(v[g == lv].mean()) for lv in levels}
    grand = float(v.mean())
    ss_between = sum((g == lv).sum() * (means[lv] - grand) ** 2 for lv in levels)
    ss_within = float(sum(((v[g == lv] - means[lv]) ** 2).sum() for lv in levels))
    df1, df2 = k - 1, n - k
    if ss_within <= 0:
        return InteractionTest.empty(n, k, method)
    f = (ss_between / df1) / (ss_within / df2)
    return InteractionTest(f, df1, df2, float(stats.f.sf(f, df1, df2)), n, k, method, 1.0)


def paired_contrasts(matrix: np.ndarray, labels: Sequence[str]) -> list[Contrast]:
    """Each level minus the first, paired by unit (row): mean difference, ``sd / sqrt(n)``,
    ``n - 1`` df. Units with a missing level are dropped."""
    m = _complete_rows(matrix)
    n = m.shape[0]
    out = []
    for j in range(1, m.shape[1]):
        d = m[:, j] - m[:, 0]
        se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else NAN
        est = float(d.mean()) if n else NAN
        out.append(Contrast(str(labels[j]), str(labels[0]), est, se, float(n - 1), n))
    return out


def group_contrasts(
    values: Sequence[float], groups: Sequence[str], labels: Sequence[str]
) -> list[Contrast]:
    """Each level's mean minus the first level's, with the pooled within-level variance of
    :func:`oneway_anova` (``n - k`` df)."""
    v = np.asarray(values, dtype=float)
    g = np.asarray(groups, dtype=object)
    keep = np.isfinite(v)
    v, g = v[keep], g[keep]
    present = [lv for lv in labels if (g == lv).any()]
    n, k = v.size, len(present)
    df = n - k
    ss = sum(float(((v[g == lv] - v[g == lv].mean()) ** 2).sum()) for lv in present)
    mse = ss / df if df > 0 else NAN
    out = []
    if not present:
        return out
    ref = present[0]
    n_ref = int((g == ref).sum())
    for lv in present[1:]:
        n_l = int((g == lv).sum())
        est = float(v[g == lv].mean() - v[g == ref].mean())
        se = math.sqrt(mse * (1 / n_l + 1 / n_ref)) if np.isfinite(mse) else NAN
        out.append(Contrast(str(lv), str(ref), est, se, float(df), n_l + n_ref))
    return out
