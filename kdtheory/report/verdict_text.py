"""A verdict, or a family of verdicts, as terminal text."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kdtheory.report.table import Table
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

__all__ = ["family_text", "verdict_text"]


def _wrap(label: str, text: str, width: int, label_width: int = 12) -> list[str]:
    text = " ".join(str(text).split()) if text else ""
    if not text:
        return []
    lines = textwrap.wrap(text, width=max(20, width - label_width - 1)) or [""]
    out = [f"{label:<{label_width}} {lines[0]}"]
    out += [f"{'':<{label_width}} {line}" for line in lines[1:]]
    return out


def verdict_text(v: Verdict, details: bool = False, width: int = 100) -> str:
    """The headline, the labelled lines and the per-experiment table; ``details`` adds the
    extra numbers, further tables and fitted models' summaries."""
    head = f"{v.hypothesis}: {str(v.decision).upper()}"
    lines = [head, "=" * min(width, max(len(head), 40))]
    for label, value in info_lines(v):
        lines += _wrap(label, value, width)
    rows = effect_lines(v)
    if v.experiments or v.pooled is not None:
        lines.append("")
        lines.append(
            f"Per experiment. CIs: {ci_words(v, rows)}. n: seeds per experiment, experiments "
            "pooled. The last row carries the verdict's decision."
        )
        lines.append(effects_table(v, rows).to_text())
        if v.pooled is not None:
            lines += textwrap.wrap(pooling_words(v), width=width)
    if details:
        for title, body in detail_blocks(v, rows):
            lines += ["", title, body.to_text() if isinstance(body, Table) else body]
    return "\n".join(lines)


def family_text(items: Sequence[Verdict]) -> str:
    """The family's title and one line per verdict."""
    return f"{family_title(items)}\n\n" + family_table(items).to_text()
