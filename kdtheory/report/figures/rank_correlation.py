"""Dark knowledge: wrong-class rank correlation with the teacher."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure

from kdtheory.report.figures.data import (
    _kappa,
    _objective_map,
    _store_palette,
)
from kdtheory.report.figures.grid import panel_grid
from kdtheory.report.figures.layout import KAPPA_LABEL, _kappa_axis, _select, _titles
from kdtheory.report.figures.style import paper_style
from kdtheory.store import accessor as _accessor  # noqa: F401 - registers ``Dataset.kd``
from kdtheory.store.arrays import bare, cells, sorted_experiment
from kdtheory.store.runs import as_store


def rank_correlation(store: Any, experiments: Sequence[str] | None = None) -> Figure:
    """Wrong-class rank correlation of each method's test predictions with the teacher's.

    Per test sample, the Spearman correlation of the student's and the teacher's logits over the
    classes other than the true one, averaged over samples; mean ± 1 standard error over seeds vs
    kappa,
    one panel per experiment. High values mean the student reproduces the teacher's ordering of
    the wrong classes ("dark knowledge").
    """
    from kdtheory.metrics import wrong_class_rank_correlation

    store = as_store(store)
    names = _select(store, experiments)
    titles = _titles(store)
    palette = _store_palette(store)
    with paper_style():
        grid = panel_grid(len(names))
        handles: dict[str, Any] = {}
        for i, name in enumerate(names):
            ax = grid.axes(i)
            ds = sorted_experiment(store[name])
            kappa = _kappa(ds)
            # arm by arm, as the dark-knowledge test computes it, so its results are reused
            # (the rank correlation remembers recent inputs by content)
            teacher, labels = bare(ds["teacher_test_logits"]), bare(ds["test_labels"])
            corr = {
                m: cells(
                    wrong_class_rank_correlation(
                        bare(ds["test_logits"].sel(arm=m)), teacher, labels, "test_sample"
                    )
                )
                for m in ds.kd.arms
            }
            grid.method_bands(
                ax, kappa, corr, _objective_map(ds), palette, handles, clip=(-1.0, 1.0)
            )
            _kappa_axis(ax, kappa, label=False)
            grid.label(ax, KAPPA_LABEL, "Spearman ρ with teacher\n(wrong classes)")
            grid.title(i, titles[name])
        fig = grid.finish(handles)
    return fig
