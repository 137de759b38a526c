"""Report sections a hypothesis shows under its verdict in ``kdtheory report``.

A hypothesis built on :class:`kdtheory.hypothesis.template.PooledHypothesis` returns them from
``report_sections(verdict, store, out_dir)``; the built-in report plugin
(:mod:`kdtheory.hypotheses.figures`) calls it for every registered hypothesis. Figures are drawn
once per report (a second hypothesis showing the same figure reuses the files); tables come from
:func:`kdtheory.report.document.write_table`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdtheory.errors import MissingRequirementError

__all__ = ["CI_NOTE", "Figure", "gaps_figure", "report_section"]

#: How the figures of :mod:`kdtheory.report.figures` draw uncertainty, for captions.
CI_NOTE = "Lines are means over seeds, bands (bars) 95% t-intervals over seeds."


@dataclass(frozen=True)
class Figure:
    """A figure of a report section.

    Attributes
    ----------
    name : str
        File stem under ``figures/`` (also the key of its caption).
    make : callable
        Draws the figure (a matplotlib ``Figure``); called only when the files do not exist.
    caption : str
    """

    name: str
    make: Callable[[], Any]
    caption: str


def _saved(out_dir: Path, figure: Figure) -> list[str]:
    """The figure's files, relative to ``out_dir``: drawn and saved unless already there."""
    from kdtheory.report.document import FIGURES_DIR, save_figure, slug

    stem = Path(out_dir) / FIGURES_DIR / slug(figure.name)
    existing = [stem.with_suffix(s) for s in (".pdf", ".png")]
    if all(p.is_file() for p in existing):
        return [p.relative_to(out_dir).as_posix() for p in existing]
    return save_figure(figure.make(), out_dir, figure.name)


def report_section(
    out_dir: Path,
    title: str,
    figures: Sequence[Figure] = (),
    text: str = "",
    tables: Sequence[str] = (),
) -> Any:
    """A :class:`kdtheory.report.document.ReportSection` with ``figures`` saved under
    ``out_dir``.

    A figure whose data the store lacks (its ``make`` raises
    :class:`~kdtheory.errors.MissingRequirementError`) is replaced by a note saying why.

    Parameters
    ----------
    out_dir : Path
        The report folder.
    title : str
    figures : sequence of Figure
    text : str
        Markdown shown above the figures.
    tables : sequence of str
        Paths of tables written with :func:`kdtheory.report.document.write_table`.
    """
    from kdtheory.report.document import ReportSection

    paths: list[str] = []
    captions: dict[str, str] = {}
    notes = [text] if text else []
    for figure in figures:
        try:
            written = _saved(out_dir, figure)
        except MissingRequirementError as exc:
            notes.append(f"No `{figure.name}` figure: {exc}")
            continue
        paths += written
        captions[figure.name] = figure.caption
    return ReportSection(
        title=title, text="\n\n".join(notes), figures=paths, tables=list(tables), captions=captions
    )


def gaps_figure(store: Any) -> Figure:
    """KD's accuracy advantage over every other method vs kappa
    (:func:`kdtheory.report.figures.method_gaps`)."""
    from kdtheory.report import figures as plot

    return Figure(
        "gaps",
        lambda: plot.method_gaps(store),
        "KD's test-accuracy advantage (points) over label training, label smoothing (matched "
        "epsilon) and KD with the teacher's wrong-class probabilities shuffled, vs κ; each line "
        f"in the comparator's colour. {CI_NOTE}",
    )
