"""Stores larger than memory: recognise lazily opened (Dask-backed) variables and reduce them
one chunk of cells at a time.

``open_runs(path, chunks=...)`` returns experiments whose bulk variables (``train_logits``,
``test_logits``, ``features``) are Dask arrays chunked along ``arm``, ``fraction`` and ``seed``
and whole along the sample and class dims. Every reduction kdtheory makes over such a variable
goes through :func:`reduce_cells` (the metrics through :func:`reduce_by_blocks`), so only a few
chunks of cells are in memory at once, whatever the size of the store. In-memory (NumPy)
variables take the same code paths as one block.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from kdtheory._lazy import lazy_module

xr = lazy_module("xarray")  # imported on first use: the metrics module imports this one

__all__ = [
    "CELL_CHUNKS",
    "DASK_EXTRA",
    "dask_installed",
    "is_lazy",
    "reduce_by_blocks",
    "reduce_cells",
    "require_dask",
]

#: the default chunking of a lazily opened experiment: one cell per chunk
CELL_CHUNKS: dict[str, int] = {"arm": 1, "fraction": 1, "seed": 1}
#: the extra that installs Dask, named in errors
DASK_EXTRA = "pip install 'kdtheory[cluster]' (or pip install 'dask[array]')"


def is_lazy(obj: Any) -> bool:
    """True when ``obj`` (a DataArray, Variable or Dataset) holds Dask arrays."""
    if isinstance(obj, xr.Dataset):
        return any(is_lazy(v) for v in obj.variables.values())
    return getattr(obj, "chunks", None) is not None


def dask_installed() -> bool:
    """Whether Dask can be imported (checked without importing it)."""
    import importlib.util

    return importlib.util.find_spec("dask") is not None


def require_dask(what: str) -> None:
    """Raise a clear error unless Dask's array module can be imported.

    Raises
    ------
    StoreError
        Naming ``what`` needs Dask and how to install it.
    """
    from kdtheory.errors import StoreError

    try:
        import dask.array  # noqa: F401
    except ImportError:
        raise StoreError(f"{what} needs Dask, which is not installed: {DASK_EXTRA}.") from None


def reduce_cells(
    var: xr.DataArray,
    keep: Sequence[str],
    reduce: Callable[[dict[str, slice], np.ndarray], np.ndarray],
    extra: int | None = None,
) -> np.ndarray:
    """Reduce every cell of ``var`` to a few numbers, one chunk of cells at a time.

    Parameters
    ----------
    var : xarray.DataArray
        A variable, NumPy- or Dask-backed, whose dims include ``keep``; along every other dim a
        lazy variable must be a single chunk (as :func:`kdtheory.store.runs.open_runs` chunks).
    keep : sequence of str
        The dims kept (cell dims such as ``arm, fraction, seed``); ``var`` is transposed to put
        them first.
    reduce : callable
        ``reduce(where, block)``: ``block`` holds the values of a chunk of cells (``keep`` dims
        first, then the others); ``where`` says where the chunk lies along ``keep`` (``isel``
        slices; empty for a NumPy-backed variable: the whole of it). It returns an array of
        shape ``block.shape[:len(keep)]``, plus ``(extra,)`` when ``extra`` is given.
    extra : int, optional
        Length of one trailing result axis (several numbers per cell).

    Returns
    -------
    numpy.ndarray
        Shape ``[var.sizes[d] for d in keep]`` (+ ``(extra,)``).

    Notes
    -----
    A lazy variable is reduced in one Dask computation of ``map_blocks``: the blocks are loaded
    and reduced by Dask's scheduler a few at a time and only their small results are kept, so
    memory is bounded by a few chunks of cells, not by the store.
    """
    var = var.transpose(*keep, ...)
    if not is_lazy(var):
        return np.asarray(reduce({}, np.asarray(var.values)))
    n = len(keep)
    data = var.data

    def run(block: np.ndarray, block_info: Any = None) -> np.ndarray:
        location = block_info[0]["array-location"]
        where = {d: slice(*location[i]) for i, d in enumerate(keep)}
        return np.asarray(reduce(where, block), dtype=np.float64)

    inner = list(range(n, var.ndim))
    chunks = tuple(data.chunks[:n])
    if extra is None:
        out = data.map_blocks(run, drop_axis=inner, chunks=chunks, dtype=np.float64)
    else:
        out = data.map_blocks(
            run, drop_axis=inner[1:], chunks=(*chunks, (extra,)), dtype=np.float64
        )
    return np.asarray(out.compute())


def reduce_by_blocks(func: Callable[..., xr.DataArray]) -> Callable[..., xr.DataArray]:
    """Make a per-cell reduction over ``sample_dim`` (and ``class``) run one chunk of cells at a
    time when an input is Dask-backed.

    ``func`` takes DataArrays and a ``sample_dim`` argument and returns a DataArray whose dims
    are the inputs' other dims (``arm``, ``fraction``, ``seed``, ...). When no input is lazy it
    is called as is. Otherwise the largest lazy input's chunks along those other dims are
    walked with :func:`reduce_cells`: each block of every input is selected and passed to
    ``func`` as an in-memory DataArray, and the results are put together, so only a few chunks
    of cells are in memory at once.
    """
    signature = inspect.signature(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> xr.DataArray:
        bound = signature.bind(*args, **kwargs)
        arrays = {k: v for k, v in bound.arguments.items() if isinstance(v, xr.DataArray)}
        lazy = [v for v in arrays.values() if is_lazy(v)]
        if not lazy:
            return func(*args, **kwargs)
        lead = max(lazy, key=lambda v: v.size)
        inner = {bound.arguments.get("sample_dim"), "class"}
        outer = [d for d in lead.dims if d not in inner]
        lead_name = next(k for k, v in arrays.items() if v is lead)
        lead = lead.transpose(*outer, ...)
        first: list[xr.DataArray] = []

        def reduce(where: dict[str, slice], block: np.ndarray) -> np.ndarray:
            call = dict(bound.arguments)
            for name, value in arrays.items():
                if name == lead_name:
                    call[name] = xr.DataArray(block, dims=lead.dims)
                    continue
                sel = {d: s for d, s in where.items() if d in value.dims}
                part = value.isel(sel) if sel else value
                call[name] = part.compute() if is_lazy(part) else part
            result = func(**call)
            if not first:
                first.append(result)
            return result.transpose(*outer).values

        values = reduce_cells(lead, outer, reduce)
        name = first[0].name if first else None
        coords = {n: c for n, c in lead.coords.items() if set(c.dims) <= set(outer)}
        return xr.DataArray(values, dims=outer, coords=coords, name=name)

    return wrapper
