"""A modelling factor's levels side by side: KD's gain over label training vs kappa per level.

The panels and their curves are given by the caller (``kdtheory test data-efficiency --by``
works out which methods and experiments are a factor's levels,
:func:`kdtheory.hypotheses.factors.factor_panels`); this module only draws them, one panel per
experiment (or per group of experiments that differ only in the factor) on the usual panel grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from kdtheory.errors import MissingRequirementError
from kdtheory.report.figures.grid import panel_grid
from kdtheory.report.figures.layout import KAPPA_LABEL, _collect, _kappa_axis
from kdtheory.report.figures.style import OKABE_ITO, paper_style

__all__ = ["LevelCurve", "level_gains"]

#: One level's curve in a panel: (level label, kappa per fraction, gain (fraction, seed)).
LevelCurve = tuple[str, np.ndarray, np.ndarray]

_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
#: Okabe–Ito colours of the levels, in order (no black: the zero line; no yellow: too light)
_COLOURS = tuple(
    OKABE_ITO[c]
    for c in ("blue", "orange", "bluish_green", "vermillion", "sky_blue", "reddish_purple")
)


def level_gains(
    panels: Sequence[tuple[str, Sequence[LevelCurve]]],
    factor: str,
    *,
    note: str = "",
) -> Figure:
    """KD − label test accuracy (points) vs kappa, one line per level of ``factor``.

    Parameters
    ----------
    panels : sequence of (str, sequence of LevelCurve)
        Per panel its title and its curves: each level's label, its kappa per fraction and the
        seed-paired gain (fraction × seed, accuracy points). A level keeps its colour and marker
        in every panel.
    factor : str
        The factor's name, for the legend and the caption.
    note : str
        Appended to the caption (e.g. the interaction test's result).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    MissingRequirementError
        When no panel has a curve.
    """
    panels = [(title, list(curves)) for title, curves in panels if curves]
    if not panels:
        raise MissingRequirementError(f"no level of {factor} to draw")
    levels = list(dict.fromkeys(level for _, curves in panels for level, _, _ in curves))
    colours = {lv: _COLOURS[i % len(_COLOURS)] for i, lv in enumerate(levels)}
    markers = {lv: _MARKERS[i % len(_MARKERS)] for i, lv in enumerate(levels)}
    with paper_style():
        grid = panel_grid(len(panels))
        handles: dict[str, Any] = {}
        for e, (title, curves) in enumerate(panels):
            ax = grid.axes(e)
            kappas = []
            for level, kappa, gain in curves:
                line = grid.band(ax, kappa, gain, colours[level], markers[level], level)
                _collect(handles, line, level)
                kappas.append(np.asarray(kappa, dtype=float))
            ax.axhline(0.0, color="#444444", lw=0.6, zorder=1)
            _kappa_axis(ax, np.unique(np.concatenate(kappas)), label=False)
            grid.label(ax, KAPPA_LABEL, "KD − label accuracy\n(percentage points)")
            grid.title(e, title)
        caption = (
            f"One line per level of {factor}: KD − label test accuracy, paired by seed. "
            f"{grid.seed_caption()}"
        )
        fig = grid.finish(handles, f"{caption} {note}".strip())
    return fig
