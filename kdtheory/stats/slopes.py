"""The slope of ``y`` on ``x`` tested with seeds as the unit of replication.

pandas and statsmodels are imported on first use.
"""

from __future__ import annotations

import warnings
from functools import partial
from typing import Any

import numpy as np

from kdtheory.stats.levels import check_alternative
from kdtheory.stats.results import DeferredText, TestResult
from kdtheory.stats.tests import one_sample_t

__all__ = ["slope_test"]


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
        its statsmodels text summary in ``summary`` (a note instead when it cannot be fitted), as
        a :class:`~kdtheory.stats.DeferredText`: fitted when the text is first used.

    Returns
    -------
    TestResult
        NaN numbers unless at least 2 groups have at least 2 distinct ``x`` values; ``n`` is
        the number of groups with a slope.
    """
    check_alternative(alternative, alpha)
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
    summary: str | DeferredText = ""
    if fit_pooled:
        summary = DeferredText(partial(_pooled_cluster_ols, y_arr, x_arr, codes))
    if len(slopes) < 2:
        return TestResult.empty(len(slopes), alternative, method, summary)
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
        # the two modules, not statsmodels.api: that one also imports the formula, graphics and
        # time-series packages (about 0.5 s, most of this command's statsmodels cost)
        from statsmodels.regression.linear_model import OLS
        from statsmodels.tools.tools import add_constant

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = OLS(y, add_constant(x, has_constant="add"))
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
