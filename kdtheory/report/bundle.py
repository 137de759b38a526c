"""A paper bundle: ``kdtheory report --latex-only``, a folder a paper can ``\\input{results}``.

:func:`write_bundle` turns a report folder under construction (figures and tables already written
by :func:`kdtheory.report.document.build_report`) into::

    bundle/
      results.tex             figure and table floats with captions and labels, and a short
                              paragraph per hypothesis (decision, deciding p, CI)
      results-standalone.tex  a minimal document around results.tex, for checking that it compiles
      figures/*.pdf           vector figures (a figure without a PDF keeps its PNG)
      tables/*.tex            booktabs table bodies
      verdicts.json           the verdicts and provenance, as in a full report

Everything else the report would hold (HTML, Markdown, CSV, PNGs that have a PDF, compilable
``-document.tex`` examples) is removed before the folder is moved into place, so the bundle is
written atomically like a report. Captions are the report's own: the ``ReportSection``
captions of its figures and tables (filled where the tables are written).
Tables are full-width floats (``table*``) at their natural size, never scaled; the interval
convention of the report is stated once, in a paragraph at the top.

Every path in ``results.tex`` is prefixed with ``\\kdresultsdir`` (empty by default), so a paper
that keeps the bundle in a sub-folder writes ``\\newcommand{\\kdresultsdir}{results/}`` before
``\\input{results/results}``. Standard library only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kdtheory.report.format import interval_convention, latex_escape, p_relation, tex_ci, tex_num
from kdtheory.report.latex import latex_document, table_float
from kdtheory.report.sections import FIGURES_DIR, TABLES_DIR, ReportSection, figure_groups, slug
from kdtheory.report.verdict_parts import titled

if TYPE_CHECKING:
    from kdtheory.hypothesis.verdict import Verdict

__all__ = [
    "RESULTS_TEX",
    "STANDALONE_TEX",
    "bundle_targets",
    "keep_bundle_files",
    "results_tex",
    "standalone_tex",
    "verdict_paragraph",
    "write_bundle",
]

RESULTS_TEX = "results.tex"
STANDALONE_TEX = "results-standalone.tex"

#: LaTeX packages ``results.tex`` needs, with what for.
PACKAGES = (
    ("booktabs", "the rules of every table"),
    ("tabularx", "the line-wide verdict tables"),
    ("graphicx", "\\includegraphics of the figures"),
)

#: figure files a paper can include with pdflatex, best first
_FIGURE_SUFFIXES = (".pdf", ".png", ".jpg", ".jpeg")

_DIR_MACRO = "\\kdresultsdir"
_TARGET = re.compile(
    r"\\(?:input|includegraphics(?:\[[^\]]*\])?)\{\\kdresultsdir\s*(?P<path>[^}]*)\}"
)


def _figure_file(paths: Sequence[str]) -> str | None:
    for suffix in _FIGURE_SUFFIXES:
        for p in paths:
            if p.lower().endswith(suffix):
                return p
    return None


def _table_bodies(paths: Sequence[str]) -> list[str]:
    """The booktabs bodies among a section's table files (not the ``-document.tex`` examples)."""
    return [p for p in paths if p.endswith(".tex") and not p.endswith("-document.tex")]


def _label(kind: str, path: str) -> str:
    return f"{kind}:{slug(Path(path).stem)}"


#: A figure wider than this (inches) spans both columns of a two-column paper (``figure*``); the
#: figures are drawn 3.3 in (one column) or 6.9 in (both) wide, so each prints at its natural size.
WIDE_FIGURE_IN = 4.5

_MEDIABOX = re.compile(rb"/MediaBox\s*\[\s*[-\d.]+\s+[-\d.]+\s+([-\d.]+)\s+[-\d.]+\s*\]")


def pdf_width_in(path: Path) -> float | None:
    """Width in inches of the first page of the PDF at ``path`` (its MediaBox), None if unknown."""
    try:
        found = _MEDIABOX.search(path.read_bytes())
    except OSError:
        return None
    return float(found.group(1)) / 72.0 if found else None


def _figure_float(path: str, caption: str, wide: bool = False) -> list[str]:
    env = "figure*" if wide else "figure"
    lines = [
        f"\\begin{{{env}}}[tbp]",
        "\\centering",
        f"\\includegraphics[width=\\linewidth]{{{_DIR_MACRO} {path}}}",
    ]
    if caption:
        lines.append(f"\\caption{{{caption}}}")
    return [*lines, f"\\label{{{_label('fig', path)}}}", f"\\end{{{env}}}", ""]


def _table_float(path: str, caption: str) -> list[str]:
    body = f"\\input{{{_DIR_MACRO} {path}}}"
    label = _label("tab", path)
    return [*table_float(body, caption, label=label, caption_above=True, wide=True), ""]


def _section_floats(root: Path, section: ReportSection, shown: set[str]) -> list[str]:
    """Floats for the figures and tables of ``section``; one already in ``shown`` (a figure
    two hypotheses share) is referred to instead of repeated."""
    lines: list[str] = []
    again: list[str] = []
    for name, files in figure_groups(section.figures):
        path = _figure_file(files)
        if path is None:
            continue
        if path in shown:
            again.append(f"Figure~\\ref{{{_label('fig', path)}}}")
            continue
        shown.add(path)
        width = pdf_width_in(root / path) if path.endswith(".pdf") else None
        wide = width is not None and width > WIDE_FIGURE_IN
        lines += _figure_float(path, latex_escape(section.caption(name)), wide)
    for path in _table_bodies(section.tables):
        if path in shown:
            again.append(f"Table~\\ref{{{_label('tab', path)}}}")
            continue
        shown.add(path)
        lines += _table_float(path, latex_escape(section.caption(path) or section.title))
    if again:
        lines = [f"See also {', '.join(again)}.", "", *lines]
    return lines


def _finite(x: object) -> bool:
    try:
        return math.isfinite(float(x))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def verdict_paragraph(v: Verdict) -> list[str]:
    """A short paragraph on ``v``: its claim, decision, deciding p (Holm-adjusted in a family)
    and the estimate with its CI; labelled ``hyp:<hypothesis>``."""
    name = latex_escape(v.hypothesis)
    lines = [f"\\paragraph{{Hypothesis \\texttt{{{name}}}.}}\\label{{hyp:{slug(v.hypothesis)}}}"]
    words = [latex_escape(" ".join(str(v.claim).split())).rstrip(".") + "."] if v.claim else []
    words.append(f"Decision: \\emph{{{latex_escape(v.decision)}}}.")
    if not v.available:
        words.append(latex_escape(" ".join(titled(str(v.reason), v.titles or {}).split())))
        return [*lines, " ".join(words), ""]
    tests: list[str] = []
    if v.p_adjusted is not None and _finite(v.p_adjusted):
        size = f" across {len(v.family)} hypotheses" if v.family else ""
        tests.append(f"Holm-adjusted $p$ {latex_escape(p_relation(v.p_adjusted))}{size}")
    if _finite(v.p_value):
        tests.append(f"unadjusted $p$ {latex_escape(p_relation(v.p_value))}")
    if tests:
        name = titled(v.deciding.name, v.titles or {}) if v.deciding is not None else ""
        deciding = f" ({latex_escape(name)})" if name else ""
        words.append(f"Deciding test{deciding}: {', '.join(tests)}, $\\alpha = {v.alpha:g}$.")
    if _finite(v.estimate):
        lo, hi = tuple(v.ci) if v.ci is not None else (math.nan, math.nan)
        effect = f" ({latex_escape(' '.join(str(v.effect).split()))})" if v.effect else ""
        words.append(
            f"Estimate{effect}: {tex_num(v.estimate)}, {latex_escape(v.ci_note)} {tex_ci(lo, hi)}."
        )
    return [*lines, " ".join(words), ""]


def results_tex(
    root: Path,
    verdicts: Sequence[Verdict],
    sections: Mapping[str, Sequence[ReportSection]],
    overview: Sequence[ReportSection],
    family_tables: Sequence[str],
    command: str | None = None,
) -> str:
    """The text of ``results.tex`` for a report folder ``root`` being built (its figures and
    tables, with their ``-document.tex`` examples, still there)."""
    head = [
        "% results.tex: the results of a kdtheory report, for a paper to \\input{results}.",
        *([f"% Written by: {' '.join(command.split())}"] if command else []),
        "% Needs in the paper's preamble:",
        *(f"%   \\usepackage{{{pkg}}}  % {why}" for pkg, why in PACKAGES),
        "% and, with pdflatex, \\usepackage[utf8]{inputenc} (the \\DeclareUnicodeCharacter lines",
        f"% of {STANDALONE_TEX} for any character beyond Latin-1 it uses).",
        "% Paths are relative to this folder: keeping it in a sub-folder, define before \\input",
        "%   \\newcommand{\\kdresultsdir}{results/}",
        "% Labels: fig:<figure>, tab:<table>, hyp:<hypothesis> (the file stems).",
        f"\\providecommand{{{_DIR_MACRO}}}{{}}",
        "",
    ]
    alphas = sorted({float(v.alpha) for v in verdicts if math.isfinite(float(v.alpha))})
    body: list[str] = []
    if alphas:
        convention = interval_convention(alphas[0]).removeprefix("Intervals: ")
        convention = latex_escape(convention[:1].upper() + convention[1:])
        body += [f"\\paragraph{{Intervals.}}\\label{{kd:intervals}} {convention}", ""]
    shown: set[str] = set()
    for sec in overview:
        body += _section_floats(root, sec, shown)
    captions = dict(getattr(family_tables, "captions", {}))
    family = ReportSection("Verdicts", tables=list(family_tables), captions=captions)
    body += _section_floats(root, family, shown)
    for v in verdicts:
        body += verdict_paragraph(v)
        for sec in sections.get(v.hypothesis, []):
            body += _section_floats(root, sec, shown)
    return "\n".join([*head, *body])


def standalone_tex(results: str, tables: Sequence[str]) -> str:
    """A minimal compilable two-column document around ``\\input{results}`` (the one LaTeX
    document builder's preamble, set in two columns as most papers are), declaring every
    character beyond Latin-1 that ``results`` and the ``tables`` (their texts) use."""
    used = sorted({c for text in [results, *tables] for c in text if ord(c) > 0xFF})
    body = ["\\section*{Results}"]
    if used:  # latex_document declares the characters it finds, comments included
        body.append(f"% characters used by {RESULTS_TEX} and its tables: {''.join(used)}")
    body += [f"\\input{{{Path(RESULTS_TEX).stem}}}", "\\clearpage", ""]
    return latex_document(body, twocolumn=True)


def bundle_targets(results: str) -> list[str]:
    """The files ``results`` (the text of ``results.tex``) inputs or includes, in order."""
    return [m.group("path").strip() for m in _TARGET.finditer(results)]


def keep_bundle_files(root: Path, targets: Sequence[str], keep: Sequence[str] = ()) -> None:
    """Remove every file under ``root`` but ``targets`` and ``keep``, and empty folders."""
    wanted = {*targets, *keep}
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        rel = path.relative_to(root).as_posix()
        if path.is_dir():
            if not any(path.iterdir()) and rel not in (FIGURES_DIR, TABLES_DIR):
                path.rmdir()
        elif rel not in wanted:
            path.unlink()


def write_bundle(
    root: Path,
    verdicts: Sequence[Verdict],
    sections: Mapping[str, Sequence[ReportSection]],
    overview: Sequence[ReportSection],
    family_tables: Sequence[str],
    command: str | None = None,
    keep: Sequence[str] = (),
) -> list[str]:
    """Write ``results.tex`` and ``results-standalone.tex`` into the report folder ``root``
    being built and remove every other file there but the figures and tables they use and
    ``keep``.

    Parameters
    ----------
    root : Path
        The folder being built (moved into place afterwards by the caller).
    verdicts : sequence of Verdict
        In the order of the report.
    sections : mapping of str to list of ReportSection
        Each hypothesis's sections, its verdict tables' section included.
    overview : sequence of ReportSection
        The store-wide figures.
    family_tables : sequence of str
        The family's table files (``tables/verdicts.*``).
    command : str, optional
        The command, named in a comment of ``results.tex``.
    keep : sequence of str
        Further files to keep (``verdicts.json``), relative to ``root``.

    Returns
    -------
    list of str
        The files ``results.tex`` inputs or includes, relative to ``root``.
    """
    from kdtheory.store.atomic import write_text_atomic

    results = results_tex(root, verdicts, sections, overview, family_tables, command)
    targets = bundle_targets(results)
    tables = [(root / t).read_text(encoding="utf-8") for t in targets if t.endswith(".tex")]
    write_text_atomic(root / RESULTS_TEX, results)
    write_text_atomic(root / STANDALONE_TEX, standalone_tex(results, tables))
    keep_bundle_files(root, targets, [RESULTS_TEX, STANDALONE_TEX, *keep])
    return targets
