"""Drawing helpers shared by the figures: kappa axes, tick labels, bands, titles, legend order.

The panel grid, the figure legend and the caption line are :mod:`.grid`'s."""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

from kdtheory.errors import StoreError
from kdtheory.report.figures.data import mean_se
from kdtheory.report.figures.style import _BAND_ALPHA
from kdtheory.store import accessor as _accessor  # noqa: F401 - registers ``Dataset.kd``
from kdtheory.store.titles import experiment_titles


def _fmt_count(x: float, _pos: Any = None) -> str:
    """Compact tick label: 0.5, 20, 500, 1k, 2.5k, 1M."""
    if x <= 0 or not np.isfinite(x):
        return ""
    if x < 1:
        return f"{x:.2g}"
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if x >= div:
            v = x / div
            return f"{v:.0f}{suffix}" if math.isclose(v, round(v)) else f"{v:g}{suffix}"
    return f"{x:.0f}" if math.isclose(x, round(x)) else f"{x:g}"


def _log_ticks(axis: Any, values: np.ndarray) -> None:
    """Plain-number ticks (50, 100, 1k, ...) on a log axis spanning ``values``."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    subs: tuple[float, ...] = (1.0, 2.0, 5.0)
    if v.size:
        decades = math.log10(v.max() / v.min()) if v.max() > v.min() else 0.0
        if decades > 2.0:
            subs = (1.0,)
        elif decades > 1.2:
            subs = (1.0, 3.0)
        elif decades < 0.5:
            subs = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(_fmt_count))
    axis.set_minor_locator(NullLocator())  # the labelled 1-2-5 / 1-3 ticks suffice


#: x label of every kappa axis (short enough for a 1.5 in panel at 7.5 pt).
KAPPA_LABEL = "Training samples κ"


def _kappa_axis(ax: Any, kappa: np.ndarray, label: bool = True) -> None:
    """Log x axis of kappa with plain-number ticks and a little room at both ends."""
    k = np.asarray(kappa, dtype=float)
    k = k[np.isfinite(k) & (k > 0)]
    ax.set_xscale("log")
    _log_ticks(ax.xaxis, k)
    if k.size:
        lo, hi = float(k.min()), float(k.max())
        pad = 1.25 if hi > lo else 1.6
        ax.set_xlim(lo / pad, hi * pad)
    if label:
        ax.set_xlabel(KAPPA_LABEL)


def _min_span(ax: Any, rel: float = 0.02, absolute: float = 1e-3) -> None:
    """Widen a linear y range that is almost a point (a flat metric), centred on it."""
    if ax.get_yscale() != "linear":
        return
    lo, hi = ax.get_ylim()
    centre = 0.5 * (lo + hi)
    need = max(rel * abs(centre), absolute)
    if hi - lo < need:
        ax.set_ylim(centre - need / 2, centre + need / 2)


def _signed(v: float, digits: int = 2) -> str:
    """``+0.52`` / ``−0.52`` with a true minus sign."""
    return f"{v:+.{digits}f}".replace("-", "\u2212")


def _wrap_title(text: str, width: int = 26) -> str:
    """Wrap a panel title, preferring breaks after `` · `` (display titles) or ``--`` (ids)."""
    parts = [p for p in re.split(r"(?<=--)|(?<=\u00b7 )", str(text)) if p]
    lines: list[str] = []
    current = ""
    for part in parts:
        if len(current) + len(part.rstrip()) <= width:
            current += part
            continue
        if current:
            lines.append(current.rstrip())
        current = ""
        while len(part.rstrip()) > width:
            chunk = textwrap.wrap(part, width, break_long_words=True, break_on_hyphens=True)
            lines.extend(chunk[:-1])
            part = chunk[-1]
        current = part
    if current.strip():
        lines.append(current.rstrip())
    return "\n".join(lines)


def _titles(store: Mapping[str, xr.Dataset]) -> dict[str, str]:
    """Panel titles: experiment id -> display label, distinct within ``store``
    (:func:`kdtheory.store.titles.experiment_titles`)."""
    return experiment_titles(store)


def _band(
    ax: Any,
    x: np.ndarray,
    values: np.ndarray,
    color: str,
    marker: str,
    label: str | None,
    linestyle: str = "-",
    filled: bool = True,
    band: bool = True,
    log: bool = False,
    clip: tuple[float, float] | None = None,
    seeds: set[int] | None = None,
) -> Line2D | None:
    """Mean over seeds (last axis) as a line with markers, and a band of ± 1 standard error.

    With ``log=True`` the mean and its standard error are taken on log values (geometric mean),
    for quantities drawn on a log axis; values <= 0 are left out. ``clip`` bounds the band to the
    quantity's range (e.g. ``(0, 100)`` for a percentage). ``seeds`` collects the number of seeds
    behind each drawn point (for the figure's caption line).
    """
    if log:
        v = np.asarray(values, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.where(v > 0, np.log(np.where(v > 0, v, 1.0)), np.nan)
        *stats, n = mean_se(v)
        mean, lo, hi = (np.exp(a) for a in stats)
    else:
        mean, lo, hi, n = mean_se(values)
    if clip is not None:  # keep the band within a bounded scale (100%, CKA = 1)
        lo, hi = np.clip(lo, *clip), np.clip(hi, *clip)
    ok = np.isfinite(mean) & np.isfinite(x)
    if not ok.any():
        return None
    if seeds is not None:
        seeds.update(int(k) for k in np.asarray(n)[ok])
    if band:
        ok_band = ok & np.isfinite(lo) & np.isfinite(hi)
        if ok_band.sum() >= 2:
            ax.fill_between(
                x[ok_band],
                lo[ok_band],
                hi[ok_band],
                color=color,
                alpha=_BAND_ALPHA,
                lw=0,
                zorder=1,
            )
        elif ok_band.any():
            ax.errorbar(
                x[ok_band],
                mean[ok_band],
                yerr=[mean[ok_band] - lo[ok_band], hi[ok_band] - mean[ok_band]],
                fmt="none",
                ecolor=color,
                elinewidth=0.8,
                capsize=1.5,
                zorder=2,
            )
    (line,) = ax.plot(
        x[ok],
        mean[ok],
        color=color,
        marker=marker,
        linestyle=linestyle,
        label=label,
        markerfacecolor=color if filled else "white",
        markeredgewidth=0.8,
        zorder=3,
    )
    return line


def _row_major(n: int, ncol: int) -> list[int]:
    """Order of ``n`` legend entries so that matplotlib's column-wise filling reads row-wise."""
    sizes = [len(c) for c in np.array_split(np.arange(n), ncol)]
    columns: list[list[int]] = [[] for _ in sizes]
    k = 0
    for r in range(max(sizes, default=0)):
        for c, size in enumerate(sizes):
            if r < size:
                columns[c].append(k)
                k += 1
    return [i for col in columns for i in col]


def _collect(handles: dict[str, Any], line: Any, label: str) -> None:
    if line is not None and label not in handles:
        handles[label] = line


def _skip_message(what: str, skipped: Mapping[str, str]) -> str:
    why = "; ".join(f"{k}: {v}" for k, v in skipped.items()) or "the store is empty"
    return f"cannot draw {what}: no experiment has what it needs ({why})"


def _select(store: Mapping[str, xr.Dataset], experiments: Sequence[str] | None) -> list[str]:
    names = [str(k) for k in store]
    if experiments is None:
        return names
    unknown = [e for e in experiments if e not in store]
    if unknown:
        raise StoreError(
            f"no experiment(s) {', '.join(map(repr, unknown))} in the store; experiments: "
            f"{', '.join(names)}"
        )
    return list(experiments)


def _verdict_row(verdict: Any, experiment: str) -> Any:
    if verdict is None:
        return None
    for row in getattr(verdict, "experiments", None) or []:
        if str(row.label) == str(experiment):
            return row
    return None
