"""Visual regression of the report figures: structural facts a reviewer checks by eye.

Each figure is drawn on small synthetic stores of 1 to 5 experiments and rendered once; the
tests then read renderer bounding boxes: one panel per experiment (and quantity) and no empty
or hidden panel, labels by the shared-label convention, a legend and titles that cover no
panel, nothing outside the page, and a caption line inside the figure that states the bands
and the number of seeds.
"""

from __future__ import annotations

import math
import re
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import SMALL
from matplotlib.figure import Figure

from kdtheory.report import figures as plot
from kdtheory.report.figures.grid import grid_shape
from kdtheory.testing.synthetic import make_store

#: Figure -> (draw, panels per experiment).
FIGURES = {
    "accuracy": (plot.accuracy_curves, 1),
    "gaps": (plot.method_gaps, 1),
    "rank-correlation": (plot.rank_correlation, 1),
    "kd-gain": (plot.kd_gain, 2),
    "fidelity": (plot.fidelity, 2),
    "collapse": (plot.collapse, 2),
}

_STORES: dict[int, dict] = {}


def _store(n: int) -> dict:
    if n not in _STORES:
        _STORES[n] = make_store(n, seed=40 + n, **SMALL)
    return _STORES[n]


_DRAWN: dict[tuple[str, int], Figure] = {}


def _drawn(name: str, n: int) -> Figure:
    """The figure ``name`` of an ``n``-experiment store, rendered once (renderer boxes valid)."""
    if (name, n) not in _DRAWN:
        fig = FIGURES[name][0](_store(n))
        fig.canvas.draw()
        _DRAWN[name, n] = fig
    return _DRAWN[name, n]


CASES = [(name, n) for n in (1, 2, 3, 4) for name in FIGURES] + [("accuracy", 5), ("gaps", 7)]


def _panels(fig: Figure) -> list:
    return [ax for ax in fig.axes if ax.get_visible() and ax.axison]


def _shrunk(bbox, by: float = 1.0):
    """``bbox`` less ``by`` pixels on each side (touching edges are not overlaps)."""
    from matplotlib.transforms import Bbox

    return Bbox.from_extents(bbox.x0 + by, bbox.y0 + by, bbox.x1 - by, bbox.y1 - by)


@pytest.mark.parametrize(("name", "n"), CASES)
def test_one_visible_panel_per_experiment_and_none_empty(name, n):
    fig = _drawn(name, n)
    per = FIGURES[name][1]
    panels = _panels(fig)
    assert len(panels) == per * n
    assert len(fig.axes) == len(panels), "no hidden or switched-off axes left in the grid"
    for ax in panels:
        assert ax.has_data(), f"empty panel {ax.get_title()!r}"
    rows, cols = grid_shape(n, per)
    assert rows * cols - per * n < max(cols, 1), "at most one row's worth of spare slots"


@pytest.mark.parametrize(("name", "n"), CASES)
def test_labels_follow_the_shared_label_convention(name, n):
    """The lowest panel of each column names its x axis, the first of each row its y axis; a
    panel without a label shares that of the panel below it (x) or left of it (y)."""
    fig = _drawn(name, n)
    panels = _panels(fig)
    boxes = {ax: ax.get_position() for ax in panels}
    for ax in panels:
        box = boxes[ax]
        below = [o for o in panels if math.isclose(boxes[o].x0, box.x0) and boxes[o].y1 < box.y0]
        left = [o for o in panels if math.isclose(boxes[o].y0, box.y0) and boxes[o].x1 < box.x0]
        if not below:
            assert ax.get_xlabel(), f"{name}: a column's lowest panel has no x label"
        elif not ax.get_xlabel():
            lowest = min(below, key=lambda o: boxes[o].y0)
            assert lowest.get_xlabel(), f"{name}: no x label in the column"
        if not left:
            assert ax.get_ylabel(), f"{name}: a row's first panel has no y label"
        elif not ax.get_ylabel():
            first = min(left, key=lambda o: boxes[o].x0)
            assert first.get_ylabel(), f"{name}: no y label in the row"


@pytest.mark.parametrize(("name", "n"), CASES)
def test_legend_and_titles_cover_no_panel_and_stay_on_the_page(name, n):
    fig = _drawn(name, n)
    renderer = fig.canvas.get_renderer()
    panels = _panels(fig)
    page = fig.bbox
    assert len(fig.legends) == 1, "one shared legend"
    legend = fig.legends[0].get_window_extent(renderer)
    for ax in panels:
        assert not _shrunk(legend).overlaps(ax.bbox), f"{name}: the legend covers a panel"
    for box in [legend] + [t.get_window_extent(renderer) for t in fig.texts]:
        assert box.x0 >= page.x0 - 1 and box.x1 <= page.x1 + 1
        assert box.y0 >= page.y0 - 1 and box.y1 <= page.y1 + 1
    for ax in panels:
        tight = _shrunk(ax.get_tightbbox(renderer), 2.0)
        assert tight.x0 >= page.x0 - 1 and tight.x1 <= page.x1 + 1, f"{name}: off the page"
        assert tight.y0 >= page.y0 - 1 and tight.y1 <= page.y1 + 1, f"{name}: off the page"
        assert not tight.overlaps(legend), f"{name}: a panel's labels run into the legend"
        for other in panels:
            if other is not ax:
                assert not tight.overlaps(other.bbox), (
                    f"{name}: labels or title of {ax.get_title()!r} run into another panel"
                )
        if ax.get_title():
            title = ax.title.get_window_extent(renderer)
            assert title.y0 >= ax.bbox.y1 - 1, "a title sits above its panel"


@pytest.mark.parametrize(("name", "n"), CASES)
def test_caption_line_states_bands_and_seeds(name, n):
    fig = _drawn(name, n)
    renderer = fig.canvas.get_renderer()
    captions = [t for t in fig.texts if "s.e." in t.get_text()]
    assert len(captions) == 1, [t.get_text() for t in fig.texts]
    text = captions[0].get_text().replace("\n", " ")
    assert re.search(r"n = 3 seeds", text), text  # SMALL has three seeds
    assert "± 1 s.e." in text
    box = captions[0].get_window_extent(renderer)
    assert all(box.y1 <= ax.get_tightbbox(renderer).y0 + 1 for ax in _panels(fig)), (
        "the caption line is below every panel"
    )


def test_caption_gives_a_range_when_seed_counts_differ():
    store = make_store(1, seed=3, **SMALL)
    ((name, ds),) = store.items()
    logits = ds["test_logits"].copy()
    logits[{"fraction": 0, "seed": 0}] = np.nan  # one cell not trained: 2 seeds at that point
    fig = plot.accuracy_curves({name: ds.assign(test_logits=logits)})
    (caption,) = [t.get_text() for t in fig.texts if "s.e." in t.get_text()]
    assert "n = 2–3 seeds" in caption.replace("\n", " ")


@pytest.mark.parametrize(("n", "shape"), [(1, (1, 1)), (2, (1, 2)), (3, (1, 3)), (4, (2, 2))])
def test_grid_shape_and_width_follow_the_number_of_experiments(n, shape):
    assert grid_shape(n) == shape
    fig = _drawn("accuracy", n)
    width = plot.FIGURE_WIDTH if n == 1 else plot.FIGURE_WIDTH_DOUBLE
    assert fig.get_size_inches()[0] == pytest.approx(width)


def test_spare_slot_holds_the_legend():
    """Five experiments on three columns: the sixth slot is the legend, not an empty frame."""
    fig = _drawn("accuracy", 5)
    renderer = fig.canvas.get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    panels = _panels(fig)
    lowest = min(ax.bbox.y0 for ax in panels)
    assert legend.y0 >= lowest - 30 and legend.y1 <= max(ax.bbox.y1 for ax in panels) + 1
    assert legend.x0 > max(ax.bbox.x1 for ax in panels if ax.bbox.y0 <= lowest + 1)


def test_collapse_all_is_a_page_of_metric_rows_and_experiment_columns():
    fig = plot.collapse(_store(3), metrics="all")
    w, h = fig.get_size_inches()
    assert w == pytest.approx(plot.FIGURE_WIDTH_DOUBLE) and h <= 9.0
    panels = _panels(fig)
    assert len(panels) == 7 * 3
    columns = sorted({round(ax.get_position().x0, 4) for ax in panels})
    assert len(columns) == 3
    titled = [ax for ax in panels if ax.get_title()]
    assert len(titled) == 3, "one column title per experiment"
    left = [ax for ax in panels if round(ax.get_position().x0, 4) == columns[0]]
    assert all(ax.get_ylabel() for ax in left)
    assert not any(ax.get_ylabel() for ax in panels if ax not in left)


def test_fidelity_draws_the_verdicts_exponent_not_the_deciding_estimate():
    """A fidelity-decay row rejected by lack of fit carries the curvature q as its estimate;
    the fitted line and the panel title must use the exponent b (``extra["b"]``)."""
    store = _store(1)
    (name,) = store
    a = (0.02, 0.03, 0.025)
    verdict = SimpleNamespace(
        experiments=[
            SimpleNamespace(label=name, estimate=-0.073, extra={"b": -0.384, "kd_method": None})
        ],
        tables={"seed_fits": [{"experiment": name, "a": v, "b": -0.384} for v in a]},
    )
    fig = plot.fidelity(store, verdict)
    gap_ax = fig.axes[1]
    (fit,) = [line for line in gap_ax.get_lines() if line.get_label() == "power-law fit"]
    x, y = (np.log(np.asarray(v, dtype=float)) for v in fit.get_data())
    slope = (y[-1] - y[0]) / (x[-1] - x[0])
    assert slope == pytest.approx(-0.384, abs=1e-6)
    kappa = np.asarray(store[name].kd.kappa.values, dtype=float)
    centre = float(np.mean(np.log(kappa)))
    at_centre = np.interp(centre, x, y)
    assert np.exp(at_centre) == pytest.approx(100 * np.exp(np.mean(np.log(a))), rel=1e-6)
    assert "−0.38" in gap_ax.get_title() and "−0.07" not in gap_ax.get_title()


@pytest.mark.parametrize(("name", "n"), CASES)
def test_text_stays_on_the_page_at_the_png_resolution(name, n):
    """Text is measured at the screen dpi; hinting makes it wider at the PNG's, which clipped
    the end of a caption line before the layout left slack for it."""
    from kdtheory.report.figures.saving import PNG_DPI

    fig = _drawn(name, n)
    fig.set_dpi(PNG_DPI)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    page = fig.bbox
    for text in fig.texts:
        box = text.get_window_extent(renderer)
        assert box.x0 >= page.x0 - 1 and box.x1 <= page.x1 + 1, (name, text.get_text())
