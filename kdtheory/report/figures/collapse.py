"""Neural-collapse figures: NC metrics and CKA with the teacher vs kappa."""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from kdtheory.errors import MissingRequirementError
from kdtheory.report.figures.data import (
    _kappa,
    _objective_map,
    _store_palette,
)
from kdtheory.report.figures.layout import (
    _band,
    _collect,
    _figure,
    _kappa_axis,
    _legend,
    _log_ticks,
    _min_span,
    _row_subfigures,
    _select,
    _skip_message,
    _titles,
    _wrap_title,
)
from kdtheory.report.figures.style import (
    _COLLAPSE_RANGE,
    FIGURE_WIDTH,
    FIGURE_WIDTH_DOUBLE,
    _method_key,
    color_for,
    marker_for,
    paper_style,
)
from kdtheory.store import accessor as _accessor  # noqa: F401 - registers ``Dataset.kd``
from kdtheory.store.arrays import cells, sorted_experiment
from kdtheory.store.runs import as_store

COLLAPSE_METRICS: dict[str, tuple[str, bool]] = {
    "nc1": (r"NC1, $\mathrm{tr}(\Sigma_W \Sigma_B^{+})/K$", True),
    "nc2_equinorm": ("NC2 equinorm", False),
    "nc2_equiangular": ("NC2 equiangularity", False),
    "nc2_max_angle": ("NC2 max-angle", False),
    "nc3": ("NC3 self-duality", False),
    "nc4": ("NC4 (≠ NCC share)", False),
    "cka": ("CKA with teacher", False),
}


def collapse(
    store: Any,
    metrics: Sequence[str] | str = ("nc1", "cka"),
    subset: str = "trained",
    experiments: Sequence[str] | None = None,
) -> Figure:
    """Neural-collapse metrics and feature alignment with the teacher vs kappa, per method.

    One block of panels per experiment, mean and 95% CI over seeds; NC1 is on a log axis
    (geometric means). Up to four metrics make a single-column figure (two panels a row); more
    (``metrics="all"``) a double-column one (:data:`FIGURE_WIDTH_DOUBLE`, four panels a row).
    Metrics from :func:`kdtheory.metrics.collapse_table` on the feature rows each cell trained
    on (``subset="trained"``) or the rest (``"unseen"``).

    Parameters
    ----------
    store : RunStore, mapping or path
    metrics : list of str or "all"
        Keys of :data:`COLLAPSE_METRICS` (default NC1 and CKA).
    subset : {"trained", "unseen"}
    experiments : list of str, optional
    """
    from kdtheory.metrics import collapse_table

    store = as_store(store)
    names = _select(store, experiments)
    titles = _titles(store)
    palette = _store_palette(store)
    keys = list(COLLAPSE_METRICS) if metrics == "all" else [str(m) for m in metrics]
    unknown = [k for k in keys if k not in COLLAPSE_METRICS]
    if unknown:
        raise ValueError(
            f"unknown collapse metric(s) {', '.join(map(repr, unknown))}; choose from "
            f"{', '.join(COLLAPSE_METRICS)} or 'all'"
        )
    if subset not in ("trained", "unseen"):
        raise ValueError(f"subset must be 'trained' or 'unseen', got {subset!r}")
    tables: list[tuple[str, xr.Dataset, xr.Dataset]] = []
    skipped: dict[str, str] = {}
    for name in names:
        ds = sorted_experiment(store[name])
        try:
            table = _collapse_table(store[name], collapse_table)
        except MissingRequirementError:
            missing = [
                v for v in ("features", "classifier_weight", "teacher_features") if v not in ds
            ]
            skipped[name] = f"missing {', '.join(missing) or 'feature variables'}"
            continue
        tables.append((name, ds, table))
    if not tables:
        raise MissingRequirementError(_skip_message("the collapse figure", skipped))
    ncols = 1 if len(keys) == 1 else 2 if len(keys) <= 4 else 4
    nrows_per = math.ceil(len(keys) / ncols)
    width = FIGURE_WIDTH if ncols <= 2 else FIGURE_WIDTH_DOUBLE
    with paper_style():
        fig = _figure((1.45 * nrows_per + 0.25) * len(tables) + 0.45, width=width)
        subfigs = _row_subfigures(fig, len(tables))
        handles: dict[str, Any] = {}
        for sf, (name, ds, table) in zip(subfigs, tables, strict=True):
            axes = list(np.asarray(sf.subplots(nrows_per, ncols, squeeze=False)).ravel())
            for ax in axes[len(keys) :]:
                ax.set_visible(False)
            kappa = _kappa(ds)
            objs = _objective_map(ds)
            methods = sorted(ds.kd.arms, key=lambda m: _method_key(m, objs[m]))
            for j, (ax, key) in enumerate(zip(axes, keys, strict=False)):
                ylabel, log = COLLAPSE_METRICS[key]
                drawn = []
                for m in methods:
                    vals = cells(table[key].sel(arm=m, subset=subset))
                    line = _band(
                        ax,
                        kappa,
                        vals,
                        color_for(m, palette),
                        marker_for(m, objs[m]),
                        m,
                        log=log,
                        clip=_COLLAPSE_RANGE.get(key, (0.0, np.inf)),
                    )
                    _collect(handles, line, m)
                    drawn.append(vals)
                if log:
                    ax.set_yscale("log")
                    _log_ticks(ax.yaxis, np.concatenate([d.ravel() for d in drawn]))
                else:
                    _min_span(ax)
                if key == "cka":
                    lo, hi = ax.get_ylim()
                    ax.set_ylim(max(lo, 0.0), min(hi, 1.0) if hi > 0.05 else hi)
                _kappa_axis(ax, kappa, label=j + ncols >= len(keys))
                ax.set_ylabel(ylabel)
            where = "trained-on" if subset == "trained" else "unseen"
            chars = 56 if ncols <= 2 else 112
            title = _wrap_title(titles[name], chars)
            note = f"({where} feature rows)"
            last = title.rsplit("\n", 1)[-1]
            sf.suptitle(f"{title} {note}" if len(last) + len(note) < chars else f"{title}\n{note}")
        _legend(fig, list(handles.values()), list(handles))
    return fig


_COLLAPSE_CACHE: list[tuple[weakref.ref, xr.Dataset]] = []


def _collapse_table(ds: xr.Dataset, compute: Callable[[xr.Dataset], xr.Dataset]) -> xr.Dataset:
    """:func:`kdtheory.metrics.collapse_table` of ``ds``, remembered (weakly) for the last few
    datasets: the NC1/CKA figure and the all-metrics figure of one report share it."""
    _COLLAPSE_CACHE[:] = [(ref, t) for ref, t in _COLLAPSE_CACHE if ref() is not None]
    for ref, table in _COLLAPSE_CACHE:
        if ref() is ds:
            return table
    table = compute(sorted_experiment(ds))
    _COLLAPSE_CACHE.append((weakref.ref(ds), table))
    del _COLLAPSE_CACHE[:-4]
    return table
