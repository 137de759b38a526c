"""Verdicts in LaTeX: a booktabs table, and compilable documents (through the one builder,
:func:`kdtheory.report.latex.latex_document`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from kdtheory.report.format import fmt_num, latex_escape, p_relation
from kdtheory.report.latex import latex_document, table_float, verbatim_block
from kdtheory.report.table import Cell, Column, Row, Table
from kdtheory.report.verdict_parts import RowMarks, effect_lines, info_lines

if TYPE_CHECKING:
    from kdtheory.hypothesis.verdict import Verdict

__all__ = ["hypothesis_document", "verdict_caption", "verdicts_document", "verdicts_tabular"]


def verdict_caption(v: Verdict) -> str:
    """The caption of ``v``'s table (plain text): what its rows are."""
    pooled = " and the pooled random-effects estimate" if v.pooled is not None else ""
    return (
        f"Hypothesis {v.hypothesis} ({v.decision}): the deciding test's estimate per "
        f"experiment{pooled}; the bold decision is the verdict's."
    )


def verdicts_tabular(items: Sequence[Verdict], hypothesis_column: bool) -> str:
    """A booktabs ``tabularx`` as wide as the line (``\\usepackage{tabularx}``): a row per
    experiment (its title, wrapped) and the pooled row of each verdict, under a heading per
    verdict when there are several (``hypothesis_column``).

    The CI column is at the report's level (``1 - 2*alpha``); rows at another level are marked,
    rows resting on different deciding tests carry a test key, and the notes (the tabular's
    last row) say what both mean and what ``n`` counts.
    """
    lines_of = [(v, effect_lines(v)) for v in items]
    marks = RowMarks.of(lines_of)
    has_holm = any(v.p_adjusted is not None for v in items)
    columns = [
        Column("Experiment", fmt="text", wrap=True),
        *([Column("Test", fmt="text")] if marks.tests else []),
        Column("Estimate", fmt=".3g"),
        Column(marks.header, fmt=".3g", header_tex=latex_escape(marks.header)),
        Column("p", fmt="p4", header_tex="$p$"),
        *([Column("Holm p", fmt="p4", header_tex="Holm $p$")] if has_holm else []),
        Column("n", fmt="int", header_tex="$n$"),
        Column("Decision", fmt="text"),
    ]
    rows: list[Row] = []
    for v, lines in lines_of:
        for j, r in enumerate(lines):
            label = r.label + (" (RE)" if r.kind == "pooled" and r.label == "pooled" else "")
            cells = [
                Cell(label, emph=r.kind == "pooled"),
                *([marks.test_key(r, v)] if marks.tests else []),
                r.estimate,
                Cell((r.ci_low, r.ci_high), mark=marks.ci_mark(r)),
                r.p_value,
                *([r.p_adjusted if r.key and r.p_adjusted is not None else ""] if has_holm else []),
                "" if r.n is None else r.n,
                Cell(r.shown_decision, strong=r.key),
            ]
            rule = ""
            if r.key and j > 0 and r.kind != "experiment" and len(lines) > 1:
                rule = f"\\cmidrule(l){{1-{len(columns)}}}"
            group = v.hypothesis if hypothesis_column else None
            rows.append(Row(cells, group=group, key=r.key, rule_tex=rule))
    table = Table(columns, rows)
    n_words = "n: seeds of an experiment; experiments for the pooled (RE) row."
    table.notes = [*marks.notes(hypothesis_names=hypothesis_column and len(items) > 1), n_words]
    return table.to_latex()


def _caption(v: Verdict) -> str:
    return latex_escape(verdict_caption(v))


def _heading(v: Verdict) -> str:
    return (
        f"\\section*{{Hypothesis \\texttt{{{latex_escape(v.hypothesis)}}}: "
        f"{latex_escape(v.decision)}}}"
    )


def verdicts_document(items: Sequence[Verdict], details: bool = True) -> str:
    """A complete LaTeX ``article`` (booktabs) with every verdict of ``items``
    (``--format latex-document``)."""
    body: list[str] = []
    for v in items:
        body.append(_heading(v))
        body.append("\\begin{description}")
        body += [f"  \\item[{key}] {latex_escape(val)}" for key, val in info_lines(v) if val]
        body.append("\\end{description}")
        body += table_float(verdicts_tabular([v], False), _caption(v), caption_above=True)
        if details:
            for name, summary in (v.summaries or {}).items():
                body += verbatim_block(f"Model summary: {name}", str(summary), "scriptsize", None)
        body.append("")
    return latex_document(body)


def hypothesis_document(v: Verdict, summaries: bool = True, wrap: int = 118) -> str:
    """A complete, compilable LaTeX ``article`` for one verdict (the report's
    ``tables/<hypothesis>-document.tex``): claim, prediction, effect, estimate, test, model and
    reason; its booktabs table (as wide as the text); and, with ``summaries``,
    the fitted models' text wrapped to the page."""
    test = [f"statistic = {fmt_num(v.statistic)}", f"p {p_relation(v.p_value)}"]
    if v.p_adjusted is not None:
        fam = f" (Holm family of {len(v.family)})" if v.family else ""
        test.append(f"Holm-adjusted p {p_relation(v.p_adjusted)}{fam}")
    test += [f"alpha = {v.alpha:g}", f"alternative: {v.alternative}"]
    items = info_lines(v, test=", ".join(test))
    body = [
        _heading(v),
        "\\begin{description}",
        *(f"  \\item[{k}] {latex_escape(' '.join(str(val).split()))}" for k, val in items if val),
        "\\end{description}",
        *table_float(verdicts_tabular([v], False), _caption(v), caption_above=True),
    ]
    if summaries:
        for name, summary in (v.summaries or {}).items():
            body += verbatim_block(f"Model summary: {name}", str(summary), "tiny", wrap)
    return latex_document([*body, ""])
