"""Table records per fraction and per cell, in the key order the renderings keep."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from kdtheory.hypothesis.toolkit.reductions import mean_ci, nanmean

if TYPE_CHECKING:
    import xarray as xr


def fraction_means(**values: np.ndarray | None) -> dict[str, list[float]]:
    """Columns of per-fraction means over seeds (:func:`nanmean`), one per (fraction, seed)
    array given by keyword, in that order; None arrays are left out.

    For :func:`fraction_records`: ``fraction_means(kd_accuracy=a_kd, label_accuracy=a_label)``.
    """
    return {
        key: [nanmean(row) for row in np.asarray(v, dtype=float)]
        for key, v in values.items()
        if v is not None
    }


def mean_ci_columns(
    values: np.ndarray,
    alpha: float,
    name: str,
    *,
    prefix_ci: bool = False,
    n_key: str | None = "n",
) -> dict[str, list[Any]]:
    """Columns of a (fraction, seed) array's :func:`mean_ci` per fraction, for
    :func:`fraction_records`.

    The intervals are t-intervals over seeds at the level of every interval a report shows,
    ``1 - 2*alpha`` two-sided (:func:`kdtheory.report.format.interval_level`: 90% at 0.05, the
    interval that agrees with a one-sided test at ``alpha``).

    Parameters
    ----------
    values : array (F, S)
    alpha : float
        The significance level; the intervals are two-sided at ``1 - 2*alpha``.
    name : str
        The column of the means.
    prefix_ci : bool
        Name the interval's columns ``<name>_ci_low``/``<name>_ci_high`` rather than
        ``ci_low``/``ci_high``.
    n_key : str or None
        The column of the seed counts (None: no such column).

    Returns
    -------
    dict of str to list
        ``name``, the two interval columns and ``n_key``, in that order.
    """
    stats = [mean_ci(row, 2.0 * alpha) for row in np.asarray(values, dtype=float)]
    ci = f"{name}_ci" if prefix_ci else "ci"
    out: dict[str, list[Any]] = {
        name: [m["mean"] for m in stats],
        f"{ci}_low": [m["ci_low"] for m in stats],
        f"{ci}_high": [m["ci_high"] for m in stats],
    }
    if n_key is not None:
        out[n_key] = [m["n"] for m in stats]
    return out


def fraction_records(
    name: str, ds: xr.Dataset, *columns: Mapping[str, Sequence[Any]]
) -> list[dict[str, Any]]:
    """One table record per fraction of an experiment.

    Parameters
    ----------
    name : str
        The experiment id (each record's ``experiment``).
    ds : xarray.Dataset
        The experiment, in the fraction order of the columns' values (:func:`sorted_experiment`).
    *columns : mapping of str to sequence
        Column name → one value per fraction (:func:`fraction_means`, :func:`mean_ci_columns`,
        or lists the hypothesis builds); merged in order, a later column of the same name
        replacing an earlier one.

    Returns
    -------
    list of dict
        ``experiment``, ``fraction``, ``n_train``, then the columns' values.
    """
    fractions = np.asarray(ds["fraction"].values, dtype=float)
    kappa = np.asarray(ds["n_train"].values)
    merged = {key: list(v) for group in columns for key, v in group.items()}
    for key, v in merged.items():
        if len(v) != fractions.size:
            raise ValueError(f"column {key!r} has {len(v)} values for {fractions.size} fractions")
    return [
        {
            "experiment": name,
            "fraction": float(f),
            "n_train": int(kappa[i]),
            **{key: v[i] for key, v in merged.items()},
        }
        for i, f in enumerate(fractions)
    ]


def cell_records(
    name: str, ds: xr.Dataset, columns: Mapping[str, np.ndarray | None], **keys: Any
) -> list[dict[str, Any]]:
    """One table record per (fraction, seed) cell of an experiment.

    Parameters
    ----------
    name : str
        The experiment id (each record's ``experiment``).
    ds : xarray.Dataset
        The experiment, in the fraction and seed order of the arrays (:func:`sorted_experiment`).
    columns : mapping of str to array (F, S) or None
        Column name → per-cell values, taken as Python scalars of the array's kind (floats stay
        floats, an integer array gives ints); None arrays are left out.
    **keys
        Values the same in every record (``method=...``), after ``experiment``.

    Returns
    -------
    list of dict
        Fraction-major: ``experiment``, ``keys``, ``fraction``, ``n_train``, ``seed``, then the
        columns.
    """
    fractions = np.asarray(ds["fraction"].values, dtype=float)
    kappa = np.asarray(ds["n_train"].values)
    seeds = np.asarray(ds["seed"].values)
    arrays = {key: np.asarray(v) for key, v in columns.items() if v is not None}
    for key, v in arrays.items():
        if v.shape != (fractions.size, seeds.size):
            raise ValueError(
                f"column {key!r} has shape {v.shape}, not (fraction, seed) = "
                f"({fractions.size}, {seeds.size})"
            )
    return [
        {
            "experiment": name,
            **keys,
            "fraction": float(fractions[i]),
            "n_train": int(kappa[i]),
            "seed": int(seeds[j]),
            **{key: v[i, j].item() for key, v in arrays.items()},
        }
        for i in range(fractions.size)
        for j in range(seeds.size)
    ]
