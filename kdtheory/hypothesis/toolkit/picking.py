"""Picking methods (arms) by objective and reading one method's per-cell values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from kdtheory._lazy import lazy_module
from kdtheory.store.arrays import bare, cells
from kdtheory.store.schema import ARM

xr = lazy_module("xarray")  # imported on first use: defining hypotheses must not load xarray


def method_coord(ds: xr.Dataset, name: str, method: str) -> Any:
    """Value of the ``arm`` coordinate ``name`` (e.g. temperature) for ``method``; None when the
    dataset has no such coordinate (``ds.kd.coord``)."""
    return kd(ds).coord(name, method)


def methods_with_objective(ds: xr.Dataset, objective: str) -> list[str]:
    """Method labels whose ``objective`` coordinate equals ``objective`` (store order;
    ``ds.kd.with_objective``)."""
    return kd(ds).with_objective(objective)


def methods_present(ds: xr.Dataset) -> str:
    """``"label (label), kd-T4 (kd)"``: the methods of an experiment with their objectives
    (``ds.kd.describe_arms``)."""
    return kd(ds).describe_arms()


def missing_method(ds: xr.Dataset, needs: str, opts: Mapping[str, Any]) -> str:
    """Why an experiment is skipped: what it needs, the methods options requested, what it has."""
    asked = {k: v for k, v in opts.items() if k.endswith("_method") and v}
    asked_s = f" (options {', '.join(f'{k}={v!r}' for k, v in asked.items())})" if asked else ""
    return f"needs {needs}{asked_s}; it has {methods_present(ds)}"


def pick_method(
    ds: xr.Dataset,
    objective: str,
    requested: str | None = None,
    prefer_temperature: float | None = None,
) -> str | None:
    """The method to use for ``objective``: ``requested`` if given (and of that objective),
    else the one whose temperature is ``prefer_temperature``, else the first; None if absent
    (``ds.kd.pick``)."""
    return kd(ds).pick(objective, requested, temperature=prefer_temperature)


#: The KD temperature a hypothesis uses when its ``kd_method`` option names no method.
KD_TEMPERATURE = 4.0


class SkipExperiment(Exception):  # noqa: N818 - a signal, like pytest's Skipped, not an error
    """Raised inside ``analyse()`` when an experiment lacks what the test needs.

    :class:`kdtheory.hypothesis.template.PooledHypothesis` lists the experiment as skipped with
    the message as the reason, exactly as if ``analyse()`` had returned the message.
    """


def require(method: str | None, ds: xr.Dataset, needs: str, opts: Mapping[str, Any]) -> str:
    """``method`` when one was found, else :class:`SkipExperiment` saying why.

    Parameters
    ----------
    method : str or None
        A picked method (:func:`pick_method`), None when the experiment has none.
    ds : xarray.Dataset
        The experiment.
    needs : str
        What the test needs, in words (``"a kd-shuffled method"``).
    opts : mapping
        The test's options (those ending in ``_method`` are named in the reason).

    Raises
    ------
    SkipExperiment
        With :func:`missing_method`'s reason when ``method`` is None.
    """
    if method is None:
        raise SkipExperiment(missing_method(ds, needs, opts))
    return method


def pick_kd(ds: xr.Dataset, opts: Mapping[str, Any]) -> str | None:
    """The KD method of a test: the ``kd_method`` option when set (and a kd method), else the kd
    method at :data:`KD_TEMPERATURE`, else the first; None when there is none."""
    return pick_method(ds, "kd", opts.get("kd_method"), prefer_temperature=KD_TEMPERATURE)


def kd_and(
    ds: xr.Dataset,
    opts: Mapping[str, Any],
    objective: str = "label",
    *,
    option: str | None = None,
    needs: str | None = None,
) -> tuple[str, str]:
    """The KD method (:func:`pick_kd`) and the method it is compared with.

    Parameters
    ----------
    ds : xarray.Dataset
        The experiment.
    opts : mapping
        The test's options.
    objective : str
        The objective of the comparison method (the first method of it is used).
    option : str, optional
        The option that may name the comparison method (``"ls_method"``).
    needs : str, optional
        The pair in words for the skip reason; default ``"a kd method and a <objective>
        method"``.

    Returns
    -------
    (str, str)
        The KD method and the comparison method.

    Raises
    ------
    SkipExperiment
        When either is missing (the reason names both).
    """
    kd = pick_kd(ds, opts)
    other = pick_method(ds, objective, opts.get(option) if option else None)
    if kd is None or other is None:
        raise SkipExperiment(
            missing_method(ds, needs or f"a kd method and a {objective} method", opts)
        )
    return kd, other


def log_kappa(ds: xr.Dataset) -> np.ndarray:
    """Natural log of ``n_train`` (kappa) per fraction (``ds.kd.log_kappa`` as an array)."""
    return np.asarray(kd(ds).log_kappa.values, dtype=float)


def method_array(ds: xr.Dataset, variable: str, method: str) -> xr.DataArray:
    """``ds[variable]`` of one method (``ds[variable].sel(arm=method)``), without coordinates
    (see :func:`bare`)."""
    return bare(ds[variable].sel({ARM: method}))


def accuracy_points(ds: xr.Dataset, method: str) -> np.ndarray:
    """(fraction, seed) test accuracy of ``method`` in accuracy points (NaN: untrained;
    ``ds.kd.accuracy``)."""
    return 100.0 * cells(kd(ds).accuracy(method))


def kd(ds: xr.Dataset) -> Any:
    """``ds.kd``: the run-store accessor (:class:`kdtheory.store.accessor.KDAccessor`).

    Importing the accessor registers it with xarray; hypotheses are defined (``kdtheory list``)
    without importing xarray, so the toolkit imports it on first use.
    """
    from kdtheory.store import accessor  # noqa: F401 - registers ``Dataset.kd``

    return ds.kd
