"""Built-in figures: what ``kdtheory plot NAME`` draws.

This plugin registers the paper-style figures of :mod:`kdtheory.report.figures` through the same
``kdtheory_register_figures`` hook a third-party package uses. Registering them imports neither
matplotlib nor xarray: each spec's ``draw`` imports :mod:`kdtheory.report.figures` when a figure
is drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kdtheory import hookimpl
from kdtheory.plugin.specs import FigureSpec

__all__ = ["kdtheory_register_figures"]


def _drawn_by(function: str, **fixed: Any) -> Callable[..., Any]:
    """``draw(store, experiments=None, **kwargs)`` calling ``kdtheory.report.figures.<function>``
    with the keywords ``fixed``, imported on the first call."""

    def draw(store: Any, experiments: Sequence[str] | None = None, **kwargs: Any) -> Any:
        from kdtheory.report import figures

        return getattr(figures, function)(store, experiments=experiments, **fixed, **kwargs)

    shown = ", ".join(f"{k}={v!r}" for k, v in fixed.items())
    draw.__name__ = draw.__qualname__ = function
    draw.__doc__ = f"Draw :func:`kdtheory.report.figures.{function}`" + (
        f" with {shown}." if shown else "."
    )
    return draw


@hookimpl
def kdtheory_register_figures() -> list[FigureSpec]:
    """Register the built-in figures.

    Returns
    -------
    list of FigureSpec
        ``accuracy``, ``kd-gain``, ``gaps``, ``fidelity``, ``collapse``, ``collapse-all``,
        ``temperature`` and ``rank-correlation``.
    """
    return [
        FigureSpec(
            "accuracy",
            "test accuracy vs kappa per method, mean ± 1 s.e. over seeds",
            _drawn_by("accuracy_curves"),
        ),
        FigureSpec(
            "kd-gain",
            "KD - label accuracy vs kappa, and the data multiplier of KD",
            _drawn_by("kd_gain"),
        ),
        FigureSpec(
            "gaps",
            "KD - label, KD - label smoothing and KD - shuffled KD accuracy vs kappa",
            _drawn_by("method_gaps"),
        ),
        FigureSpec(
            "fidelity",
            "student-teacher agreement on trained-on vs unseen samples, and their gap vs kappa",
            _drawn_by("fidelity"),
        ),
        FigureSpec(
            "collapse",
            "neural collapse (NC1) and linear CKA with the teacher vs kappa, per method",
            _drawn_by("collapse"),
        ),
        FigureSpec(
            "collapse-all",
            "every neural-collapse metric and CKA vs kappa (rows: metrics, columns: experiments)",
            _drawn_by("collapse", metrics="all"),
        ),
        FigureSpec(
            "temperature",
            "KD at several temperatures: accuracy vs kappa, and the gain over label vs T",
            _drawn_by("temperature_effects"),
        ),
        FigureSpec(
            "rank-correlation",
            "wrong-class rank correlation of student and teacher (dark knowledge) vs kappa",
            _drawn_by("rank_correlation"),
        ),
    ]
