"""Per-seed reductions: means over fractions, per-seed slopes, long form, mean and CI."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable

import numpy as np

from kdtheory.hypothesis.toolkit.options import NAN
from kdtheory.stats import (
    TestResult,
    slope_test,
)


def nanmean(values: Iterable[float]) -> float:
    """Mean of the finite values (NaN when there are none), without a warning."""
    v = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else NAN


def seed_means(values: np.ndarray) -> np.ndarray:
    """One value per seed: the mean over fractions of a (fraction, seed) array.

    With every cell present this is the plain mean over fractions. When some cells are NaN
    (untrained), each seed's value is the mean over *its* fractions of the deviation from the
    fraction's mean across seeds, plus the mean of the fraction means — so a seed missing a
    fraction where the effect is large is not biased by that. Seeds without a finite cell are
    dropped.
    """
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    if ok.all():
        return v.mean(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        frac_means = np.nanmean(v, axis=1)  # (F,)
        grand = np.nanmean(frac_means)
        m = np.nanmean(v - frac_means[:, None], axis=0) + grand
    return m[np.isfinite(m)]


def seed_slopes(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """OLS slope of ``values[:, s]`` on ``x`` for every seed with 2+ distinct finite x."""
    v = np.asarray(values, dtype=float)
    out = []
    for s in range(v.shape[1]):
        ok = np.isfinite(v[:, s]) & np.isfinite(x)
        xs, ys = x[ok], v[ok, s]
        if np.unique(xs).size < 2:
            continue
        xc = xs - xs.mean()
        out.append(float((xc * (ys - ys.mean())).sum() / (xc * xc).sum()))
    return np.asarray(out)


def long_form(values: np.ndarray, x: np.ndarray, seeds: np.ndarray) -> tuple[np.ndarray, ...]:
    """Flatten a (fraction, seed) array into ``y, x, group`` vectors (NaN rows kept)."""
    f, s = values.shape
    return (
        np.asarray(values, dtype=float).ravel(),
        np.repeat(np.asarray(x, dtype=float), s),
        np.tile(np.asarray(seeds), f),
    )


def mean_ci(values: Iterable[float], alpha: float) -> dict[str, float]:
    """Mean, two-sided ``1 - alpha`` t interval and n of the finite values (for tables)."""
    v = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=float)
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return {"mean": NAN, "ci_low": NAN, "ci_high": NAN, "n": 0}
    mean = float(v.mean())
    if n == 1:
        return {"mean": mean, "ci_low": NAN, "ci_high": NAN, "n": 1}
    from scipy.special import stdtrit

    half = float(stdtrit(n - 1, 1.0 - alpha / 2.0)) * float(v.std(ddof=1)) / math.sqrt(n)
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": n}


def seed_slope_test(
    y: np.ndarray, x: np.ndarray, groups: np.ndarray, alternative: str, alpha: float
) -> TestResult:
    """:func:`kdtheory.stats.slope_test` (per-seed OLS slopes, t-test across seeds), with the
    pooled statsmodels summary when :data:`FIT_SUMMARIES` is on."""
    from kdtheory.hypothesis import toolkit  # the switch lives on the package, read per call

    return slope_test(y, x, groups, alternative, alpha, fit_pooled=toolkit.FIT_SUMMARIES)
