"""Accuracy figures: accuracy vs kappa, KD's gain and data multiplier, method gaps."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from kdtheory.errors import MissingRequirementError
from kdtheory.report.figures.data import (
    _coord,
    _fit_with_slope,
    _kappa,
    _objective_map,
    _store_palette,
    _teacher_accuracy,
    _test_accuracy,
)
from kdtheory.report.figures.grid import panel_grid
from kdtheory.report.figures.layout import (
    KAPPA_LABEL,
    _collect,
    _fmt_count,
    _kappa_axis,
    _log_ticks,
    _select,
    _signed,
    _skip_message,
    _titles,
    _verdict_row,
)
from kdtheory.report.figures.style import _PCT, color_for, marker_for, paper_style
from kdtheory.store import accessor as _accessor  # noqa: F401 - registers ``Dataset.kd``
from kdtheory.store.arrays import sorted_experiment
from kdtheory.store.runs import as_store


def accuracy_curves(
    store: Any, experiments: Sequence[str] | None = None, teacher: bool = True
) -> Figure:
    """Test accuracy vs kappa (log axis) per method: mean ± 1 standard error over seeds.

    One panel per experiment; the teacher's test accuracy is a dashed grey line.

    Parameters
    ----------
    store : RunStore, mapping of str to xarray.Dataset, or path
    experiments : list of str, optional
        Experiments to draw (default all).
    teacher : bool
        Draw the teacher's accuracy.
    """
    store = as_store(store)
    names = _select(store, experiments)
    titles = _titles(store)
    palette = _store_palette(store)
    with paper_style():
        grid = panel_grid(len(names))
        handles: dict[str, Any] = {}
        for i, name in enumerate(names):
            ax = grid.axes(i)
            ds = sorted_experiment(store[name])
            kappa = _kappa(ds)
            grid.method_bands(
                ax, kappa, _test_accuracy(ds), _objective_map(ds), palette, handles, clip=_PCT
            )
            if teacher:
                t_acc = _teacher_accuracy(ds)
                if np.isfinite(t_acc):
                    line = ax.axhline(t_acc, color="#666666", lw=0.8, ls="--", zorder=2)
                    _collect(handles, line, "teacher")
            _kappa_axis(ax, kappa, label=False)
            grid.label(ax, KAPPA_LABEL, "Test accuracy (%)")
            grid.title(i, titles[name])
        fig = grid.finish(handles)
    return fig


def kd_gain(store: Any, verdict: Any = None, experiments: Sequence[str] | None = None) -> Figure:
    """KD's gain over label training vs kappa, and the data multiplier.

    One column per experiment. Top: KD − label test accuracy (points) per seed-paired cell,
    mean ± 1 standard error over seeds; with a ``data-efficiency`` verdict, its fitted slope on
    log kappa.
    Bottom: the data multiplier, kappa*/kappa, where kappa* is the number of labelled samples
    at which label training's mean accuracy (interpolated in log kappa) reaches KD's; open
    triangles are bounds where KD lies outside the observed label curve.

    Parameters
    ----------
    store : RunStore, mapping or path
    verdict : Verdict, optional
        A ``data-efficiency`` verdict on this store: its methods, slopes and data-multiplier
        table are used.
    experiments : list of str, optional
    """
    store = as_store(store)
    names = _select(store, experiments)
    titles = _titles(store)
    palette = _store_palette(store)
    rows: list[tuple[str, xr.Dataset, str, str]] = []
    skipped: dict[str, str] = {}
    for name in names:
        ds = sorted_experiment(store[name])
        row = _verdict_row(verdict, name)
        kd = (row.extra.get("kd_method") if row is not None else None) or ds.kd.pick(
            "kd", temperature=4.0
        )
        label = (row.extra.get("label_method") if row is not None else None) or ds.kd.pick("label")
        if kd not in ds.kd.arms or label not in ds.kd.arms:
            skipped[name] = "needs a kd and a label method"
            continue
        rows.append((name, ds, kd, label))
    if not rows:
        raise MissingRequirementError(_skip_message("the KD gain", skipped))
    mult_tables = _multiplier_records(verdict)
    with paper_style():
        grid = panel_grid(len(rows), quantities=2)
        handles: dict[str, Any] = {}
        for e, (name, ds, kd, label) in enumerate(rows):
            ax, ax_m = grid.axes(e, 0), grid.axes(e, 1)
            kappa = _kappa(ds)
            acc = _test_accuracy(ds)
            gain = acc[kd] - acc[label]
            colour = color_for(kd, palette)
            ax.axhline(0.0, color="#444444", lw=0.6, zorder=1)
            line = grid.band(ax, kappa, gain, colour, marker_for(kd, "kd"), f"{kd} − {label}")
            _collect(handles, line, f"{kd} − {label} (mean ± 1 s.e.)")
            row = _verdict_row(verdict, name)
            slope = ""
            if row is not None and np.isfinite(row.estimate):
                x = np.log(kappa)
                a = _fit_with_slope(np.repeat(x, gain.shape[1]), gain.ravel(), row.estimate)
                xs = np.linspace(x.min(), x.max(), 50)
                (fit,) = ax.plot(np.exp(xs), a + row.estimate * xs, color=colour, lw=0.8, ls=":")
                _collect(handles, fit, "fitted slope on ln κ")
                slope = f"slope {_signed(row.estimate)} points per ln κ"
            _kappa_axis(ax, kappa, label=False)
            grid.label(ax, KAPPA_LABEL, "KD − label accuracy\n(percentage points)")
            records = mult_tables.get(name) or _multiplier(kappa, acc[label], acc[kd])
            _draw_multiplier(ax_m, records, colour, kappa, handles)
            _kappa_axis(ax_m, kappa, label=False)
            grid.label(ax_m, KAPPA_LABEL, "Data multiplier κ*/κ")
            grid.title(e, titles[name], extra=slope)
        caption = grid.seed_caption("Top")
        fig = grid.finish(
            handles, caption + " Bottom: from the mean curves; open triangles are bounds.", ncol=2
        )
    return fig


def _multiplier_records(verdict: Any) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    tables = getattr(verdict, "tables", None) or {}
    for rec in tables.get("data_multiplier", []) or []:
        out.setdefault(str(rec.get("experiment")), []).append(rec)
    return out


def _multiplier(kappa: np.ndarray, label_acc: np.ndarray, kd_acc: np.ndarray) -> list[dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        la = np.nanmean(label_acc, axis=1)
        ka = np.nanmean(kd_acc, axis=1)
    from kdtheory.hypothesis.toolkit import data_multiplier

    return data_multiplier(kappa, la, ka)


def _draw_multiplier(
    ax: Any,
    records: Sequence[Mapping[str, Any]],
    colour: str,
    kappa: np.ndarray,
    handles: dict[str, Any],
) -> None:
    def num(v: Any) -> float:
        try:
            return float(v)
        except (TypeError, ValueError):
            return math.nan

    k = np.array([num(r.get("n_train")) for r in records])
    mult = np.array([num(r.get("multiplier")) for r in records])
    bound = np.array([num(r.get("multiplier_bound")) for r in records])
    status = [str(r.get("status", "")) for r in records]
    ax.axhline(1.0, color="#444444", lw=0.6, zorder=1)
    ok = np.isfinite(mult) & np.isfinite(k)
    if ok.any():
        (line,) = ax.plot(k[ok], mult[ok], color=colour, marker="o", zorder=3)
        _collect(handles, line, "data multiplier (interpolated)")
    above = np.array([s.startswith("above") for s in status]) & np.isfinite(bound)
    below = np.array([s.startswith("below") for s in status]) & np.isfinite(bound)
    for mask, marker, label in (
        (above, "^", "lower bound (KD above label curve)"),
        (below, "v", "upper bound (KD below label curve)"),
    ):
        if mask.any():
            (h,) = ax.plot(
                k[mask],
                bound[mask],
                ls="none",
                marker=marker,
                color=colour,
                markerfacecolor="white",
                markeredgewidth=0.8,
                zorder=3,
            )
            _collect(handles, h, label)
    values = np.concatenate([mult[ok], bound[above | below], [1.0]])
    values = values[np.isfinite(values) & (values > 0)]
    ax.set_yscale("log")
    if values.size:
        lo, hi = values.min(), values.max()
        ax.set_ylim(lo / 1.4, hi * 1.4)
        _log_ticks(ax.yaxis, np.array([lo / 1.4, hi * 1.4]))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"×{_fmt_count(v)}"))
    if not (ok.any() or above.any() or below.any()):
        ax.set_title("no multiplier: too few label points")


_GAP_COMPARATORS = (("label", "label"), ("ls", "label smoothing"), ("kd-shuffled", "shuffled KD"))


def method_gaps(store: Any, experiments: Sequence[str] | None = None) -> Figure:
    """KD's accuracy advantage over label training, label smoothing and shuffled KD vs kappa.

    One panel per experiment; each line is KD − comparator test accuracy (points), paired by
    seed, mean ± 1 standard error over seeds, in the comparator's colour. KD is the ``kd``
    method with temperature 4 (else the first); the comparators are the first method of each
    objective (the shuffled-KD method with KD's temperature when there is one).
    """
    store = as_store(store)
    names = _select(store, experiments)
    titles = _titles(store)
    palette = _store_palette(store)
    usable: list[tuple[str, xr.Dataset, str, list[tuple[str, str]]]] = []
    skipped: dict[str, str] = {}
    for name in names:
        ds = sorted_experiment(store[name])
        kd = ds.kd.pick("kd", temperature=4.0)
        if kd is None:
            skipped[name] = "no kd method"
            continue
        t_kd = _coord(ds, "temperature", kd)
        comps = []
        for obj, desc in _GAP_COMPARATORS:
            pref = t_kd if obj == "kd-shuffled" and np.isfinite(t_kd) else None
            m = ds.kd.pick(obj, temperature=pref)
            if m is not None:
                comps.append((m, desc))
        if not comps:
            skipped[name] = "no label, ls or kd-shuffled method to compare KD with"
            continue
        usable.append((name, ds, kd, comps))
    if not usable:
        raise MissingRequirementError(_skip_message("the method gaps", skipped))
    with paper_style():
        grid = panel_grid(len(usable))
        handles: dict[str, Any] = {}
        for i, (name, ds, kd, comps) in enumerate(usable):
            ax = grid.axes(i)
            kappa = _kappa(ds)
            acc = _test_accuracy(ds)
            ax.axhline(0.0, color="#444444", lw=0.6, zorder=1)
            objs = _objective_map(ds)
            for m, desc in comps:
                text = f"KD − {desc}"
                line = grid.band(
                    ax, kappa, acc[kd] - acc[m], color_for(m, palette), marker_for(m, objs[m]), text
                )
                _collect(handles, line, text)
            _kappa_axis(ax, kappa, label=False)
            grid.label(ax, KAPPA_LABEL, "KD accuracy advantage\n(percentage points)")
            grid.title(i, titles[name])
        kds = ", ".join(sorted({kd for _, _, kd, _ in usable}))
        fig = grid.finish(handles, f"{grid.seed_caption()} KD: {kds}.", ncol=3)
    return fig
