"""The report's ``report.md``: the same content as ``index.html``, figures as relative images."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdtheory.report.format import interval_convention, md_cell, md_inert
from kdtheory.report.page_parts import (
    convergence_lines,
    experiments_table,
    provenance_rows,
    read_text,
    summary_table,
)
from kdtheory.report.sections import ReportSection, figure_groups, inline_path
from kdtheory.report.table import Column, Row, Table

if TYPE_CHECKING:
    from kdtheory.hypothesis.verdict import Verdict

__all__ = ["markdown_page"]


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in ``text`` (which cannot close it)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def markdown_page(
    verdicts: Sequence[Verdict],
    sections: Mapping[str, list[ReportSection]],
    overview: Sequence[ReportSection],
    prov: Mapping[str, Any],
    family_tables: Sequence[str],
    root: Path,
) -> str:
    """``report.md``: summary, convergence, experiments, overview, every hypothesis with its
    sections and fitted models, provenance."""
    out = ["# kdtheory report", ""]
    out.append(
        "Knowledge-distillation hypotheses tested on a run store; p-values are Holm-adjusted "
        "across the family of hypotheses tested together. Every number is in `verdicts.json`."
    )
    alpha = prov.get("alpha")
    if alpha is not None:
        out += ["", f"**{md_cell(interval_convention(alpha))}**"]
    out += ["", "## Verdicts", ""]
    out.append(summary_table(verdicts).to_markdown())
    out += [
        "",
        "_Bold: the verdict (the pooled random-effects row with several experiments)._",
        "",
        "Tables: " + ", ".join(f"[{Path(p).name}]({p})" for p in family_tables),
        "",
        "## Convergence",
        "",
        *[f"- {md_inert(line)}" for line in convergence_lines(verdicts)],
        "",
        "## Experiments",
        "",
        experiments_table(prov).to_markdown(),
        "",
    ]
    for sec in overview:
        out += _section(sec, 2, root)
    out += ["## Hypotheses", ""]
    for v in verdicts:
        out.append(v.as_markdown(details=False))
        out.append("")
        if not v.available:
            out += [f"> **Not tested on this store.** {md_cell(v.reason)}", ""]
        for sec in sections.get(v.hypothesis, []):
            out += _section(sec, 4, root)
        if v.summaries:
            out.append("<details><summary>Fitted models</summary>")
            out.append("")
            for name, summary in v.summaries.items():
                body = str(summary).rstrip()
                shown = v.titles.get(name, name)
                out += [f"**{md_cell(shown)}**", "", _fence(body), body, _fence(body), ""]
            out += ["</details>", ""]
    out += ["## Provenance", ""]
    provenance = [[f"**{k}**", f"`{v}`" if k == "command" else v] for k, v in provenance_rows(prov)]
    columns = [Column("", fmt="text"), Column("", fmt="text")]
    out.append(Table(columns, [Row(r) for r in provenance], markdown_align=False).to_markdown())
    out += [
        "",
        "Each experiment's recipe is in `verdicts.json` under `provenance.experiments`.",
        "",
    ]
    return "\n".join(out)


def _section(sec: ReportSection, level: int, root: Path) -> list[str]:
    out = [f"{'#' * level} {md_cell(sec.title)}", ""]
    if sec.text:
        out += [md_inert(sec.text), ""]
    for stem, paths in figure_groups(sec.figures):
        shown = inline_path(paths)
        caption = sec.caption(stem) or Path(stem).name
        if shown:
            out.append(f"![{md_cell(Path(stem).name)}]({shown})")
            out.append("")
        links = " · ".join(f"[{Path(p).suffix.lstrip('.').upper()}]({p})" for p in paths)
        out += [f"_{md_cell(caption)}_ ({links})", ""]
    for rel in sec.tables:
        if rel.lower().endswith(".md"):
            out += [read_text(root / rel).rstrip(), ""]
    if sec.tables:
        out += ["Tables: " + ", ".join(f"[{Path(p).name}]({p})" for p in sec.tables), ""]
    return out
