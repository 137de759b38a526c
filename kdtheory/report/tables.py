"""The report's table files: booktabs ``.tex``, compilable ``-document.tex``, ``.md`` and ``.csv``.

Plugins write their tables with :func:`write_table` (records and :class:`Column` s, one
:class:`~kdtheory.report.table.Table` rendered to each format); :func:`write_verdict_tables`
writes the verdicts' own tables.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdtheory.report.format import csv_value, latex_escape
from kdtheory.report.latex import latex_document, table_float
from kdtheory.report.sections import TABLES_DIR, ReportSection, slug
from kdtheory.report.table import Column, Table

if TYPE_CHECKING:
    from kdtheory.hypothesis.verdict import Verdict

__all__ = [
    "Column",
    "TablePaths",
    "FAMILY_CAPTION",
    "records_to_csv",
    "records_to_latex",
    "records_to_markdown",
    "table_document",
    "verdict_tables_section",
    "write_table",
    "write_verdict_tables",
]


def records_to_latex(
    records: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    group: str | None = "experiment",
) -> str:
    """A booktabs ``tabular`` of ``records``; with several values of ``group`` the rows are
    grouped under ``\\multicolumn`` headings (needs ``\\usepackage{booktabs}``)."""
    return Table.from_records(records, columns, group).to_latex()


def records_to_markdown(
    records: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    group: str | None = "experiment",
    caption: str = "",
) -> str:
    """The table of :func:`records_to_latex` as a Markdown (GFM) table, with a leading column
    for ``group`` when the records hold several groups, and the caption in italics."""
    return Table.from_records(records, columns, group, caption).to_markdown() + "\n"


def records_to_csv(records: Sequence[Mapping[str, Any]]) -> str:
    """CSV with every key of ``records`` (in first-seen order); NaN/None are empty cells and
    lists/dicts JSON."""
    keys: list[str] = []
    for rec in records:
        for k in rec:
            if k not in keys:
                keys.append(str(k))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(keys)
    for rec in records:
        writer.writerow([csv_value(rec.get(k)) for k in keys])
    return buf.getvalue()


#: Caption of the family's verdict table (``tables/verdicts.tex``).
FAMILY_CAPTION = (
    "Verdicts of every hypothesis per experiment and pooled across experiments (random-effects "
    "meta-analysis); Holm-adjusted p-values across the family."
)


class TablePaths(list):  # type: ignore[type-arg]
    """The files written for one or more tables (a list of paths relative to the report
    folder), with each table's caption keyed by its ``.tex`` body: what
    :class:`ReportSection.captions` holds, so a paper bundle needs no parsing to find it.
    Adding two keeps both tables' captions."""

    def __init__(self, paths: Sequence[str] = (), captions: Mapping[str, str] | None = None):
        super().__init__(paths)
        self.captions: dict[str, str] = dict(captions or {})

    def __add__(self, other: Sequence[str]) -> TablePaths:  # type: ignore[override]
        return TablePaths([*self, *other], {**self.captions, **getattr(other, "captions", {})})

    def __iadd__(self, other: Sequence[str]) -> TablePaths:  # type: ignore[override]
        self.extend(other)
        self.captions.update(getattr(other, "captions", {}))
        return self


def table_document(tabular: str, caption: str = "", title: str = "") -> str:
    """A complete, compilable ``article`` holding ``tabular`` in a table float (at its natural
    size: wide tables are line-wide ``tabularx``)."""
    body = [f"\\section*{{{latex_escape(title)}}}"] if title else []
    body += table_float(tabular, latex_escape(caption) if caption else "", caption_above=True)
    return latex_document([*body, ""])


def write_table(
    out_dir: str | os.PathLike[str],
    name: str,
    records: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    caption: str = "",
    group: str | None = "experiment",
    titles: Mapping[str, str] | None = None,
) -> TablePaths:
    """Write ``tables/<name>.tex`` (booktabs body), ``tables/<name>-document.tex`` (compilable
    example), ``tables/<name>.md`` (shown inline in the report) and ``tables/<name>.csv`` (every
    key of the records); return the paths relative to ``out_dir``, with the caption.

    ``titles`` (experiment id -> display title) names the groups in the ``.tex`` and ``.md``
    tables; the CSV keeps the ids."""
    from kdtheory.store.atomic import write_text_atomic

    out_dir = Path(out_dir)
    stem = slug(name)
    table = Table.from_records(records, columns, group, caption, titles)
    tabular = table.to_latex()
    files = {
        f"{TABLES_DIR}/{stem}.tex": tabular + "\n",
        f"{TABLES_DIR}/{stem}-document.tex": table_document(tabular, caption),
        f"{TABLES_DIR}/{stem}.md": table.to_markdown() + "\n",
        f"{TABLES_DIR}/{stem}.csv": records_to_csv(records),
    }
    for rel, text in files.items():
        write_text_atomic(out_dir / rel, text)
    return TablePaths(files, {f"{TABLES_DIR}/{stem}.tex": caption} if caption else {})


def write_verdict_tables(verdicts: Sequence[Verdict], out: Path) -> dict[str, TablePaths]:
    """tables/verdicts.* for the family; tables/<hypothesis>.* and one CSV per verdict table.

    Returns the paths written, with the tables' captions, by hypothesis (``"__family__"`` for
    the family's)."""
    from kdtheory.report.render import render
    from kdtheory.report.verdict_latex import hypothesis_document, verdict_caption
    from kdtheory.store.atomic import write_text_atomic

    written: dict[str, TablePaths] = {}
    family = render(list(verdicts), "latex")
    files = {
        f"{TABLES_DIR}/verdicts.tex": family + "\n",
        f"{TABLES_DIR}/verdicts-document.tex": table_document(
            family, caption=FAMILY_CAPTION, title="kdtheory verdicts"
        ),
        f"{TABLES_DIR}/verdicts.csv": render(list(verdicts), "csv"),
    }
    for rel, text in files.items():
        write_text_atomic(out / rel, text)
    written["__family__"] = TablePaths(files, {f"{TABLES_DIR}/verdicts.tex": FAMILY_CAPTION})
    for v in verdicts:
        stem = slug(v.hypothesis)
        files = {
            f"{TABLES_DIR}/{stem}.tex": v.as_latex() + "\n",
            f"{TABLES_DIR}/{stem}-document.tex": hypothesis_document(v),
            f"{TABLES_DIR}/{stem}.csv": v.as_csv(),
        }
        for key, records in (v.tables or {}).items():
            if records:
                files[f"{TABLES_DIR}/records/{stem}-{slug(key)}.csv"] = records_to_csv(records)
        for rel, text in files.items():
            write_text_atomic(out / rel, text)
        written[v.hypothesis] = TablePaths(files, {f"{TABLES_DIR}/{stem}.tex": verdict_caption(v)})
    return written


def verdict_tables_section(v: Verdict, paths: Sequence[str]) -> ReportSection:
    """The section listing a verdict's table files (their captions in ``captions``)."""
    return ReportSection(
        title="Verdict tables",
        text="The verdict as a booktabs table (`.tex`, and `-document.tex` that compiles on its "
        "own) and as CSV, with every further table the test produced.",
        tables=list(paths),
        captions=dict(getattr(paths, "captions", {})),
    )
