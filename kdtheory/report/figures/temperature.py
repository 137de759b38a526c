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
    mean_se,
)
from kdtheory.report.figures.grid import panel_grid
from kdtheory.report.figures.layout import (
    KAPPA_LABEL,
    _collect,
    _kappa_axis,
    _select,
    _skip_message,
    _titles,
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

    One column per experiment whose KD methods have two or more distinct temperatures. Top:
    test accuracy vs kappa for the label method and each KD temperature (mean ± 1 standard
    error over seeds). Bottom: KD − label accuracy (points; accuracy when there is no label
    method) vs the temperature on a log-2 axis, one line per training-set fraction (up to four,
    light = small).
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
        grid = panel_grid(len(rows), quantities=2, share_x_label=False)
        handles: dict[str, Any] = {}
        for e, (name, ds, temps) in enumerate(rows):
            ax, ax_t = grid.axes(e, 0), grid.axes(e, 1)
            kappa = _kappa(ds)
            acc = _test_accuracy(ds)
            label = ds.kd.pick("label")
            if label is not None:
                line = grid.band(
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
                line = grid.band(
                    ax, kappa, acc[m], color_for(m, palette), marker_for(m, "kd"), m, clip=_PCT
                )
                _collect(handles, line, f"{m} (T={t:g})")
            _kappa_axis(ax, kappa, label=False)
            grid.label(ax, KAPPA_LABEL, "Test accuracy (%)")
            idx = np.unique(np.linspace(0, len(kappa) - 1, min(4, len(kappa))).round().astype(int))
            cmap = colormaps["cividis"]
            ts = np.array([t for _, t in temps])
            fractions = np.asarray(ds["fraction"].values, dtype=float)
            for r, i in enumerate(idx):
                shade = cmap(0.85 - 0.75 * r / max(1, len(idx) - 1))
                vals = np.stack([acc[m][i] - (acc[label][i] if label else 0.0) for m, _ in temps])
                mean, lo, hi, n = mean_se(vals)
                grid.seeds.update(int(k) for k in n[np.isfinite(mean)])
                ok = np.isfinite(mean)
                bars = ax_t.errorbar(
                    ts[ok],
                    mean[ok],
                    yerr=[mean[ok] - lo[ok], hi[ok] - mean[ok]],
                    color=shade,
                    marker="s",
                    capsize=1.5,
                    elinewidth=0.7,
                )
                _collect(handles, bars, f"{100 * fractions[i]:g}% of the train set")
            if label is not None:
                ax_t.axhline(0.0, color="#444444", lw=0.6, zorder=1)
            ax_t.set_xscale("log", base=2)
            ax_t.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
            ax_t.xaxis.set_minor_formatter(NullFormatter())
            ax_t.set_xticks(sorted(set(ts)))
            what = "KD − label accuracy\n(percentage points)" if label else "KD test accuracy (%)"
            grid.label(ax_t, "KD temperature T", what)
            grid.title(e, titles[name])
        caption = (
            f"{grid.seed_caption('Lines and bars').replace('bands', 'bands and bars')} Bottom: "
            "one line per training-set fraction (light = small)."
        )
        fig = grid.finish(handles, caption, ncol=4)
    return fig
