"""The panel grid every figure is drawn on: layout from the number of experiments, fixed margins.

:func:`panel_grid` chooses rows and columns from the number of experiments, so that no panel is
left empty, and :meth:`PanelGrid.finish` places the axes in inches from the measured size of
their tick labels, axis labels and titles (one pass, no constrained layout), puts the shared
legend above the panels (or in a spare grid slot) where it cannot cover data, and writes the
caption line (what lines and bands are, over how many seeds) at the bottom of the figure.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.text import Text

from kdtheory.report.figures.layout import _band, _collect, _row_major, _wrap_title
from kdtheory.report.figures.style import (
    BAND_NOTE,
    FIGURE_WIDTH,
    FIGURE_WIDTH_DOUBLE,
    MAX_FIGURE_HEIGHT,
    _method_key,
    color_for,
    marker_for,
)

#: room (inches) each panel's decorations take on its left, right, top and bottom
_Room = tuple[dict[Axes, float], dict[Axes, float], dict[Axes, float], dict[Axes, float]]

#: Space (inches) around the legend, the caption and between neighbouring panels.
_PAD = 0.05
#: Room (inches) right of each panel for the last x tick label's overhang.
_RIGHT = 0.1


def grid_shape(n: int, quantities: int = 1) -> tuple[int, int]:
    """Rows and columns of the panel grid for ``n`` experiments.

    One panel per experiment (``quantities == 1``): one panel for one experiment, one row for two
    or three, 2×2 for four, three columns beyond. Several quantities per experiment: one column
    per experiment (three columns a block beyond four experiments), one row per quantity.
    """
    if n < 1:
        raise ValueError("a panel grid needs at least one experiment")
    if quantities == 1:
        if n <= 3:
            return 1, n
        if n == 4:
            return 2, 2
        return math.ceil(n / 3), 3
    ncols = n if n <= 4 else 3
    return quantities * math.ceil(n / ncols), ncols


@dataclass
class PanelGrid:
    """Axes of a figure laid out by experiment (see :func:`panel_grid`).

    Attributes
    ----------
    fig : matplotlib.figure.Figure
    panels : list of list of Axes
        ``panels[e][q]``: quantity ``q`` of experiment ``e``.
    nrows, ncols : int
        The grid's shape.
    cells : dict
        Axes -> (row, column) in the grid.
    share_x_label : bool
        Quantities of one experiment share the x axis: only the lowest shows its label and
        tick labels.
    """

    fig: Figure
    panels: list[list[Axes]]
    nrows: int
    ncols: int
    cells: dict[Axes, tuple[int, int]]
    width: float
    panel_height: float
    share_x_label: bool = True
    seeds: set[int] = field(default_factory=set)
    _quantities: int = 1

    def axes(self, experiment: int, quantity: int = 0) -> Axes:
        """The panel of ``quantity`` for experiment number ``experiment``."""
        return self.panels[experiment][quantity]

    @property
    def spare(self) -> list[tuple[int, int]]:
        """Grid slots without a panel (row, column), last row first."""
        taken = set(self.cells.values())
        free = [(r, c) for r in range(self.nrows) for c in range(self.ncols) if (r, c) not in taken]
        return sorted(free, key=lambda rc: (-rc[0], rc[1]))

    @property
    def panel_width(self) -> float:
        """Approximate width of one panel (inches), for wrapping titles before the layout."""
        return (self.width - self.ncols * 0.55) / self.ncols

    def is_left(self, ax: Axes) -> bool:
        """``ax`` is in the grid's first column: it carries the row's y label."""
        return self.cells[ax][1] == 0

    def is_bottom(self, ax: Axes) -> bool:
        """``ax`` carries its column's x label: no panel below it shares its x axis."""
        row, col = self.cells[ax]
        if self._quantities > 1:
            if not self.share_x_label:
                return True
            return (row + 1) % self._quantities == 0
        return (row + 1, col) not in self.cells

    def label(self, ax: Axes, xlabel: str, ylabel: str) -> None:
        """Label ``ax`` by the shared-label convention: the x label on the lowest panel of a
        column (x tick labels hidden above it when quantities share it), the y label on the
        first column of a row."""
        if self.is_bottom(ax):
            ax.set_xlabel(xlabel)
        elif self.share_x_label:
            ax.tick_params(axis="x", labelbottom=False)
        if self.is_left(ax):
            ax.set_ylabel(ylabel)

    def title(self, experiment: int, text: str, quantity: int = 0, extra: str = "") -> None:
        """Title the experiment's panel (its column's top panel by default), wrapped to fit."""
        chars = max(14, int(self.panel_width * 72 / (0.52 * _size("axes.titlesize"))))
        shown = _wrap_title(text, chars)
        if extra:
            shown += "\n" + _wrap_title(extra, chars)
        self.axes(experiment, quantity).set_title(shown)

    def band(self, ax: Axes, *args: Any, **kwargs: Any) -> Any:
        """:func:`kdtheory.report.figures.layout._band` on ``ax``, remembering the seed counts
        of the drawn points for the caption line."""
        return _band(ax, *args, seeds=self.seeds, **kwargs)

    def method_bands(
        self,
        ax: Axes,
        kappa: np.ndarray,
        values: Mapping[str, np.ndarray],
        objectives: Mapping[str, str],
        palette: Mapping[str, str],
        handles: dict[str, Any],
        **band: Any,
    ) -> None:
        """One band per method on ``ax``, in the canonical method order, each in its colour
        and marker, adding each method's line to the legend ``handles``.

        Parameters
        ----------
        values : mapping of str to array (fraction, seed)
            Each method's values.
        objectives : mapping of str to str
            Each method's objective (its marker).
        palette : mapping of str to str
            The store's colours (:func:`kdtheory.report.figures.style.method_palette`).
        **band
            Passed to :meth:`band` (``clip``, ``log``, ...).
        """
        for m in sorted(values, key=lambda m: _method_key(m, objectives.get(m))):
            line = self.band(
                ax, kappa, values[m], color_for(m, palette), marker_for(m, objectives[m]), m, **band
            )
            _collect(handles, line, m)

    def seed_caption(self, what: str = "Lines", band: str = BAND_NOTE) -> str:
        """``"Lines: mean over n = 3 seeds per point; bands: ± 1 s.e."`` with the seed counts
        of the drawn points (a range such as ``3–5`` when they differ)."""
        counts = sorted(n for n in self.seeds if n > 0)
        if not counts:
            return ""
        n = f"{counts[0]}" if counts[0] == counts[-1] else f"{counts[0]}–{counts[-1]}"
        seeds = "seed" if counts[-1] == 1 else "seeds"
        return f"{what}: mean over n = {n} {seeds} per point; {band}."

    def finish(
        self,
        handles: Mapping[str, Any],
        caption: str = "",
        ncol: int | None = None,
    ) -> Figure:
        """Add the legend and the caption line, place every panel, and size the figure.

        Parameters
        ----------
        handles : mapping of str to Artist
            Legend entries (label -> handle), shown once for the whole figure.
        caption : str
            The caption line (default :meth:`seed_caption`).
        ncol : int, optional
            Most legend columns (default as many as fit the width).

        Returns
        -------
        matplotlib.figure.Figure
        """
        fig = self.fig
        caption = caption or self.seed_caption()
        renderer = fig.canvas.get_renderer()
        in_slot = self._legend_in_slot(handles, renderer)
        legend_h = 0.0
        legend = None
        if in_slot is None and handles:
            legend = _top_legend(fig, handles, ncol, renderer)
            legend_h = legend.get_window_extent(renderer).height / fig.dpi + _PAD
        text = None
        caption_h = 0.0
        if caption:
            size = _size("legend.fontsize")
            # 6% slack: text measured at the screen dpi is narrower than at a PNG's (hinting)
            room = 0.94 * (self.width - 2 * _PAD)
            lines = _wrap_measured(caption, room, size, renderer, fig.dpi)
            text = fig.text(0.0, 0.0, "\n".join(lines), ha="left", va="bottom", color="#333333")
            text.set_fontsize(size)
            caption_h = _line_height(size) * len(lines) + _PAD
        # Twice: tick locators choose their ticks from the panels' size (and the tick label
        # size in the rcParams of the moment), so the ticks measured before the panels are
        # placed may not be those drawn. After the first placement the ticks are fixed
        # (_freeze_ticks), and the second measures exactly what every backend will draw.
        for _ in range(2):
            placed = self._place(_decorations(self, renderer), legend_h, caption_h)
            _freeze_ticks(self.cells)
        height, xs, ys, col_left, row_top, row_bottom, panel_w, panel_h = placed
        if legend is not None:
            legend.set_bbox_to_anchor((0.5, 1.0 - _PAD / height), transform=fig.transFigure)
        if in_slot is not None:
            r, c = in_slot[0]
            x0 = (xs[c] - col_left[c]) / self.width
            y0 = (ys[r] - row_bottom[r]) / height
            w = (col_left[c] + panel_w) / self.width
            h = (row_top[r] + panel_h + row_bottom[r]) / height
            in_slot[1].set_bbox_to_anchor((x0, y0, w, h), transform=fig.transFigure)
        if text is not None:
            text.set_position((_PAD / self.width, _PAD / height))
        _without_ligatures(fig)
        return fig

    def _place(
        self,
        decorations: _Room,
        legend_h: float,
        caption_h: float,
    ) -> tuple[
        float, list[float], list[float], list[float], list[float], list[float], float, float
    ]:
        """Size the figure and place every panel so that each column and row has the room its
        decorations need.

        Returns
        -------
        tuple
            The figure's height, the panels' left edges per column and bottom edges per row,
            the room left of each column, above and below each row, and the panel width and
            height (all in inches).
        """
        left, _right, top, bottom = decorations
        col_left = [
            max((left[a] for a, (_, c) in self.cells.items() if c == j), default=0.0)
            for j in range(self.ncols)
        ]
        row_top = [
            max((top[a] for a, (r, _) in self.cells.items() if r == i), default=0.0)
            for i in range(self.nrows)
        ]
        row_bottom = [
            max((bottom[a] for a, (r, _) in self.cells.items() if r == i), default=0.0)
            for i in range(self.nrows)
        ]
        panel_w = (self.width - sum(col_left) - self.ncols * _RIGHT - _PAD) / self.ncols
        fixed = _PAD + legend_h + sum(row_top) + sum(row_bottom) + caption_h + _PAD
        fixed += _PAD * (self.nrows - 1)
        panel_h = min(self.panel_height, (MAX_FIGURE_HEIGHT - fixed) / self.nrows)
        height = fixed + panel_h * self.nrows
        self.fig.set_size_inches(self.width, height)
        xs, x = [], _PAD
        for j in range(self.ncols):
            xs.append(x + col_left[j])
            x += col_left[j] + panel_w + _RIGHT
        ys, y = [], height - _PAD - legend_h
        for i in range(self.nrows):
            y -= row_top[i] + panel_h
            ys.append(y)
            y -= row_bottom[i] + _PAD
        for ax, (r, c) in self.cells.items():
            ax.set_position(
                [xs[c] / self.width, ys[r] / height, panel_w / self.width, panel_h / height]
            )
        return height, xs, ys, col_left, row_top, row_bottom, panel_w, panel_h

    def _legend_in_slot(self, handles: Mapping[str, Any], renderer: Any) -> Any:
        """A legend in the last spare slot when there is one and the legend fits it."""
        if not handles or not self.spare or self._quantities > 1:
            return None
        slot = self.spare[0]
        labels = list(handles)
        leg = self.fig.legend([handles[k] for k in labels], labels, loc="center", ncol=1)
        box = leg.get_window_extent(renderer)
        fits = (
            box.width / self.fig.dpi <= self.panel_width + 0.4
            and box.height / self.fig.dpi <= self.panel_height + 0.5
        )
        if not fits:
            leg.remove()
            return None
        return slot, leg


def panel_grid(
    n: int,
    quantities: int = 1,
    *,
    share_x_label: bool = True,
    panel_height: float | None = None,
) -> PanelGrid:
    """A figure with one panel per experiment (and per quantity), laid out from ``n``.

    One panel per experiment: 1 → one panel, single column (:data:`FIGURE_WIDTH`); 2 or 3 →
    one row at double-column width (:data:`FIGURE_WIDTH_DOUBLE`); 4 → 2×2; more → three columns,
    and the last row's spare slot holds the legend (no empty frame is ever drawn). Several
    quantities per experiment: rows are quantities, columns experiments (blocks of three
    columns beyond four experiments).

    Parameters
    ----------
    n : int
        Number of experiments.
    quantities : int
        Panels per experiment (stacked in a column).
    share_x_label : bool
        The quantities of an experiment share their x axis (label and tick labels only on the
        lowest).
    panel_height : float, optional
        Height of a panel in inches (default from its width); the figure is kept within
        :data:`MAX_FIGURE_HEIGHT` by shrinking panels.
    """
    nrows, ncols = grid_shape(n, quantities)
    width = FIGURE_WIDTH if ncols == 1 else FIGURE_WIDTH_DOUBLE
    if panel_height is None:
        w = (width - ncols * 0.55) / ncols
        panel_height = float(np.clip(0.8 * w, 1.35, 2.1))
    fig = Figure(figsize=(width, panel_height * nrows + 1.0))
    FigureCanvasAgg(fig)
    panels: list[list[Axes]] = []
    cells: dict[Axes, tuple[int, int]] = {}
    for e in range(n):
        if quantities == 1:
            spots = [divmod(e, ncols)]
        else:
            block, col = divmod(e, ncols)
            spots = [(block * quantities + q, col) for q in range(quantities)]
        column = []
        for r, c in spots:
            ax = fig.add_axes((0.1, 0.1, 0.8, 0.8), label=f"panel-{r}-{c}")
            cells[ax] = (r, c)
            column.append(ax)
        panels.append(column)
    return PanelGrid(
        fig=fig,
        panels=panels,
        nrows=nrows,
        ncols=ncols,
        cells=cells,
        width=width,
        panel_height=panel_height,
        share_x_label=share_x_label,
        _quantities=quantities,
    )


def _without_ligatures(fig: Figure) -> None:
    """Turn off ligatures in every text of ``fig`` (matplotlib >= 3.11 shapes text).

    A ligature glyph (the "ffl" of "shuffled") has no character of its own, and the PDF
    backend embeds it as a second subset of the font: a second font-subsetting pass per PDF
    (about 0.2 s) and text that does not search as typed. Tick labels (numbers) are left
    alone: walking them would make every tick.
    """
    texts: list[Text] = list(fig.texts)
    for leg in fig.legends:
        texts += [*leg.get_texts(), leg.get_title()]
    for ax in fig.axes:
        texts += [ax.title, *ax.texts]
        texts += [ax.xaxis.label, ax.yaxis.label]
    for text in texts:
        if hasattr(text, "set_fontfeatures"):
            text.set_fontfeatures(["-liga"])


def _size(key: str) -> float:
    """A font size from rcParams in points (named sizes such as ``"small"`` resolved)."""
    return float(FontProperties(size=matplotlib.rcParams[key]).get_size_in_points())


def _line_height(size: float) -> float:
    """Height (inches) of one line of text of ``size`` points, with matplotlib's spacing."""
    return 1.2 * size / 72.0


def _text_width(text: str, size: float, renderer: Any, dpi: float) -> float:
    """Width (inches) of ``text`` at ``size`` points in the paper style's font."""
    if not text:
        return 0.0
    w, _, _ = renderer.get_text_width_height_descent(text, FontProperties(size=size), False)
    return w / dpi


def _wrap_measured(text: str, width: float, size: float, renderer: Any, dpi: float) -> list[str]:
    """``text`` broken at spaces into lines no wider than ``width`` inches."""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if current and _text_width(candidate, size, renderer, dpi) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    return lines


def _freeze_ticks(cells: Iterable[Axes]) -> None:
    """Fix every panel's major ticks at those its locators choose now.

    Matplotlib's default locators choose the number of ticks at draw time from the axis length
    and the tick label size in the rcParams of that moment; a figure drawn or saved outside
    :func:`paper_style` (or at another size) would then get other ticks than those the layout
    measured, e.g. wider labels that run off the figure's edge.
    """
    from matplotlib.ticker import FixedLocator

    for ax in cells:
        for axis in (ax.xaxis, ax.yaxis):
            locator = axis.get_major_locator()
            if isinstance(locator, FixedLocator) or axis.get_scale() != "linear":
                continue
            axis.set_major_locator(FixedLocator(locator()))


def _tick_labels(axis: Any) -> list[str]:
    """The major tick labels ``axis`` will draw, from its locator and formatter (no ticks are
    made: that is what makes measuring cheap)."""
    lo, hi = sorted(axis.get_view_interval())
    span = abs(hi - lo) or 1.0
    locs = [v for v in axis.get_major_locator()() if lo - 1e-9 * span <= v <= hi + 1e-9 * span]
    if not locs:
        return []
    return [s for s in axis.get_major_formatter().format_ticks(locs) if s]


def _decorations(
    grid: PanelGrid, renderer: Any
) -> tuple[dict[Axes, float], dict[Axes, float], dict[Axes, float], dict[Axes, float]]:
    """Room (inches) each panel's tick labels, axis labels and title take on its four sides."""
    rc = matplotlib.rcParams
    dpi = grid.fig.dpi
    tick_size, label_size, title_size = (
        _size("ytick.labelsize"),
        _size("axes.labelsize"),
        _size("axes.titlesize"),
    )
    xtick = (rc["xtick.major.size"] + rc["xtick.major.pad"]) / 72.0
    ytick = (rc["ytick.major.size"] + rc["ytick.major.pad"]) / 72.0
    labelpad = rc["axes.labelpad"] / 72.0
    left, right, top, bottom = {}, {}, {}, {}
    for ax in grid.cells:
        ax.get_xlim(), ax.get_ylim()  # settle autoscaling
        widths = [_text_width(s, tick_size, renderer, dpi) for s in _tick_labels(ax.yaxis)]
        ylabel = ax.get_ylabel()
        left[ax] = (
            ytick
            + max(widths, default=0.0)
            + (labelpad + _line_height(label_size) * (ylabel.count("\n") + 1) if ylabel else 0.0)
        )
        shows_ticks = (
            ax.xaxis.get_tick_params()["labelbottom"]
            if hasattr(ax.xaxis, "get_tick_params")
            else True
        )
        xlabel = ax.get_xlabel()
        bottom[ax] = (xtick + _line_height(_size("xtick.labelsize")) if shows_ticks else 0.02) + (
            labelpad + _line_height(label_size) * (xlabel.count("\n") + 1) if xlabel else 0.0
        )
        title = ax.get_title()
        top[ax] = (
            rc["axes.titlepad"] / 72.0 + _line_height(title_size) * (title.count("\n") + 1)
            if title
            else 0.04
        )
        right[ax] = _RIGHT
    return left, right, top, bottom


def _top_legend(fig: Figure, handles: Mapping[str, Any], ncol: int | None, renderer: Any) -> Any:
    """The shared legend above the panels, with as many columns as fit the figure's width."""
    labels = list(handles)
    width = fig.get_figwidth() * fig.dpi
    start = min(len(labels), ncol or 5)
    for n in range(start, 0, -1):
        order = _row_major(len(labels), n)
        leg = fig.legend(
            [handles[labels[i]] for i in order],
            [labels[i] for i in order],
            loc="upper center",
            bbox_to_anchor=(0.5, 1.0),
            ncol=n,
        )
        if n == 1 or leg.get_window_extent(renderer).width <= 0.98 * width:
            return leg
        leg.remove()
    raise AssertionError("unreachable")  # pragma: no cover
