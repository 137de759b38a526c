"""KD at several temperatures: accuracy vs kappa and the gain vs T."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from kdtheory.errors import MissingRequirementError
from kdtheory.report.figures.data import (
    _coord,
    _kappa,
    _store_palette,
    _test_accuracy,
    mean_band,
)
from kdtheory.report.figures.layout import (
    _band,
    _collect,
    _figure,
    _fmt_count,
    _kappa_axis,
    _legend,
    _row_subfigures,
    _select,
    _skip_message,
    _titles,
    _wrap_title,
)
from kdtheory.report.figures.style import _PCT, color_for, marker_for, paper_style
from kdtheory.store import accessor as _accessor  # noqa: F401 - registers ``Dataset.kd``
from kdtheory.store.arrays import sorted_experiment
from kdtheory.store.runs import as_store


def _kd_temperatures(ds: xr.Dataset) -> list[tuple[str, float]]:
    out = []
    for m in ds.kd.with_objective("kd"):
        t = _coord(ds, "temperature", m)
        if np.isfinite(t):
            out.append((m, t))
    return sorted(out, key=lambda mt: (mt[1], mt[0]))


def temperature_effects(store: Any, experiments: Sequence[str] | None = None) -> Figure:
    """KD at several temperatures: accuracy vs kappa, and the gain over label training vs T.

    One row per experiment whose KD methods have two or more distinct temperatures. Left: test
    accuracy vs kappa for the label method and each KD temperature (mean and 95% CI over seeds).
    Right: KD − label accuracy (points; accuracy when there is no label method) vs the
    temperature on a log-2 axis, one line per kappa (up to four, light = small kappa).
    """
    store = as_store(store)
    names = _select(store, experiments)
    titles = _titles(store)
    palette = _store_palette(store)
    rows = []
    skipped: dict[str, str] = {}
    for name in names:
        ds = sorted_experiment(store[name])
        temps = _kd_temperatures(ds)
        if len({t for _, t in temps}) < 2:
            found = ", ".join(f"T={t:g}" for _, t in temps) or "none"
            skipped[name] = f"KD temperatures present: {found}"
            continue
        rows.append((name, ds, temps))
    if not rows:
        raise MissingRequirementError(
            _skip_message(
                "temperature effects (KD methods at 2+ temperatures, e.g. "
                "`kdtheory run --methods label,kd:T=1,kd:T=4,kd:T=8`)",
                skipped,
            )
        )
    from matplotlib import colormaps

    with paper_style():
        fig = _figure(1.75 * len(rows) + 0.6)
        subfigs = _row_subfigures(fig, len(rows))
        handles: dict[str, Any] = {}
        for sf, (name, ds, temps) in zip(subfigs, rows, strict=True):
            ax, ax_t = sf.subplots(1, 2)
            kappa = _kappa(ds)
            acc = _test_accuracy(ds)
            label = ds.kd.pick("label")
            if label is not None:
                line = _band(
                    ax,
                    kappa,
                    acc[label],
                    color_for(label, palette),
                    marker_for(label, "label"),
                    label,
                    clip=_PCT,
                )
                _collect(handles, line, label)
            for m, t in temps:
                line = _band(
                    ax, kappa, acc[m], color_for(m, palette), marker_for(m, "kd"), m, clip=_PCT
                )
                _collect(handles, line, f"{m} (T={t:g})")
            _kappa_axis(ax, kappa)
            ax.set_ylabel("Test accuracy (%)")
            idx = np.unique(np.linspace(0, len(kappa) - 1, min(4, len(kappa))).round().astype(int))
            cmap = colormaps["cividis"]
            ts = np.array([t for _, t in temps])
            for r, i in enumerate(idx):
                shade = cmap(0.85 - 0.75 * r / max(1, len(idx) - 1))
                vals = np.stack([acc[m][i] - (acc[label][i] if label else 0.0) for m, _ in temps])
                mean, lo, hi, _ = mean_band(vals)
                ok = np.isfinite(mean)
                ax_t.errorbar(
                    ts[ok],
                    mean[ok],
                    yerr=[mean[ok] - lo[ok], hi[ok] - mean[ok]],
                    color=shade,
                    marker="s",
                    capsize=1.5,
                    elinewidth=0.7,
                    label=f"κ={_fmt_count(kappa[i])}",
                )
            if label is not None:
                ax_t.axhline(0.0, color="#444444", lw=0.6, zorder=1)
            ax_t.set_xscale("log", base=2)
            ax_t.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
            ax_t.xaxis.set_minor_formatter(NullFormatter())
            ax_t.set_xticks(sorted(set(ts)))
            ax_t.set_xlabel("KD temperature T")
            ax_t.set_ylabel("KD − label (points)" if label else "KD test accuracy (%)")
            ax_t.legend(
                loc="lower center",
                bbox_to_anchor=(0.5, 1.0),
                ncol=2,
                handlelength=1.2,
                columnspacing=0.8,
                borderaxespad=0.1,
            )
            sf.suptitle(_wrap_title(titles[name], 56))
        _legend(fig, list(handles.values()), list(handles))
    return fig
