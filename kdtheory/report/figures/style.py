"""The paper style: figure sizes, rcParams, colours and markers per method."""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import matplotlib

from kdtheory.store import accessor as _accessor  # noqa: F401 - registers ``Dataset.kd``

#: Width of a single-column figure in inches.
FIGURE_WIDTH = 3.3

#: Width of a double-column (``figure*``) figure in inches, for figures of many panels.
FIGURE_WIDTH_DOUBLE = 6.9

#: Tallest figure in inches (a full page of a two-column paper, caption included).
MAX_FIGURE_HEIGHT = 9.0

#: Resolution of the PNG copies (the PDF is vector).
PNG_DPI = 150

#: What a band around a line is, as the caption line on every figure states it.
BAND_NOTE = "bands: ± 1 s.e. of the mean"

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
    "axes.titley": 1.0,  # titles sit on the axes (no top tick labels): no per-draw search
    "legend.frameon": False,
    "legend.handlelength": 1.8,
    "legend.columnspacing": 1.0,
    "legend.handletextpad": 0.4,
    "legend.borderaxespad": 0.2,
    "figure.dpi": 100,
    "savefig.dpi": PNG_DPI,
    "pdf.fonttype": 42,  # TrueType in PDF: editable text, accepted by publishers
    "ps.fonttype": 42,
    "svg.fonttype": "none",
    "axes.unicode_minus": True,
    "axes.formatter.useoffset": False,
}

#: Ranges that confidence bands are clipped to.
_PCT = (0.0, 100.0)
_COLLAPSE_RANGE = {"cka": (0.0, 1.0), "nc4": (0.0, 1.0)}

#: Opacity of a ± 1 s.e. band.
_BAND_ALPHA = 0.18
#: Level of :func:`kdtheory.report.figures.mean_band` (t-intervals, kept for callers).
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
