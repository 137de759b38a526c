"""Verdicts in LaTeX: a booktabs table, and compilable documents (through the one builder,
:func:`kdtheory.report.latex.latex_document`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kdtheory.report.format import fmt_num, latex_escape, p_relation, tex_ci
from kdtheory.report.latex import latex_document, table_float, verbatim_block
from kdtheory.report.table import Cell, Column, Row, Table
from kdtheory.report.verdict_parts import effect_lines, info_lines

if TYPE_CHECKING:
    from kdtheory.hypothesis.verdict import Verdict

__all__ = ["hypothesis_document", "verdicts_document", "verdicts_tabular"]


def _level(level: float) -> str:
    return f"{round(100 * level, 6):g}\\%"


def verdicts_tabular(items: Sequence[Verdict], hypothesis_column: bool) -> str:
    """A booktabs ``tabular`` with a row per experiment and the pooled row of each verdict
    (a ``Hypothesis`` column when several verdicts share it)."""
    levels = {v.ci_level for v in items if v.available} or {v.ci_level for v in items}
    uniform = len(levels) == 1 and not math.isnan(next(iter(levels)))
    has_holm = any(v.p_adjusted is not None for v in items)
    columns = [
        *([Column("Hypothesis", fmt="text")] if hypothesis_column else []),
        Column("Experiment", fmt="text"),
        Column("Estimate", fmt=".4g"),
        Column("CI", fmt=".4g", header_tex=f"{_level(next(iter(levels)))} CI" if uniform else None),
        Column("Statistic", fmt=".4g"),
        Column("p", fmt="p4", header_tex="$p$"),
        *([Column("Holm p", fmt="p4", header_tex="Holm $p$")] if has_holm else []),
        Column("n", fmt="text", align="r", header_tex="$n$"),
        Column("Decision", fmt="text"),
    ]
    rows: list[Row] = []
    for i, v in enumerate(items):
        lines = effect_lines(v)
        for j, r in enumerate(lines):
            ci = tex_ci(r.ci_low, r.ci_high)
            if not uniform and ci != "--" and not math.isnan(v.ci_level):
                ci += f"$_{{{_level(v.ci_level)}}}$"
            cells = [(v.hypothesis if j == 0 else "")] if hypothesis_column else []
            cells += [
                Cell(r.label, emph=r.kind == "pooled"),
                r.estimate,
                Cell((r.ci_low, r.ci_high), tex=ci),
                r.statistic,
                r.p_value,
                *([r.p_adjusted if r.key and r.p_adjusted is not None else ""] if has_holm else []),
                "" if r.n is None else f"{r.n} {r.unit}",
                Cell(r.shown_decision, strong=r.key),
            ]
            rule = ""
            if i > 0 and j == 0:
                rule = "\\midrule"
            elif r.key and j > 0 and r.kind != "experiment" and len(lines) > 1:
                rule = f"\\cmidrule(l){{{2 if hypothesis_column else 1}-{len(columns)}}}"
            rows.append(Row(cells, key=r.key, rule_tex=rule))
    return Table(columns, rows).to_latex()


def _caption(v: Verdict) -> str:
    return (
        f"{latex_escape(v.hypothesis)}: per-experiment effects and the pooled "
        f"random-effects estimate ({latex_escape(v.ci_note)})."
    )


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
        body += table_float(verdicts_tabular([v], False), _caption(v), fit_width=False)
        if details:
            for name, summary in (v.summaries or {}).items():
                body += verbatim_block(f"Model summary: {name}", str(summary), "scriptsize", None)
        body.append("")
    return latex_document(body)


def hypothesis_document(v: Verdict, summaries: bool = True, wrap: int = 118) -> str:
    """A complete, compilable LaTeX ``article`` for one verdict (the report's
    ``tables/<hypothesis>-document.tex``): claim, prediction, effect, estimate, test, model and
    reason; its booktabs table (scaled to the text width when wider); and, with ``summaries``,
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
        *table_float(verdicts_tabular([v], False), _caption(v)),
    ]
    if summaries:
        for name, summary in (v.summaries or {}).items():
            body += verbatim_block(f"Model summary: {name}", str(summary), "tiny", wrap)
    return latex_document([*body, ""])
