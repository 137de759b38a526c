"""Render one verdict or a family of verdicts in any of the output formats."""

from __future__ import annotations

from collections.abc import Sequence

from kdtheory.hypothesis.verdict import FORMATS, Verdict, verdicts_to_json
from kdtheory.report.verdict_csv import verdicts_csv
from kdtheory.report.verdict_html import family_html
from kdtheory.report.verdict_latex import verdicts_document, verdicts_tabular
from kdtheory.report.verdict_markdown import family_markdown
from kdtheory.report.verdict_text import family_text

__all__ = ["render"]


def render(
    verdicts: Verdict | Sequence[Verdict], fmt: str = "text", *, details: bool = False
) -> str:
    """Render one verdict or a family of verdicts.

    Parameters
    ----------
    verdicts : Verdict or sequence of Verdict
    fmt : {"text", "json", "markdown", "latex", "latex-document", "csv", "html"}
        For a list: ``json`` gives a JSON array; ``csv`` one table with a ``hypothesis``
        column; ``latex`` one booktabs table with a row per hypothesis x experiment; ``text``
        and ``markdown`` a family summary table followed by each verdict. A single Verdict
        renders exactly as its own ``as_*`` method (``json`` gives one object).
    details : bool
        Text/Markdown/HTML: add extra numbers, tables and model summaries.
    """
    fmt = {"md": "markdown", "tex": "latex"}.get(fmt, fmt)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    single = isinstance(verdicts, Verdict)
    items: list[Verdict] = [verdicts] if single else list(verdicts)  # type: ignore[list-item]
    if fmt == "json":
        return items[0].as_json() if single else verdicts_to_json(items)
    if fmt == "csv":
        return verdicts_csv(items)
    if fmt == "latex":
        return verdicts_tabular(items, hypothesis_column=not single)
    if fmt == "latex-document":
        return verdicts_document(items, details=details)
    if fmt == "html":
        if single:
            return items[0].as_html(details=details)
        parts = [family_html(items)] if len(items) > 1 else []
        parts += [v.as_html(details=details) for v in items]
        return "\n".join(parts)
    if fmt == "markdown":
        if single or len(items) == 1:
            return items[0].as_markdown(details=details) if items else ""
        return "\n\n".join(
            [family_markdown(items)] + [v.as_markdown(details=details) for v in items]
        )
    if single or len(items) == 1:
        return items[0].as_text(details=details) if items else ""
    rule = "=" * 100
    return f"\n\n{rule}\n\n".join(
        [family_text(items)] + [v.as_text(details=details) for v in items]
    )
