"""Array helpers on one experiment of a run store: without coordinates, in fraction order, per cell.

The hypothesis toolkit, the ``ds.kd`` accessor and the figures all read experiments through these,
so there is one definition of each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from kdtheory._lazy import lazy_module

if TYPE_CHECKING:
    import xarray

xr = lazy_module("xarray")  # imported on first use: defining hypotheses must not load xarray

__all__ = ["bare", "cells", "sorted_experiment"]


def bare(da: xarray.DataArray) -> xarray.DataArray:
    """``da`` without coordinates (dims kept), for fast metrics within one experiment.

    Every variable of one experiment Dataset shares the same coordinates, so metrics combining
    them by dim name need no alignment; skipping it makes xarray several times faster. A
    Dask-backed variable (a store opened with ``chunks``) stays lazy.
    """
    data = da.data if getattr(da, "chunks", None) is not None else np.asarray(da.values)
    return xr.DataArray(data, dims=da.dims)


def cells(da: xarray.DataArray) -> np.ndarray:
    """A (fraction, seed) float array of a per-cell quantity without an ``arm`` dim."""
    return np.asarray(da.transpose("fraction", "seed").values, dtype=float)


def sorted_experiment(ds: xarray.Dataset) -> xarray.Dataset:
    """The experiment with fractions in ascending order (unchanged when already sorted)."""
    fr = np.asarray(ds["fraction"].values, dtype=float)
    order = np.argsort(fr, kind="stable")
    if np.array_equal(order, np.arange(fr.size)):
        return ds
    return ds.isel(fraction=order)
