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

__all__ = [
    "CI_NOTE",
    "Figure",
    "accuracy_column",
    "ci_column",
    "estimate_columns",
    "gaps_figure",
    "kappa_table",
    "report_section",
    "table_level",
]

#: How the figures of :mod:`kdtheory.report.figures` draw uncertainty, for captions (each
#: figure also states it, with its number of seeds, in a caption line inside the PDF).
CI_NOTE = (
    "Lines are means over seeds (the number of seeds is stated on the figure); bands (bars) "
    "are ± 1 standard error of the mean, not confidence intervals."
)


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
        Paths of tables written with :func:`kdtheory.report.document.write_table` (their
        captions, which it returns with the paths, go into the section's ``captions``).
    """
    from kdtheory.report.document import ReportSection

    paths: list[str] = []
    captions: dict[str, str] = dict(getattr(tables, "captions", {}))
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
        "KD's test-accuracy advantage (percentage points) over label training, label smoothing "
        "(matched epsilon) and KD with the teacher's wrong-class probabilities shuffled, vs κ; "
        f"each line in the comparator's colour, one panel per experiment. {CI_NOTE}",
    )


def accuracy_column(header: str, method: str) -> Any:
    """The column ``"<header> acc. (%)"`` of the records' ``<method>_accuracy`` (one decimal),
    as :func:`kdtheory.hypothesis.toolkit.fraction_means` names an accuracy."""
    from kdtheory.report.table import Column

    return Column(f"{header} acc. (%)", f"{method}_accuracy", ".1f")


def table_level(verdict: Any) -> float:
    """The level of the intervals in a hypothesis's per-kappa tables: the report's convention,
    ``1 - 2*alpha`` of the verdict's alpha (:func:`kdtheory.report.format.interval_level`),
    the level :func:`kdtheory.hypothesis.toolkit.mean_ci_columns` computes them at."""
    from kdtheory.report.format import interval_level

    return interval_level(verdict.alpha)


def ci_column(name: str = "", fmt: str = ".2f", *, level: float, suffix: str = "") -> Any:
    """A table column of an interval at ``level``: the record keys ``<name>_ci_low`` and
    ``<name>_ci_high`` (``ci_low``/``ci_high`` without a name), as
    :func:`kdtheory.hypothesis.toolkit.mean_ci_columns` writes them.

    Parameters
    ----------
    name : str
        The column whose interval it is (empty: the record's unprefixed interval).
    fmt : str
        Number format of the bounds.
    level : float
        The intervals' level (:func:`table_level`): the header reads ``"90% CI"``.
    suffix : str
        Appended to the header; two interval columns of one table need different headers.

    Returns
    -------
    kdtheory.report.table.Column
    """
    from kdtheory.report.format import ci_header, latex_escape
    from kdtheory.report.table import Column

    ci = f"{name}_ci" if name else "ci"
    header = ci_header(level, suffix)
    return Column(header, (f"{ci}_low", f"{ci}_high"), fmt, header_tex=latex_escape(header))


def estimate_columns(
    header: str,
    name: str,
    fmt: str = ".2f",
    *,
    header_tex: str | None = None,
    prefix_ci: bool = False,
    level: float,
    ci_suffix: str = "",
) -> list[Any]:
    """Two table columns: a mean over seeds and its interval at ``level`` (:func:`ci_column`),
    as :func:`kdtheory.hypothesis.toolkit.mean_ci_columns` writes them.

    Parameters
    ----------
    header : str
        Header of the mean's column.
    name : str
        Record key of the mean.
    fmt : str
        Number format of the mean and the bounds.
    header_tex : str, optional
        Raw LaTeX header of the mean's column.
    prefix_ci : bool
        The interval's keys are ``<name>_ci_low``/``<name>_ci_high`` (else ``ci_low``/``ci_high``).
    level : float
        The interval's level (:func:`table_level`), named in its header.
    ci_suffix : str
        Appended to the interval's header (``"90% CI"``).

    Returns
    -------
    list of kdtheory.report.table.Column
    """
    from kdtheory.report.table import Column

    return [
        Column(header, name, fmt, header_tex=header_tex),
        ci_column(name if prefix_ci else "", fmt, level=level, suffix=ci_suffix),
    ]


def kappa_table(
    out_dir: Path,
    verdict: Any,
    columns: Sequence[Any],
    caption: str,
    records: Sequence[Any] | None = None,
    name: str = "by-kappa",
) -> Any:
    """Write a hypothesis's per-kappa table ``<hypothesis>-<name>``: a κ column (the records'
    ``n_train``), then ``columns``, grouped by experiment under its display title.

    Parameters
    ----------
    out_dir : Path
        The report folder.
    verdict : Verdict
        The hypothesis's verdict: its name is the table's file stem before ``-by-kappa``.
    columns : sequence of kdtheory.report.table.Column
    caption : str
    records : sequence of dict, optional
        One per (experiment, fraction); default the verdict's ``per_fraction`` table.
    name : str
        The table's name after the hypothesis's (a second per-kappa table needs another).

    Returns
    -------
    kdtheory.report.tables.TablePaths
        The files written (:func:`kdtheory.report.document.write_table`), relative to
        ``out_dir``, with the caption: the ``tables`` argument of :func:`report_section`.
    """
    from kdtheory.report.document import write_table
    from kdtheory.report.table import Column

    if records is None:
        records = verdict.tables.get("per_fraction", [])
    kappa = Column("κ", "n_train", "int", header_tex="$\\kappa$")
    stem = f"{verdict.hypothesis}-{name}"
    titles = getattr(verdict, "titles", None)
    return write_table(out_dir, stem, records, [kappa, *columns], caption, titles=titles)
