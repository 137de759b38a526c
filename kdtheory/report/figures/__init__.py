"""Paper-style figures of a run store, each returned as a :class:`matplotlib.figure.Figure`.

Every plot takes a run store (what :func:`kdtheory.open_runs` returns, any mapping of experiment
id to ``xarray.Dataset``, or a path) and draws one panel, or one column of panels, per
experiment, on a grid chosen from the number of experiments (:func:`.grid.panel_grid`: no empty
panels; one experiment makes a single-column figure, more a double-column one). Lines are means
over seeds, bands ± 1 standard error; a caption line inside every figure says so, with the
number of seeds:

- :func:`accuracy_curves`: test accuracy vs kappa per method, mean ± 1 s.e. over seeds;
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
paper style (:func:`paper_style`, the only place rcParams are set), fonts of at least 7 pt, one
colour-blind-safe Okabe–Ito colour and one marker per method (:func:`color_for`,
:func:`method_palette`). :func:`save` writes a figure as vector PDF (TrueType fonts embedded)
and 150 dpi PNG.

A figure can be restyled without rewriting it: change ``fig.axes[i]`` (limits, labels, ...) and
:func:`save` it again, or draw it inside ``with paper_style(**{"font.size": 9}):``.

One module per job: :mod:`.style` (sizes, rcParams, colours, markers), :mod:`.data` (what the
figures read from a store), :mod:`.layout` (kappa axes, bands, titles), :mod:`.grid` (the panel
grid, shared legend, caption line and margins), :mod:`.saving`, and one
module per family of figures (:mod:`.accuracy`, :mod:`.fidelity`, :mod:`.collapse`,
:mod:`.temperature`, :mod:`.rank_correlation`).
"""

from __future__ import annotations

from kdtheory.report.figures.accuracy import accuracy_curves, kd_gain, method_gaps
from kdtheory.report.figures.collapse import COLLAPSE_METRICS, collapse
from kdtheory.report.figures.data import mean_band, mean_se
from kdtheory.report.figures.fidelity import fidelity
from kdtheory.report.figures.grid import PanelGrid, panel_grid
from kdtheory.report.figures.layout import KAPPA_LABEL
from kdtheory.report.figures.rank_correlation import rank_correlation
from kdtheory.report.figures.saving import save, save_as
from kdtheory.report.figures.style import (
    FIGURE_WIDTH,
    FIGURE_WIDTH_DOUBLE,
    METHOD_COLORS,
    OBJECTIVE_COLORS,
    OBJECTIVE_MARKERS,
    OKABE_ITO,
    PAPER_RC,
    color_for,
    marker_for,
    method_palette,
    paper_style,
)
from kdtheory.report.figures.temperature import temperature_effects

__all__ = [
    "COLLAPSE_METRICS",
    "FIGURE_WIDTH",
    "FIGURE_WIDTH_DOUBLE",
    "KAPPA_LABEL",
    "METHOD_COLORS",
    "OBJECTIVE_COLORS",
    "OBJECTIVE_MARKERS",
    "OKABE_ITO",
    "PAPER_RC",
    "PanelGrid",
    "accuracy_curves",
    "collapse",
    "color_for",
    "fidelity",
    "kd_gain",
    "marker_for",
    "mean_band",
    "mean_se",
    "method_gaps",
    "method_palette",
    "panel_grid",
    "paper_style",
    "rank_correlation",
    "save",
    "save_as",
    "temperature_effects",
]
