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
from kdtheory.report.figures.layout import (
    _band,
    _collect,
    _figure,
    _kappa_axis,
    _legend,
    _log_ticks,
    _note,
    _row_subfigures,
    _select,
    _signed,
    _skip_message,
    _titles,
    _verdict_row,
    _wrap_title,
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

    One row per experiment. Left: top-1 agreement with the teacher (%) on the training samples
    each cell trained on and on the test set (unseen), mean and 95% CI over seeds. Right: the gap
    (points) per cell (small dots) and its mean over seeds, log–log, with the fitted power law
    (per-seed OLS of log gap on log kappa, averaged; a ``fidelity-decay`` verdict's slope and
    intercept when given) and a reference line of slope −1/2 through the data's centre. Cells
    with a gap <= 0 cannot be drawn on a log axis; their count is noted.
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
        fig = _figure(1.75 * len(rows) + 0.45)
        subfigs = _row_subfigures(fig, len(rows))
        handles: dict[str, Any] = {}
        for sf, (name, ds, kd) in zip(subfigs, rows, strict=True):
            ax, ax_g = sf.subplots(1, 2)
            kappa = _kappa(ds)
            f_train, f_test = _fidelities(ds, kd)
            colour = color_for(kd, palette)
            line = _band(ax, kappa, f_train, colour, "o", "trained-on", clip=_PCT)
            _collect(handles, line, "trained-on")
            line = _band(
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
            _collect(handles, line, "unseen (test)")
            _kappa_axis(ax, kappa)
            ax.set_ylabel(f"Fidelity of {kd} (% agree)")

            gap = f_train - f_test
            positive = np.isfinite(gap) & (gap > 0)
            kk = np.broadcast_to(kappa[:, None], gap.shape)
            ax_g.plot(
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
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                log_gap = np.where(positive, np.log(np.where(positive, gap, 1.0)), np.nan)
                gmean = np.exp(np.nanmean(log_gap, axis=1))
            ok = np.isfinite(gmean)
            if ok.any():
                (h,) = ax_g.plot(
                    kappa[ok], gmean[ok], ls="none", marker="o", color=colour, zorder=3
                )
                _collect(handles, h, "gap (geometric mean)")
            x = np.log(kappa)
            row = _verdict_row(verdict, name)
            if row is not None and np.isfinite(row.estimate):
                b = float(row.estimate)
                a = row.extra.get("intercept_a")
                a = float(a) if a is not None and np.isfinite(float(a)) else math.nan
                if not np.isfinite(a):  # verdict gaps are fractions; here points
                    a = _fit_with_slope(np.repeat(x, gap.shape[1]), log_gap.ravel(), b)
                else:
                    a += math.log(100.0)
            else:
                a, b = _log_fit(x, log_gap)
            if np.isfinite(a) and np.isfinite(b) and ok.sum() >= 1:
                xs = np.linspace(x[ok].min(), x[ok].max(), 50)
                (h,) = ax_g.plot(np.exp(xs), np.exp(a + b * xs), color=colour, lw=1.0, zorder=3)
                _collect(handles, h, "power-law fit")
                ax_g.set_title(f"fitted slope {_signed(b)}")
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
                _note(ax_g, f"{n_bad} cell(s) with gap ≤ 0 not shown", "lower left")
            _kappa_axis(ax_g, kappa)
            ax_g.set_yscale("log")
            _log_ticks(ax_g.yaxis, gap[positive])
            ax_g.set_ylabel("Fidelity gap (points)")
            sf.suptitle(_wrap_title(titles[name], 56))
        _legend(fig, list(handles.values()), list(handles), ncol=2)
    return fig


#: Collapse metrics: (y label, log scale).
