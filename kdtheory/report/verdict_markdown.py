"""A verdict, or a family of verdicts, as GitHub-flavoured Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from kdtheory.report.format import md_cell
from kdtheory.report.table import Cell, Column, Row, Table
from kdtheory.report.verdict_parts import (
    ci_words,
    detail_blocks,
    effect_lines,
    effects_table,
    family_table,
    family_title,
    info_lines,
    pooling_words,
)

if TYPE_CHECKING:
    from kdtheory.hypothesis.verdict import Verdict

__all__ = ["family_markdown", "verdict_markdown"]


def verdict_markdown(v: Verdict, details: bool = False) -> str:
    """A heading, a key/value table and the experiments table; ``details`` adds the extra
    numbers, further tables and fitted models' summaries."""
    out = [f"### {md_cell(v.hypothesis)}: **{md_cell(v.decision)}**", ""]
    info = Table(
        [Column("", fmt="text"), Column("", fmt="text")],
        [Row([f"**{k}**", str(val)]) for k, val in info_lines(v)],
    )
    out.append(info.to_markdown())
    rows = effect_lines(v)
    if v.experiments or v.pooled is not None:
        out += ["", effects_table(v, rows, strong=("experiment", "decision")).to_markdown()]
        out += [
            "",
            f"_CIs: {ci_words(v, rows)}. n: seeds per experiment, experiments pooled. Last row: "
            f"the verdict's decision._",
        ]
        if v.pooled is not None:
            out += ["", f"_{pooling_words(v)}_"]
    if details:
        for title, body in detail_blocks(v, rows, md_cell):
            shown = body.to_markdown() if isinstance(body, Table) else f"```\n{body}\n```"
            out += ["", f"**{title}**", "", shown]
    return "\n".join(out)


def family_markdown(items: Sequence[Verdict]) -> str:
    """A ``## Verdicts`` heading, the family's title and one line per verdict."""
    table = family_table(items, decision=lambda d: Cell(d, strong=True))
    return f"## Verdicts\n\n{family_title(items)}.\n\n" + table.to_markdown()
