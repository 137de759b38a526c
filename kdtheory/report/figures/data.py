"""What the figures read from a store: methods, kappa, accuracies, mean and its band."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import numpy as np
import xarray as xr

from kdtheory.report.figures.style import _CI_LEVEL, method_palette


def _objective_map(ds: xr.Dataset) -> dict[str, str | None]:
    """Each arm's ``objective`` coordinate (None without one: colours and markers then fall
    back to the label, see :func:`marker_for`; picking arms never guesses)."""
    return {m: ds.kd.objective_of(m) for m in ds.kd.arms}


def _coord(ds: xr.Dataset, name: str, method: str) -> float:
    try:
        value = ds.kd.coord(name, method)
        return math.nan if value is None else float(value)
    except (KeyError, TypeError, ValueError):
        return math.nan


def _kappa(ds: xr.Dataset) -> np.ndarray:
    return np.asarray(ds.kd.kappa.values, dtype=float)


def _test_accuracy(ds: xr.Dataset) -> dict[str, np.ndarray]:
    """Method -> (fraction, seed) test accuracy in percent."""
    acc = ds.kd.accuracy()
    return {m: 100.0 * np.asarray(acc.values[i], dtype=float) for i, m in enumerate(ds.kd.arms)}


def _teacher_accuracy(ds: xr.Dataset) -> float:
    return 100.0 * ds.kd.teacher_accuracy()


def mean_band(values: np.ndarray, level: float = _CI_LEVEL) -> tuple[np.ndarray, ...]:
    """Mean, t-interval bounds (at ``level``, e.g. 0.95) and n over the last axis (seeds), ignoring
    NaN (:func:`mean_se` widened by the t quantile; the figures draw ± 1 s.e.).

    Returns ``(mean, low, high, n)``; bounds are NaN where fewer than 2 values are finite.
    """
    from scipy.special import stdtrit

    mean, low, _, n = mean_se(values)
    q = stdtrit(np.maximum(n - 1, 1), 0.5 + level / 2.0)
    half = q * (mean - low)
    return mean, mean - half, mean + half, n


def mean_se(values: np.ndarray) -> tuple[np.ndarray, ...]:
    """Mean and mean ± 1 standard error over the last axis (seeds), ignoring NaN: the band a
    figure draws (with few seeds a t-interval is mostly the t quantile, 4.3 at n = 3).

    Returns ``(mean, low, high, n)``; bounds are NaN where fewer than 2 values are finite.
    """
    v = np.asarray(values, dtype=float)
    n = np.isfinite(v).sum(axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(v, axis=-1)
        sd = np.nanstd(v, axis=-1, ddof=1)
        se = np.where(n >= 2, sd / np.sqrt(np.maximum(n, 1)), np.nan)
    mean = np.where(n >= 1, mean, np.nan)
    return mean, mean - se, mean + se, n


def _store_palette(store: Mapping[str, xr.Dataset]) -> dict[str, str]:
    objectives: dict[str, str] = {}
    for ds in store.values():
        for m, o in _objective_map(ds).items():
            objectives.setdefault(m, o)
    return method_palette(objectives, objectives)


def _fit_with_slope(x: np.ndarray, y: np.ndarray, slope: float) -> float:
    """Least-squares intercept of ``y = a + slope * x`` over finite pairs."""
    ok = np.isfinite(x) & np.isfinite(y)
    return float(np.mean(y[ok] - slope * x[ok])) if ok.any() else math.nan
