"""A verdict, or a family of verdicts, as a self-contained HTML fragment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from kdtheory.report.format import html_escape as _h
from kdtheory.report.table import Cell, Table
from kdtheory.report.verdict_parts import (
    ci_words,
    detail_blocks,
    effect_lines,
    effects_table,
    family_table,
    info_lines,
    pooling_words,
)

if TYPE_CHECKING:
    from kdtheory.hypothesis.verdict import Verdict

__all__ = ["DECISION_COLOURS", "family_html", "verdict_html"]

DECISION_COLOURS = {"supported": "#1a7f37", "rejected": "#cf222e", "inconclusive": "#9a6700"}


def _coloured(decision: str) -> str:
    colour = DECISION_COLOURS.get(decision, "inherit")
    return f'<span style="color:{colour}">{_h(decision)}</span>'


def verdict_html(v: Verdict, details: bool = True) -> str:
    """The heading with the coloured decision, the labelled lines and the effects table;
    ``details`` adds the extra numbers, further tables and summaries as ``<details>``."""
    parts = [
        '<div class="kdtheory-verdict">',
        f"<h4><code>{_h(v.hypothesis)}</code>: {_coloured(str(v.decision))}</h4>",
    ]
    parts.append(
        "<table>"
        + "".join(
            f'<tr><th style="text-align:left;vertical-align:top;padding:2px 8px">{_h(k)}</th>'
            f'<td style="text-align:left;padding:2px 8px">{_h(val)}</td></tr>'
            for k, val in info_lines(v)
            if val
        )
        + "</table>"
    )
    rows = effect_lines(v)
    if v.experiments or v.pooled is not None:
        parts.append(effects_table(v, rows, strong=("decision",)).to_html())
        parts.append(f"<p><small>CIs: {_h(ci_words(v, rows))}. {_h(pooling_words(v))}</small></p>")
    if details:
        for title, body in detail_blocks(v, rows, _h):
            shown = body.to_html() if isinstance(body, Table) else f"<pre>{_h(body)}</pre>"
            parts.append(f"<details><summary>{title}</summary>{shown}</details>")
    parts.append("</div>")
    return "\n".join(parts)


def family_html(items: Sequence[Verdict]) -> str:
    """A ``Verdicts`` heading and one line per verdict, decisions coloured."""
    table = family_table(items, decision=lambda d: Cell(d, html=_coloured(d)))
    return "<h3>Verdicts</h3>" + table.to_html()
