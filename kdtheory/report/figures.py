"""Paper-style figures of a run store, each returned as a :class:`matplotlib.figure.Figure`.

Every plot takes a run store (what :func:`kdtheory.open_runs` returns, any mapping of experiment
id to ``xarray.Dataset``, or a path) and draws one panel, or one row of panels, per experiment:

- :func:`accuracy_curves`: test accuracy vs kappa per method, mean and 95% CI over seeds;
- :func:`kd_gain`: KD − label accuracy vs kappa, and the data multiplier (how many times more
  labelled samples label training needs to match KD);
- :func:`method_gaps`: KD − label, KD − label smoothing and KD − shuffled-KD accuracy vs kappa;
- :func:`fidelity`: student–teacher agreement on trained-on vs unseen samples, and their gap on
  log–log axes with the fitted slope and a reference slope of −1/2;
- :func:`collapse`: neural-collapse metrics (NC1 …) and linear CKA with the teacher vs kappa;
- :func:`temperature_effects`: KD at several temperatures;
- :func:`rank_correlation`: wrong-class rank correlation with the teacher (dark knowledge).

The built-in figures plugin (:mod:`kdtheory.plugins.figures`) registers them under the names
``kdtheory plot NAME`` takes, through the ``kdtheory_register_figures`` hook. Figures are made
with the Agg canvas directly (no pyplot, no display, no global backend switch), in a consistent
paper style (:func:`paper_style`): 3.3 in wide (one column), fonts of at least 7 pt, one
colour-blind-safe Okabe–Ito colour and one marker per method (:func:`color_for`,
:func:`method_palette`). :func:`save` writes a figure as vector PDF and 200 dpi PNG.

A figure can be restyled without rewriting it: change ``fig.axes[i]`` (limits, labels, ...) and
:func:`save` it again, or draw it inside ``with paper_style(**{"font.size": 9}):``.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import textwrap
import warnings
import weakref
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from kdtheory.errors import MissingRequirementError, StoreError
from kdtheory.store import accessor as _accessor  # noqa: F401 - registers ``Dataset.kd``

__all__ = [
    "FIGURE_WIDTH",
    "METHOD_COLORS",
    "OBJECTIVE_COLORS",
    "PAPER_RC",
    "accuracy_curves",
    "collapse",
    "color_for",
    "fidelity",
    "kd_gain",
    "marker_for",
    "method_gaps",
    "method_palette",
    "paper_style",
    "rank_correlation",
    "save",
    "temperature_effects",
]

# ============================================================================================
# style
# ============================================================================================

#: Width of a single-column figure in inches.
FIGURE_WIDTH = 3.3

#: Width of a double-column (``figure*``) figure in inches, for figures of many panels.
FIGURE_WIDTH_DOUBLE = 6.9

#: The Okabe–Ito palette (Okabe & Ito 2008), safe for the common colour-vision deficiencies.
OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}

#: Colours of the canonical method labels, the same in every figure.
METHOD_COLORS: dict[str, str] = {
    "label": OKABE_ITO["black"],
    "kd-T4": OKABE_ITO["blue"],
    "ls": OKABE_ITO["orange"],
    "kd-shuffled-T4": OKABE_ITO["vermillion"],
    "kd-mse": OKABE_ITO["bluish_green"],
}

#: Colour of each objective's first method (a method whose label is not in METHOD_COLORS).
OBJECTIVE_COLORS: dict[str, str] = {
    "label": OKABE_ITO["black"],
    "kd": OKABE_ITO["blue"],
    "ls": OKABE_ITO["orange"],
    "kd-shuffled": OKABE_ITO["vermillion"],
    "kd-mse": OKABE_ITO["bluish_green"],
}

#: Colours handed to further methods, in order (yellow last: it is faint on white).
_EXTRA_COLORS = (
    OKABE_ITO["sky_blue"],
    OKABE_ITO["reddish_purple"],
    "#7F7F7F",
    OKABE_ITO["yellow"],
)

#: Marker of each objective (markers keep methods apart in greyscale print too).
OBJECTIVE_MARKERS: dict[str, str] = {
    "label": "o",
    "kd": "s",
    "ls": "^",
    "kd-shuffled": "v",
    "kd-mse": "D",
}
_EXTRA_MARKERS = ("P", "X", "h", "<", ">", "*")

_OBJECTIVE_ORDER = ("label", "kd", "ls", "kd-shuffled", "kd-mse")

#: rcParams of the paper style (fonts >= 7 pt at a single-column width).
PAPER_RC: dict[str, Any] = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": 7.5,
    "axes.titlesize": 7,
    "axes.labelsize": 7.5,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.title_fontsize": 7,
    "figure.titlesize": 7,
    "axes.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.linewidth": 0.4,
    "grid.alpha": 0.35,
    "grid.color": "#B0B0B0",
    "lines.linewidth": 1.1,
    "lines.markersize": 3.2,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.minor.width": 0.4,
    "ytick.minor.width": 0.4,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "xtick.minor.size": 1.5,
    "ytick.minor.size": 1.5,
    "xtick.major.pad": 2.0,
    "ytick.major.pad": 2.0,
    "axes.labelpad": 2.0,
    "axes.titlepad": 3.0,
    "legend.frameon": False,
    "legend.handlelength": 1.8,
    "legend.columnspacing": 1.0,
    "legend.handletextpad": 0.4,
    "legend.borderaxespad": 0.2,
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "pdf.fonttype": 42,  # TrueType in PDF: editable text, accepted by publishers
    "ps.fonttype": 42,
    "svg.fonttype": "none",
    "axes.unicode_minus": True,
    "axes.formatter.useoffset": False,
    "figure.constrained_layout.h_pad": 0.03,
    "figure.constrained_layout.w_pad": 0.03,
    "figure.constrained_layout.hspace": 0.04,
    "figure.constrained_layout.wspace": 0.04,
}

#: Ranges that confidence bands are clipped to.
_PCT = (0.0, 100.0)
_COLLAPSE_RANGE = {"cka": (0.0, 1.0), "nc4": (0.0, 1.0)}

#: Band of the 95% confidence interval.
_BAND_ALPHA = 0.16
_CI_LEVEL = 0.95


@contextlib.contextmanager
def paper_style(**overrides: Any) -> Iterator[None]:
    """Context manager applying :data:`PAPER_RC` (plus ``overrides``) to matplotlib's rcParams.

    Examples
    --------
    >>> with paper_style(**{"font.size": 9}):
    ...     fig = accuracy_curves(store)
    """
    rc = dict(PAPER_RC)
    rc.update(overrides)
    with matplotlib.rc_context(rc):
        yield


def _objective_of(label: str, objective: str | None = None) -> str:
    if objective:
        return str(objective)
    for obj in ("kd-shuffled", "kd-mse", "kd", "ls", "label"):
        if label == obj or label.startswith(obj + "-"):
            return obj
    return label


def method_palette(
    methods: Iterable[str], objectives: Mapping[str, str] | None = None
) -> dict[str, str]:
    """One colour per method label, with no two methods sharing a colour while colours last.

    Canonical labels (:data:`METHOD_COLORS`) keep their colour; another method takes its
    objective's colour (:data:`OBJECTIVE_COLORS`) when no method uses it yet, else the next free
    Okabe–Ito colour. The result depends only on the set of labels (not on their order), so every
    figure of one store colours a method alike.
    """
    objectives = dict(objectives or {})
    labels = sorted({str(m) for m in methods}, key=lambda m: _method_key(m, objectives.get(m)))
    out: dict[str, str] = {m: METHOD_COLORS[m] for m in labels if m in METHOD_COLORS}
    used = set(out.values())
    for m in labels:
        if m in out:
            continue
        obj = _objective_of(m, objectives.get(m))
        colour = OBJECTIVE_COLORS.get(obj)
        if colour is None or colour in used:
            free = [c for c in (*_EXTRA_COLORS, *OBJECTIVE_COLORS.values()) if c not in used]
            colour = free[0] if free else _hashed_color(m)
        out[m] = colour
        used.add(colour)
    return out


def _hashed_color(label: str) -> str:
    palette = (*_EXTRA_COLORS, *OBJECTIVE_COLORS.values())
    return palette[zlib.crc32(label.encode()) % len(palette)]


def color_for(method: str, palette: Mapping[str, str] | None = None) -> str:
    """The colour of ``method``: from ``palette`` (see :func:`method_palette`) when given and
    holding it, else :data:`METHOD_COLORS`, else its objective's colour, else a fixed colour
    derived from the label."""
    if palette is not None and method in palette:
        return palette[method]
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    obj = _objective_of(method)
    return OBJECTIVE_COLORS.get(obj) or _hashed_color(method)


def marker_for(method: str, objective: str | None = None) -> str:
    """The marker of ``method`` (by objective; a fixed marker derived from the label else)."""
    obj = _objective_of(method, objective)
    if obj in OBJECTIVE_MARKERS:
        return OBJECTIVE_MARKERS[obj]
    return _EXTRA_MARKERS[zlib.crc32(method.encode()) % len(_EXTRA_MARKERS)]


def _method_key(method: str, objective: str | None = None) -> tuple:
    obj = _objective_of(method, objective)
    rank = _OBJECTIVE_ORDER.index(obj) if obj in _OBJECTIVE_ORDER else len(_OBJECTIVE_ORDER)
    return (rank, method)


def _store_palette(store: Mapping[str, xr.Dataset]) -> dict[str, str]:
    objectives: dict[str, str] = {}
    for ds in store.values():
        for m, o in zip(_labels(ds), _objectives(ds), strict=True):
            objectives.setdefault(m, o)
    return method_palette(objectives, objectives)


# ============================================================================================
# saving
# ============================================================================================


def save(
    fig: Figure,
    stem: str | os.PathLike[str],
    formats: Sequence[str] = ("pdf", "png"),
    dpi: int = 200,
) -> list[Path]:
    """Write ``fig`` as ``stem.pdf`` (vector) and ``stem.png`` (``dpi``), atomically.

    A suffix on ``stem`` that names one of ``formats`` is dropped (``save(fig, "acc.pdf")``
    writes ``acc.pdf`` and ``acc.png``). Returns the written paths. PDFs carry no creation date,
    so the same figure gives the same bytes.
    """
    from kdtheory.store.atomic import write_atomic

    stem = Path(stem)
    if stem.suffix.lstrip(".").lower() in {f.lower() for f in formats}:
        stem = stem.with_suffix("")
    written = []
    engine = fig.get_layout_engine()
    try:
        for fmt in formats:
            fmt = fmt.lower().lstrip(".")
            path = stem.parent / f"{stem.name}.{fmt}"
            write_atomic(path, partial(_savefig, fig, fmt=fmt, dpi=dpi))
            written.append(path)
            if engine is not None and fig.get_layout_engine() is engine:
                # the layout is done: keep it for the other formats instead of redoing it
                fig.set_layout_engine("none")
    finally:
        if engine is not None and fig.get_layout_engine() is not engine:
            fig.set_layout_engine(engine)
    return written


def save_as(fig: Figure, path: str | os.PathLike[str], dpi: int = 200) -> Path:
    """Write ``fig`` to ``path`` in the format its suffix names (pdf, png, svg, eps, ...)."""
    from kdtheory.store.atomic import write_atomic

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if not fmt:
        raise ValueError(f"{path}: give a file suffix such as .pdf or .png")
    supported = FigureCanvasAgg(Figure()).get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(
            f"{path}: cannot write .{fmt} figures; choose one of "
            f"{', '.join('.' + k for k in sorted(supported))}"
        )
    write_atomic(path, partial(_savefig, fig, fmt=fmt, dpi=dpi))
    return path


def _savefig(fig: Figure, tmp: Path, *, fmt: str, dpi: int) -> None:
    metadata: dict[str, Any] | None = None
    if fmt == "pdf":
        metadata = {"Creator": "kdtheory", "Producer": None, "CreationDate": None}
    elif fmt == "png":
        metadata = {"Software": "kdtheory"}
    elif fmt == "svg":
        metadata = {"Date": None}
    with paper_style():
        fig.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata, facecolor="white")


# ============================================================================================
# data helpers
# ============================================================================================


def _as_store(store: Any) -> Mapping[str, xr.Dataset]:
    if isinstance(store, (str, os.PathLike)):
        from kdtheory.store.runs import open_runs

        store = open_runs(store)
    if isinstance(store, xr.Dataset):
        store = {str(store.attrs.get("experiment", "experiment")): store}
    if not isinstance(store, Mapping):
        raise StoreError(
            "a run store must be a mapping of experiment id -> xarray.Dataset (as "
            f"kdtheory.open_runs returns) or a path; got {type(store).__name__}"
        )
    if len(store) == 0:
        raise StoreError("the run store holds no experiments")
    return store


def _labels(ds: xr.Dataset) -> list[str]:
    return ds.kd.arms


def _objectives(ds: xr.Dataset) -> list[str | None]:
    """Each arm's ``objective`` coordinate (None without one: colours and markers then fall
    back to the label, see :func:`marker_for`; picking arms never guesses)."""
    return [ds.kd.objective_of(m) for m in ds.kd.arms]


def _coord(ds: xr.Dataset, name: str, method: str) -> float:
    try:
        value = ds.kd.coord(name, method)
        return math.nan if value is None else float(value)
    except (KeyError, TypeError, ValueError):
        return math.nan


def _methods_of(ds: xr.Dataset, objective: str) -> list[str]:
    return ds.kd.with_objective(objective)


def _pick(ds: xr.Dataset, objective: str, prefer_temperature: float | None = None) -> str | None:
    """The method the built-in hypotheses use for ``objective`` (temperature 4 preferred)."""
    return ds.kd.pick(objective, temperature=prefer_temperature)


def _sorted(ds: xr.Dataset) -> xr.Dataset:
    fr = np.asarray(ds["fraction"].values, dtype=float)
    order = np.argsort(fr, kind="stable")
    return ds if np.array_equal(order, np.arange(fr.size)) else ds.isel(fraction=order)


def _bare(da: xr.DataArray) -> xr.DataArray:
    return xr.DataArray(np.asarray(da.values), dims=da.dims)


def _kappa(ds: xr.Dataset) -> np.ndarray:
    return np.asarray(ds.kd.kappa.values, dtype=float)


def _fs(da: xr.DataArray) -> np.ndarray:
    """A (fraction, seed) float array."""
    return np.asarray(da.transpose("fraction", "seed").values, dtype=float)


def _test_accuracy(ds: xr.Dataset) -> dict[str, np.ndarray]:
    """Method -> (fraction, seed) test accuracy in percent."""
    acc = ds.kd.accuracy()
    return {m: 100.0 * np.asarray(acc.values[i], dtype=float) for i, m in enumerate(_labels(ds))}


def _teacher_accuracy(ds: xr.Dataset) -> float:
    return 100.0 * ds.kd.teacher_accuracy()


def mean_ci(values: np.ndarray, level: float = _CI_LEVEL) -> tuple[np.ndarray, ...]:
    """Mean, t-interval bounds and n over the last axis (seeds), ignoring NaN.

    Returns ``(mean, low, high, n)``; bounds are NaN where fewer than 2 values are finite.
    """
    from scipy.stats import t as student_t

    v = np.asarray(values, dtype=float)
    n = np.isfinite(v).sum(axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(v, axis=-1)
        sd = np.nanstd(v, axis=-1, ddof=1)
        q = student_t.ppf(0.5 + level / 2.0, np.maximum(n - 1, 1))
        half = np.where(n >= 2, q * sd / np.sqrt(np.maximum(n, 1)), np.nan)
    mean = np.where(n >= 1, mean, np.nan)
    return mean, mean - half, mean + half, n


# ============================================================================================
# drawing helpers
# ============================================================================================


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
    axis.set_minor_locator(LogLocator(base=10, subs=np.arange(2, 10) * 1.0))
    axis.set_minor_formatter(NullFormatter())


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


def _wrap_title(text: str, width: int = 28) -> str:
    """Wrap an experiment id, preferring breaks after ``--`` separators."""
    parts = [p for p in re.split(r"(?<=--)", str(text)) if p]
    lines: list[str] = []
    current = ""
    for part in parts:
        if len(current) + len(part) <= width:
            current += part
            continue
        if current:
            lines.append(current)
        current = ""
        while len(part) > width:
            chunk = textwrap.wrap(part, width, break_long_words=True, break_on_hyphens=True)
            lines.extend(chunk[:-1])
            part = chunk[-1]
        current = part
    if current:
        lines.append(current)
    return "\n".join(lines)


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
) -> Line2D | None:
    """Mean over seeds (last axis) as a line with markers, and a 95% CI band.

    With ``log=True`` the mean and interval are taken on log values (geometric mean), for
    quantities drawn on a log axis; values <= 0 are left out. ``clip`` bounds the band to the
    quantity's range (e.g. ``(0, 100)`` for a percentage).
    """
    if log:
        v = np.asarray(values, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.where(v > 0, np.log(np.where(v > 0, v, 1.0)), np.nan)
        mean, lo, hi = (np.exp(a) for a in mean_ci(v)[:3])
    else:
        mean, lo, hi, _ = mean_ci(values)
    if clip is not None:  # a t-interval may run past a bounded scale (100%, CKA = 1)
        lo, hi = np.clip(lo, *clip), np.clip(hi, *clip)
    ok = np.isfinite(mean) & np.isfinite(x)
    if not ok.any():
        return None
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


def _figure(height: float, width: float = FIGURE_WIDTH) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _grid(n: int, panel_height: float = 1.75) -> tuple[Figure, list[Any]]:
    """A figure with one panel per experiment: one column for one experiment, else two."""
    ncols = 1 if n == 1 else 2
    nrows = math.ceil(n / ncols)
    height = (2.35 if n == 1 else panel_height * nrows) + 0.35
    fig = _figure(height)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _is_bottom(i: int, n: int, ncols: int) -> bool:
    return i + ncols >= n


def _legend(
    fig: Any, handles: Sequence[Any], labels: Sequence[str], ncol: int | None = None
) -> None:
    """A shared legend above the panels, with as many columns as fit the figure's width."""
    if not handles:
        return
    renderer = fig.canvas.get_renderer() if hasattr(fig.canvas, "get_renderer") else None
    width = fig.bbox.width
    start = min(len(labels), ncol or 4)
    for n in range(start, 0, -1):
        order = _row_major(len(labels), n)
        leg = fig.legend(
            [handles[i] for i in order],
            [labels[i] for i in order],
            loc="outside upper center",
            ncol=n,
            frameon=False,
        )
        if n == 1 or renderer is None:
            return
        if leg.get_window_extent(renderer).width <= 0.98 * width:
            return
        leg.remove()


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


def _note(ax: Any, text: str, loc: str = "lower right") -> None:
    x = 0.98 if "right" in loc else 0.02
    y = 0.03 if "lower" in loc else 0.97
    ax.text(
        x,
        y,
        text,
        transform=ax.transAxes,
        ha="right" if "right" in loc else "left",
        va="bottom" if "lower" in loc else "top",
        fontsize=7,
        color="#333333",
        bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.8},
        zorder=5,
    )


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


# ============================================================================================
# figures
# ============================================================================================


def accuracy_curves(
    store: Any, experiments: Sequence[str] | None = None, teacher: bool = True
) -> Figure:
    """Test accuracy vs kappa (log axis) per method: mean and 95% CI over seeds.

    One panel per experiment; the teacher's test accuracy is a dashed grey line.

    Parameters
    ----------
    store : RunStore, mapping of str to xarray.Dataset, or path
    experiments : list of str, optional
        Experiments to draw (default all).
    teacher : bool
        Draw the teacher's accuracy.
    """
    store = _as_store(store)
    names = _select(store, experiments)
    palette = _store_palette(store)
    with paper_style():
        fig, axes = _grid(len(names))
        ncols = 1 if len(names) == 1 else 2
        handles: dict[str, Any] = {}
        for i, (ax, name) in enumerate(zip(axes, names, strict=True)):
            ds = _sorted(store[name])
            kappa = _kappa(ds)
            acc = _test_accuracy(ds)
            order = sorted(
                acc,
                key=lambda m: _method_key(
                    m, dict(zip(_labels(ds), _objectives(ds), strict=True)).get(m)
                ),
            )
            objs = dict(zip(_labels(ds), _objectives(ds), strict=True))
            for m in order:
                line = _band(
                    ax, kappa, acc[m], color_for(m, palette), marker_for(m, objs[m]), m, clip=_PCT
                )
                _collect(handles, line, m)
            if teacher:
                t_acc = _teacher_accuracy(ds)
                if np.isfinite(t_acc):
                    line = ax.axhline(t_acc, color="#666666", lw=0.8, ls="--", zorder=2)
                    _collect(handles, line, "teacher")
            _kappa_axis(ax, kappa, label=_is_bottom(i, len(names), ncols))
            if i % ncols == 0:
                ax.set_ylabel("Test accuracy (%)")
            ax.set_title(_wrap_title(name))
        _legend(fig, list(handles.values()), list(handles))
    return fig


def _fit_with_slope(x: np.ndarray, y: np.ndarray, slope: float) -> float:
    """Least-squares intercept of ``y = a + slope * x`` over finite pairs."""
    ok = np.isfinite(x) & np.isfinite(y)
    return float(np.mean(y[ok] - slope * x[ok])) if ok.any() else math.nan


def _verdict_row(verdict: Any, experiment: str) -> Any:
    if verdict is None:
        return None
    for row in getattr(verdict, "experiments", None) or []:
        if str(row.label) == str(experiment):
            return row
    return None


def kd_gain(store: Any, verdict: Any = None, experiments: Sequence[str] | None = None) -> Figure:
    """KD's gain over label training vs kappa, and the data multiplier.

    One row per experiment. Left: KD − label test accuracy (points) per seed-paired cell, mean
    and 95% CI over seeds; with a ``data-efficiency`` verdict, its fitted slope on log kappa.
    Right: the data multiplier, kappa*/kappa, where kappa* is the number of labelled samples
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
    store = _as_store(store)
    names = _select(store, experiments)
    palette = _store_palette(store)
    rows: list[tuple[str, xr.Dataset, str, str]] = []
    skipped: dict[str, str] = {}
    for name in names:
        ds = _sorted(store[name])
        row = _verdict_row(verdict, name)
        kd = (row.extra.get("kd_method") if row is not None else None) or _pick(ds, "kd", 4.0)
        label = (row.extra.get("label_method") if row is not None else None) or _pick(ds, "label")
        if kd not in _labels(ds) or label not in _labels(ds):
            skipped[name] = "needs a kd and a label method"
            continue
        rows.append((name, ds, kd, label))
    if not rows:
        raise MissingRequirementError(_skip_message("the KD gain", skipped))
    mult_tables = _multiplier_records(verdict)
    with paper_style():
        fig = _figure(1.7 * len(rows) + 0.45)
        subfigs = _row_subfigures(fig, len(rows))
        handles: dict[str, Any] = {}
        for sf, (name, ds, kd, label) in zip(subfigs, rows, strict=True):
            ax, ax_m = sf.subplots(1, 2)
            kappa = _kappa(ds)
            acc = _test_accuracy(ds)
            gain = acc[kd] - acc[label]
            colour = color_for(kd, palette)
            ax.axhline(0.0, color="#444444", lw=0.6, zorder=1)
            line = _band(ax, kappa, gain, colour, marker_for(kd, "kd"), f"{kd} − {label}")
            _collect(handles, line, f"{kd} − {label} (mean, 95% CI)")
            row = _verdict_row(verdict, name)
            if row is not None and np.isfinite(row.estimate):
                x = np.log(kappa)
                a = _fit_with_slope(np.repeat(x, gain.shape[1]), gain.ravel(), row.estimate)
                xs = np.linspace(x.min(), x.max(), 50)
                (fit,) = ax.plot(np.exp(xs), a + row.estimate * xs, color=colour, lw=0.8, ls=":")
                _collect(handles, fit, "fitted slope on log κ")
                ax.set_title(f"fitted slope {_signed(row.estimate)} points per ln κ")
            _kappa_axis(ax, kappa)
            ax.set_ylabel("KD gain (accuracy points)")
            records = mult_tables.get(name) or _multiplier(kappa, acc[label], acc[kd])
            _draw_multiplier(ax_m, records, colour, kappa, handles)
            _kappa_axis(ax_m, kappa)
            ax_m.set_ylabel("Data multiplier κ*/κ")
            sf.suptitle(_wrap_title(name, 56))
        _legend(fig, list(handles.values()), list(handles), ncol=2)
    return fig


def _row_subfigures(fig: Figure, n: int) -> list[Any]:
    return list(np.atleast_1d(fig.subfigures(n, 1, hspace=0.02)).ravel())


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
        _note(ax, "no multiplier: too few label points", "upper right")


_GAP_COMPARATORS = (("label", "label"), ("ls", "label smoothing"), ("kd-shuffled", "shuffled KD"))


def method_gaps(store: Any, experiments: Sequence[str] | None = None) -> Figure:
    """KD's accuracy advantage over label training, label smoothing and shuffled KD vs kappa.

    One panel per experiment; each line is KD − comparator test accuracy (points), paired by
    seed, mean and 95% CI over seeds, in the comparator's colour. KD is the ``kd`` method with
    temperature 4 (else the first); the comparators are the first method of each objective
    (the shuffled-KD method with KD's temperature when there is one).
    """
    store = _as_store(store)
    names = _select(store, experiments)
    palette = _store_palette(store)
    usable: list[tuple[str, xr.Dataset, str, list[tuple[str, str]]]] = []
    skipped: dict[str, str] = {}
    for name in names:
        ds = _sorted(store[name])
        kd = _pick(ds, "kd", 4.0)
        if kd is None:
            skipped[name] = "no kd method"
            continue
        t_kd = _coord(ds, "temperature", kd)
        comps = []
        for obj, desc in _GAP_COMPARATORS:
            pref = t_kd if obj == "kd-shuffled" and np.isfinite(t_kd) else None
            m = _pick(ds, obj, pref)
            if m is not None:
                comps.append((m, desc))
        if not comps:
            skipped[name] = "no label, ls or kd-shuffled method to compare KD with"
            continue
        usable.append((name, ds, kd, comps))
    if not usable:
        raise MissingRequirementError(_skip_message("the method gaps", skipped))
    with paper_style():
        fig, axes = _grid(len(usable))
        ncols = 1 if len(usable) == 1 else 2
        handles: dict[str, Any] = {}
        for i, (ax, (name, ds, kd, comps)) in enumerate(zip(axes, usable, strict=True)):
            kappa = _kappa(ds)
            acc = _test_accuracy(ds)
            ax.axhline(0.0, color="#444444", lw=0.6, zorder=1)
            objs = dict(zip(_labels(ds), _objectives(ds), strict=True))
            for m, desc in comps:
                text = f"KD − {desc}"
                line = _band(
                    ax, kappa, acc[kd] - acc[m], color_for(m, palette), marker_for(m, objs[m]), text
                )
                _collect(handles, line, text)
            _kappa_axis(ax, kappa, label=_is_bottom(i, len(usable), ncols))
            if i % ncols == 0:
                ax.set_ylabel(f"{kd} − method (acc. points)")
            ax.set_title(_wrap_title(name))
        _legend(fig, list(handles.values()), list(handles), ncol=3)
    return fig


def _fidelities(ds: xr.Dataset, kd: str) -> tuple[np.ndarray, np.ndarray]:
    """Fidelity (top-1 agreement with the teacher, %) of ``kd`` on trained-on and test samples."""
    f_train = ds.kd.agreement(kd, split="train", subset="trained")
    return 100.0 * _fs(f_train), 100.0 * _fs(ds.kd.agreement(kd))


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
    store = _as_store(store)
    names = _select(store, experiments)
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
        ds = _sorted(store[name])
        row = _verdict_row(verdict, name)
        kd = (row.extra.get("kd_method") if row is not None else None) or _pick(ds, "kd", 4.0)
        missing = [v for v in need if v not in ds]
        if kd not in _labels(ds) or missing:
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
            sf.suptitle(_wrap_title(name, 56))
        _legend(fig, list(handles.values()), list(handles), ncol=2)
    return fig


#: Collapse metrics: (y label, log scale).
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

    store = _as_store(store)
    names = _select(store, experiments)
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
        ds = _sorted(store[name])
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
            objs = dict(zip(_labels(ds), _objectives(ds), strict=True))
            methods = sorted(_labels(ds), key=lambda m: _method_key(m, objs[m]))
            for j, (ax, key) in enumerate(zip(axes, keys, strict=False)):
                ylabel, log = COLLAPSE_METRICS[key]
                drawn = []
                for m in methods:
                    vals = _fs(table[key].sel(arm=m, subset=subset))
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
            title = _wrap_title(name, chars)
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
    table = compute(_sorted(ds))
    _COLLAPSE_CACHE.append((weakref.ref(ds), table))
    del _COLLAPSE_CACHE[:-4]
    return table


def _kd_temperatures(ds: xr.Dataset) -> list[tuple[str, float]]:
    out = []
    for m in _methods_of(ds, "kd"):
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
    store = _as_store(store)
    names = _select(store, experiments)
    palette = _store_palette(store)
    rows = []
    skipped: dict[str, str] = {}
    for name in names:
        ds = _sorted(store[name])
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
            label = _pick(ds, "label")
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
                mean, lo, hi, _ = mean_ci(vals)
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
            sf.suptitle(_wrap_title(name, 56))
        _legend(fig, list(handles.values()), list(handles))
    return fig


def rank_correlation(store: Any, experiments: Sequence[str] | None = None) -> Figure:
    """Wrong-class rank correlation of each method's test predictions with the teacher's.

    Per test sample, the Spearman correlation of the student's and the teacher's logits over the
    classes other than the true one, averaged over samples; mean and 95% CI over seeds vs kappa,
    one panel per experiment. High values mean the student reproduces the teacher's ordering of
    the wrong classes ("dark knowledge").
    """
    from kdtheory.metrics import wrong_class_rank_correlation

    store = _as_store(store)
    names = _select(store, experiments)
    palette = _store_palette(store)
    with paper_style():
        fig, axes = _grid(len(names))
        ncols = 1 if len(names) == 1 else 2
        handles: dict[str, Any] = {}
        for i, (ax, name) in enumerate(zip(axes, names, strict=True)):
            ds = _sorted(store[name])
            kappa = _kappa(ds)
            corr = wrong_class_rank_correlation(
                _bare(ds["test_logits"]),
                _bare(ds["teacher_test_logits"]),
                _bare(ds["test_labels"]),
                "test_sample",
            ).transpose("arm", "fraction", "seed")
            objs = dict(zip(_labels(ds), _objectives(ds), strict=True))
            for k, m in sorted(
                enumerate(_labels(ds)), key=lambda km: _method_key(km[1], objs[km[1]])
            ):
                line = _band(
                    ax,
                    kappa,
                    np.asarray(corr.values[k], dtype=float),
                    color_for(m, palette),
                    marker_for(m, objs[m]),
                    m,
                    clip=(-1.0, 1.0),
                )
                _collect(handles, line, m)
            _kappa_axis(ax, kappa, label=_is_bottom(i, len(names), ncols))
            if i % ncols == 0:
                ax.set_ylabel("Wrong-class rank corr.\nwith teacher (Spearman)")
            ax.set_title(_wrap_title(name))
        _legend(fig, list(handles.values()), list(handles))
    return fig
