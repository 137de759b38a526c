"""Fidelity figure: agreement on trained-on vs unseen samples and its gap."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from kdtheory.errors import MissingRequirementError
from kdtheory.report.figures.data import (
    _fit_with_slope,
    _kappa,
    _store_palette,
)
from kdtheory.report.figures.grid import panel_grid
from kdtheory.report.figures.layout import (
    KAPPA_LABEL,
    _collect,
    _kappa_axis,
    _log_ticks,
    _select,
    _signed,
    _skip_message,
    _titles,
    _verdict_row,
)
from kdtheory.report.figures.style import _PCT, color_for, paper_style
from kdtheory.store import accessor as _accessor  # noqa: F401 - registers ``Dataset.kd``
from kdtheory.store.arrays import cells, sorted_experiment
from kdtheory.store.runs import as_store


def _fidelities(ds: xr.Dataset, kd: str) -> tuple[np.ndarray, np.ndarray]:
    """Fidelity (top-1 agreement with the teacher, %) of ``kd`` on trained-on and test samples."""
    f_train = ds.kd.agreement(kd, split="train", subset="trained")
    return 100.0 * cells(f_train), 100.0 * cells(ds.kd.agreement(kd))


def _log_fit(x: np.ndarray, log_gap: np.ndarray) -> tuple[float, float]:
    """Mean over seeds of per-seed OLS (intercept, slope) of ``log_gap[:, s]`` on ``x``."""
    slopes, intercepts = [], []
    for s in range(log_gap.shape[1]):
        ok = np.isfinite(log_gap[:, s]) & np.isfinite(x)
        if np.unique(x[ok]).size < 2:
            continue
        b, a = np.polyfit(x[ok], log_gap[ok, s], 1)
        slopes.append(b)
        intercepts.append(a)
    if not slopes:
        return math.nan, math.nan
    return float(np.mean(intercepts)), float(np.mean(slopes))


def fidelity(store: Any, verdict: Any = None, experiments: Sequence[str] | None = None) -> Figure:
    """Fidelity of the KD student on trained-on vs unseen samples, and the gap on log–log axes.

    One column per experiment. Top: top-1 agreement with the teacher (%) on the training samples
    each cell trained on and on the test set (unseen), mean ± 1 standard error over seeds.
    Bottom: the gap
    (points) per cell (small dots) and its mean over seeds, log–log, with the fitted power law
    (per-seed OLS of log gap on log kappa, averaged; a ``fidelity-decay`` verdict's exponent b
    and intercept when given, see :func:`_power_law`) and a reference line of slope −1/2
    through the data's centre. Cells with a gap <= 0 cannot be drawn on a log axis; their
    count is noted.
    """
    store = as_store(store)
    names = _select(store, experiments)
    titles = _titles(store)
    palette = _store_palette(store)
    need = (
        "train_logits",
        "test_logits",
        "in_train",
        "teacher_train_logits",
        "teacher_test_logits",
    )
    rows: list[tuple[str, xr.Dataset, str]] = []
    skipped: dict[str, str] = {}
    for name in names:
        ds = sorted_experiment(store[name])
        row = _verdict_row(verdict, name)
        kd = (row.extra.get("kd_method") if row is not None else None) or ds.kd.pick(
            "kd", temperature=4.0
        )
        missing = [v for v in need if v not in ds]
        if kd not in ds.kd.arms or missing:
            skipped[name] = f"missing {', '.join(missing)}" if missing else "no kd method"
            continue
        rows.append((name, ds, kd))
    if not rows:
        raise MissingRequirementError(_skip_message("the fidelity figure", skipped))
    with paper_style():
        grid = panel_grid(len(rows), quantities=2)
        handles: dict[str, Any] = {}
        for e, (name, ds, kd) in enumerate(rows):
            ax, ax_g = grid.axes(e, 0), grid.axes(e, 1)
            kappa = _kappa(ds)
            f_train, f_test = _fidelities(ds, kd)
            colour = color_for(kd, palette)
            line = grid.band(ax, kappa, f_train, colour, "o", "trained-on", clip=_PCT)
            _collect(handles, line, "trained-on samples")
            line = grid.band(
                ax,
                kappa,
                f_test,
                colour,
                "o",
                "unseen (test) samples",
                linestyle="--",
                clip=_PCT,
                filled=False,
            )
            _collect(handles, line, "unseen (test) samples")
            _kappa_axis(ax, kappa, label=False)
            grid.label(ax, KAPPA_LABEL, "Agreement with\nteacher (%)")

            gap = f_train - f_test
            positive = np.isfinite(gap) & (gap > 0)
            kk = np.broadcast_to(kappa[:, None], gap.shape)
            (h,) = ax_g.plot(
                kk[positive],
                gap[positive],
                ls="none",
                marker="o",
                ms=1.8,
                color=colour,
                alpha=0.35,
                markeredgewidth=0,
                zorder=2,
            )
            _collect(handles, h, "gap of one seed")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                log_gap = np.where(positive, np.log(np.where(positive, gap, 1.0)), np.nan)
                gmean = np.exp(np.nanmean(log_gap, axis=1))
            ok = np.isfinite(gmean)
            if ok.any():
                (h,) = ax_g.plot(
                    kappa[ok], gmean[ok], ls="none", marker="o", color=colour, zorder=3
                )
                _collect(handles, h, "gap, geometric mean")
            x = np.log(kappa)
            a, b = _power_law(_verdict_row(verdict, name), verdict, name, kappa, log_gap)
            notes = []
            if np.isfinite(a) and np.isfinite(b) and ok.sum() >= 1:
                xs = np.linspace(x[ok].min(), x[ok].max(), 50)
                (h,) = ax_g.plot(
                    np.exp(xs),
                    np.exp(a + b * xs),
                    color=colour,
                    lw=1.0,
                    zorder=3,
                    label="power-law fit",
                )
                _collect(handles, h, "power-law fit")
                notes.append(f"fitted slope b = {_signed(b)}")
            if ok.sum() >= 1:
                centre_x = float(np.nanmean(np.repeat(x, gap.shape[1])[positive.ravel()]))
                centre_y = float(np.nanmean(log_gap))
                xs = np.linspace(x[ok].min(), x[ok].max(), 50)
                (h,) = ax_g.plot(
                    np.exp(xs),
                    np.exp(centre_y - 0.5 * (xs - centre_x)),
                    color="#777777",
                    lw=0.9,
                    ls="--",
                    zorder=2,
                )
                _collect(handles, h, "slope −1/2 (reference)")
            n_bad = int((np.isfinite(gap) & (gap <= 0)).sum())
            if n_bad:
                notes.append(f"{n_bad} cell(s) with gap ≤ 0 not shown")
            _kappa_axis(ax_g, kappa, label=False)
            ax_g.set_yscale("log")
            _log_ticks(ax_g.yaxis, gap[positive])
            grid.label(ax_g, KAPPA_LABEL, "Fidelity gap\n(percentage points)")
            grid.title(e, titles[name])
            if notes:
                grid.title(e, "; ".join(notes), quantity=1)
        caption = (
            f"{grid.seed_caption('Top')} Bottom: log–log; dots are single seeds, markers "
            "geometric means over seeds."
        )
        fig = grid.finish(handles, caption, ncol=3)
    return fig


def _power_law(
    row: Any, verdict: Any, name: str, kappa: np.ndarray, log_gap: np.ndarray
) -> tuple[float, float]:
    """Intercept and slope of the power law to draw, on ln(gap in points) vs ln kappa.

    With a ``fidelity-decay`` verdict: its exponent ``b`` (the row's ``extra["b"]``; the row's
    ``estimate`` is the deciding test's number, e.g. the curvature q when lack of fit rejected
    the claim) and the matching intercept, the geometric mean over seeds of the per-seed fits'
    ``a`` (the gap, as a fraction, at the mean ln kappa; the verdict's ``seed_fits`` table).
    Without one: the mean of per-seed OLS fits of ln gap on ln kappa.
    """
    x = np.log(kappa)
    b = math.nan
    if row is not None:
        b = _finite(row.extra.get("b"))
    if not np.isfinite(b):
        a, b = _log_fit(x, log_gap)
        return a, b
    fits = [
        _finite(rec.get("a"))
        for rec in (getattr(verdict, "tables", None) or {}).get("seed_fits", []) or []
        if str(rec.get("experiment")) == str(name)
    ]
    a_seed = np.array([v for v in fits if np.isfinite(v) and v > 0])
    ok = np.isfinite(x)
    if a_seed.size and ok.any():
        centre = float(np.mean(x[ok]))
        return float(np.mean(np.log(100.0 * a_seed))) - b * centre, b
    return _fit_with_slope(np.repeat(x, log_gap.shape[1]), log_gap.ravel(), b), b


def _finite(value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.nan
    return v if np.isfinite(v) else math.nan
