"""Neural-collapse figures: NC metrics and CKA with the teacher vs kappa."""

from __future__ import annotations

from collections.abc import Sequence
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
from kdtheory.report.figures.grid import panel_grid
from kdtheory.report.figures.layout import (
    KAPPA_LABEL,
    _kappa_axis,
    _log_ticks,
    _min_span,
    _select,
    _skip_message,
    _titles,
)
from kdtheory.report.figures.style import (
    _COLLAPSE_RANGE,
    paper_style,
)
from kdtheory.store import accessor as _accessor  # noqa: F401 - registers ``Dataset.kd``
from kdtheory.store.arrays import cells, sorted_experiment
from kdtheory.store.runs import as_store

#: Collapse metrics: (y label, log scale). Every one is dimensionless; the labels name them
#: short enough for a panel 1 in tall (the captions define them).
COLLAPSE_METRICS: dict[str, tuple[str, bool]] = {
    "nc1": ("NC1 (within /\nbetween classes)", True),
    "nc2_equinorm": ("NC2 equinorm", False),
    "nc2_equiangular": ("NC2 equiangularity", False),
    "nc2_max_angle": ("NC2 max-angle", False),
    "nc3": ("NC3 self-duality", False),
    "nc4": ("NC4 share ≠ NCC", False),
    "cka": ("CKA with teacher", False),
}


def collapse(
    store: Any,
    metrics: Sequence[str] | str = ("nc1", "cka"),
    subset: str = "trained",
    experiments: Sequence[str] | None = None,
) -> Figure:
    """Neural-collapse metrics and feature alignment with the teacher vs kappa, per method.

    One column per experiment and one row per metric (:func:`.grid.panel_grid`), mean ± 1
    standard error over seeds; NC1 is on a log axis (geometric means). One experiment makes a
    single-column figure, more a double-column one (:data:`FIGURE_WIDTH_DOUBLE`).
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
            table = ds.kd.collapse_table()
        except MissingRequirementError:
            missing = [
                v for v in ("features", "classifier_weight", "teacher_features") if v not in ds
            ]
            skipped[name] = f"missing {', '.join(missing) or 'feature variables'}"
            continue
        tables.append((name, ds, table))
    if not tables:
        raise MissingRequirementError(_skip_message("the collapse figure", skipped))
    with paper_style():
        grid = panel_grid(len(tables), quantities=len(keys))
        handles: dict[str, Any] = {}
        for e, (name, ds, table) in enumerate(tables):
            kappa = _kappa(ds)
            objs = _objective_map(ds)
            for q, key in enumerate(keys):
                ax = grid.axes(e, q)
                ylabel, log = COLLAPSE_METRICS[key]
                values = {m: cells(table[key].sel(arm=m, subset=subset)) for m in ds.kd.arms}
                grid.method_bands(
                    ax,
                    kappa,
                    values,
                    objs,
                    palette,
                    handles,
                    log=log,
                    clip=_COLLAPSE_RANGE.get(key, (0.0, np.inf)),
                )
                drawn = list(values.values())
                if log:
                    ax.set_yscale("log")
                    _log_ticks(ax.yaxis, np.concatenate([d.ravel() for d in drawn]))
                else:
                    _min_span(ax)
                    lo, hi = ax.get_ylim()
                    if lo < 0 <= _COLLAPSE_RANGE.get(key, (0.0, np.inf))[0]:  # no negative NC
                        ax.set_ylim(0.0, hi if hi > 0 else 1e-3)
                if key == "cka":
                    lo, hi = ax.get_ylim()
                    ax.set_ylim(max(lo, 0.0), min(hi, 1.0) if hi > 0.05 else hi)
                _kappa_axis(ax, kappa, label=False)
                grid.label(ax, KAPPA_LABEL, ylabel)
            grid.title(e, titles[name])
        where = (
            "the feature rows each student trained on"
            if subset == "trained"
            else ("feature rows the students did not train on")
        )
        logs = [COLLAPSE_METRICS[k][0].split(" ")[0] for k in keys if COLLAPSE_METRICS[k][1]]
        on_log = f"; {', '.join(logs)}: geometric mean, s.e. of the log" if logs else ""
        caption = f"{grid.seed_caption().rstrip('.')}{on_log}. Metrics on {where}."
        fig = grid.finish(handles, caption)
    return fig
