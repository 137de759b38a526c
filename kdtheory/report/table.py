"""The one table type: columns, rows and a caption, rendered to text, Markdown, LaTeX, CSV, HTML.

A :class:`Table` holds *values*; each renderer formats them by the column's number format with
its own tokens (LaTeX writes a missing number ``--`` and a minus ``$-$``; the plain formats use the
table's ``missing`` and ``minus``) and escapes text for its format (:mod:`kdtheory.report.format`).
A value that is already a string is shown as it is (escaped), a pair ``(low, high)`` is a
confidence interval ``[low, high]``. Rows may belong to groups: LaTeX shows a heading per group,
the other formats a leading column. Notes (what a mark or a key in the table means) follow the
table in every format but CSV; in LaTeX they are the tabular's last row, so they travel with it.
A table with a wrapping column is a ``tabularx`` as wide as the line (``\\usepackage{tabularx}``)
and never needs scaling. Standard library only.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kdtheory.report.format import (
    csv_value,
    fmt_p,
    html_escape,
    latex_escape,
    md_cell,
    to_float,
)

__all__ = ["Cell", "Column", "Row", "Table"]


@dataclass(frozen=True)
class Column:
    """A column: header, where its values come from, and how numbers are written.

    Attributes
    ----------
    header : str
        Header text (escaped per format) unless ``header_tex`` is given for LaTeX.
    key : str or (str, str)
        Record key (:meth:`Table.from_records`); a pair of keys is a confidence interval
        ``[low, high]``.
    fmt : str
        ``"text"``, ``"int"``, ``"bool"`` (yes/no), ``"p"`` (3 decimals), ``"p4"`` (4 decimals)
        or a Python format spec for numbers such as ``".1f"``.
    header_tex : str, optional
        Raw LaTeX header.
    align : str, optional
        ``"l"`` or ``"r"`` (default ``l`` for text, ``r`` for numbers).
    wrap : bool
        In LaTeX, the column takes the width left on the line and wraps its text (a
        ``tabularx`` ``X`` column, ragged right): for long labels such as experiment titles.
    """

    header: str
    key: str | tuple[str, str] = ""
    fmt: str = ".3g"
    header_tex: str | None = None
    align: str | None = None
    wrap: bool = False

    @property
    def alignment(self) -> str:
        """``"l"`` or ``"r"``."""
        return self.align or ("l" if self.fmt == "text" else "r")


@dataclass(frozen=True)
class Cell:
    """A value with emphasis, or with its own rendering in one format.

    Attributes
    ----------
    value : Any
        What the column's format writes.
    strong, emph : bool
        Bold / italic (``**``, ``<b>``, ``\\textbf``; ``\\emph``).
    tex, html : str, optional
        The cell as written in LaTeX / HTML (raw), replacing the formatted value.
    mark : str
        Written right after the value in every format (e.g. ``"†"``, explained by a note).
    """

    value: Any
    strong: bool = False
    emph: bool = False
    tex: str | None = None
    html: str | None = None
    mark: str = ""


@dataclass
class Row:
    """One table row: its cells, its group, and a LaTeX rule drawn above it."""

    cells: list[Any]
    group: str | None = None
    key: bool = False
    rule_tex: str = ""


@dataclass
class Table:
    """Columns and rows, with an optional caption.

    Attributes
    ----------
    columns : list of Column
    rows : list of Row
    caption : str
        Shown under the Markdown table; the float caption of a LaTeX document.
    group_header : str
        Header of the leading group column (plain formats) when the rows hold several groups.
    missing, minus : str
        How plain formats write a missing number and a minus sign.
    markdown_align : bool
        Whether the Markdown table states its columns' alignment (``---:``).
    notes : list of str
        Lines under the table (plain text, escaped per format): what its marks and keys mean.
    """

    columns: list[Column]
    rows: list[Row] = field(default_factory=list)
    caption: str = ""
    group_header: str = ""
    missing: str = "–"
    minus: str = "\u2212"
    markdown_align: bool = True
    notes: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ building

    @classmethod
    def from_records(
        cls,
        records: Sequence[Mapping[str, Any]],
        columns: Sequence[Column],
        group: str | None = "experiment",
        caption: str = "",
        titles: Mapping[str, str] | None = None,
    ) -> Table:
        """One row per record, grouped by the value of ``group`` (first-seen order), each group
        shown by its entry in ``titles`` (experiment id -> display title) when it has one."""
        groups: dict[str, list[Mapping[str, Any]]] = {}
        for rec in records:
            name = str(rec.get(group, "")) if group else ""
            groups.setdefault((titles or {}).get(name, name), []).append(rec)
        rows = [
            Row(
                [
                    tuple(rec.get(k) for k in c.key) if isinstance(c.key, tuple) else rec.get(c.key)
                    for c in columns
                ],
                group=name if group else None,
            )
            for name, recs in groups.items()
            for rec in recs
        ]
        return cls(list(columns), rows, caption=caption, group_header=group or "")

    @property
    def groups(self) -> list[str]:
        """The distinct groups of the rows, in order (empty without groups)."""
        return list(dict.fromkeys(r.group for r in self.rows if r.group is not None))

    @property
    def grouped(self) -> bool:
        """Whether the rows hold several groups (shown as headings or a leading column)."""
        return len(self.groups) > 1

    # ------------------------------------------------------------------ cells

    def _plain(self, value: Any, column: Column) -> str:
        return _format(value, column.fmt, _Tokens(self.missing, self.minus, "<", str))

    def _plain_cell(self, cell: Any, column: Column) -> str:
        return self._plain(_value(cell), column) + _mark(cell)

    def plain_cells(self, row: Row) -> list[str]:
        """``row``'s cells as plain text (no emphasis, no escaping)."""
        return [self._plain_cell(c, col) for c, col in zip(row.cells, self.columns, strict=True)]

    # ------------------------------------------------------------------ renderers

    def to_text(self) -> str:
        """A plain-text table: padded columns, a dashed rule under the headers."""
        headers = [c.header for c in self.columns]
        right = {i for i, c in enumerate(self.columns) if c.alignment == "r"}
        body = [self.plain_cells(r) for r in self.rows]
        if self.grouped:
            headers = [self.group_header, *headers]
            right = {i + 1 for i in right}
            body = [[g, *cells] for g, cells in zip(self._group_cells(), body, strict=True)]
        return "\n".join([text_table(headers, body, right), *self.notes])

    def to_markdown(self) -> str:
        """A GitHub-flavoured Markdown table (cells escaped, ``**`` for strong cells), with the
        caption in italics under it."""
        headers = [c.header for c in self.columns]
        aligns = [
            "---:" if c.alignment == "r" and self.markdown_align else "---" for c in self.columns
        ]
        if self.grouped:
            headers, aligns = [self.group_header, *headers], ["---", *aligns]
        lines = ["| " + " | ".join(md_cell(h) for h in headers) + " |"]
        lines.append("|" + "|".join(aligns) + "|")
        groups = self._group_cells()
        for row, group in zip(self.rows, groups, strict=True):
            cells = []
            for cell, col in zip(row.cells, self.columns, strict=True):
                text = self._plain_cell(cell, col)
                strong = isinstance(cell, Cell) and cell.strong
                cells.append(md_cell(f"**{text}**" if strong else text))
            if self.grouped:
                cells.insert(0, md_cell(group))
            lines.append("| " + " | ".join(cells) + " |")
        if self.notes:
            lines += ["", *(f"_{md_cell(n)}_  " for n in self.notes)]
            lines[-1] = lines[-1].rstrip()
        if self.caption:
            lines += ["", f"_{md_cell(self.caption)}_"]
        return "\n".join(lines)

    @property
    def wraps(self) -> bool:
        """Whether a column wraps (the LaTeX table is a line-wide ``tabularx``)."""
        return any(c.wrap for c in self.columns)

    def to_latex(self) -> str:
        """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``), or a ``tabularx`` as wide
        as the line when a column wraps (needs ``\\usepackage{tabularx}``); several groups are
        shown under ``\\multicolumn`` headings, the notes in a last row spanning the table."""
        spec = "".join(_RAGGED_X if c.wrap else c.alignment for c in self.columns)
        env = "tabularx" if self.wraps else "tabular"
        width = "{\\linewidth}" if self.wraps else ""
        head = " & ".join(c.header_tex or latex_escape(c.header) for c in self.columns)
        lines = [f"\\begin{{{env}}}{width}{{{spec}}}", "\\toprule", head + " \\\\", "\\midrule"]
        previous: str | None = None
        for row in self.rows:
            if self.grouped and row.group != previous:
                if previous is not None:
                    lines.append("\\midrule")
                lines.append(
                    f"\\multicolumn{{{len(self.columns)}}}{{l}}"
                    f"{{\\emph{{{latex_escape(row.group)}}}}} \\\\"
                )
                previous = row.group
            if row.rule_tex:
                lines.append(row.rule_tex)
            cells = [_tex_cell(c, col) for c, col in zip(row.cells, self.columns, strict=True)]
            lines.append(" & ".join(cells) + " \\\\")
        lines.append("\\bottomrule")
        if self.notes:
            notes = "\\newline ".join(latex_escape(n) for n in self.notes)
            width = "\\linewidth" if self.wraps else _NOTES_WIDTH
            lines.append(
                f"\\multicolumn{{{len(self.columns)}}}{{@{{}}p{{{width}}}@{{}}}}"
                f"{{\\footnotesize\\raggedright {notes}}} \\\\"
            )
        lines.append(f"\\end{{{env}}}")
        return "\n".join(lines)

    def to_csv(self) -> str:
        """CSV with a header line; numbers at full precision, missing ones empty."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        lead = [self.group_header] if self.grouped else []
        writer.writerow(lead + [c.header for c in self.columns])
        for row, group in zip(self.rows, self._group_cells(repeat=True), strict=True):
            lead = [group] if self.grouped else []
            writer.writerow(lead + [csv_value(_value(c)) for c in row.cells])
        return buf.getvalue()

    def to_html(self, style: str = "inline") -> str:
        """An HTML ``<table>``: ``style="inline"`` carries its own CSS (a fragment for
        notebooks); ``"booktabs"`` uses the report page's ``booktabs`` class."""
        columns = list(self.columns)
        rows = [(r, list(r.cells)) for r in self.rows]
        if self.grouped:
            columns = [Column(self.group_header, fmt="text"), *columns]
            rows = [
                (r, [g, *cells]) for (r, cells), g in zip(rows, self._group_cells(), strict=True)
            ]
        cells_html = [
            (
                r,
                [
                    _html_cell(c, self._plain_cell(c, col))
                    for c, col in zip(cs, columns, strict=True)
                ],
            )
            for r, cs in rows
        ]
        if style == "booktabs":
            head = "".join(
                f'<th class="{"l" if c.alignment == "l" else ""}">{html_escape(c.header)}</th>'
                for c in columns
            )
            marked = any(r.key for r in self.rows)  # a table with key rows marks every row
            body = "".join(
                (f'<tr class="{"key" if r.key else ""}">' if marked else "<tr>")
                + "".join(
                    f'<td class="l">{c}</td>' if col.alignment == "l" else f"<td>{c}</td>"
                    for c, col in zip(cs, columns, strict=True)
                )
                + "</tr>"
                for r, cs in cells_html
            )
            return (
                f'<table class="booktabs"><thead><tr>{head}</tr></thead><tbody>{body}'
                "</tbody></table>" + self._html_notes()
            )

        def cell(tag: str, col: Column, text: str) -> str:
            align = "right" if col.alignment == "r" else "left"
            return f'<{tag} style="text-align:{align};padding:2px 8px">{text}</{tag}>'

        head = "<tr>" + "".join(cell("th", c, html_escape(c.header)) for c in columns) + "</tr>"
        body = "".join(
            "<tr>"
            + "".join(cell("td", col, c) for c, col in zip(cs, columns, strict=True))
            + "</tr>"
            for _, cs in cells_html
        )
        return (
            '<table style="border-collapse:collapse;border-top:2px solid;border-bottom:2px solid">'
            f'<thead style="border-bottom:1px solid">{head}</thead><tbody>{body}</tbody></table>'
            + self._html_notes()
        )

    def _html_notes(self) -> str:
        if not self.notes:
            return ""
        notes = "<br>".join(map(html_escape, self.notes))
        return f'<p class="notes"><small>{notes}</small></p>'

    def render(self, fmt: str) -> str:
        """The table in ``fmt``: ``text``, ``markdown``, ``latex``, ``csv`` or ``html``."""
        renderers = {
            "text": self.to_text,
            "markdown": self.to_markdown,
            "latex": self.to_latex,
            "csv": self.to_csv,
            "html": self.to_html,
        }
        if fmt not in renderers:
            raise ValueError(f"unknown table format {fmt!r}; choose one of {', '.join(renderers)}")
        return renderers[fmt]()

    def _group_cells(self, repeat: bool = False) -> list[str]:
        """The group column: each group's name on its first row (every row with ``repeat``)."""
        out, previous = [], None
        for r in self.rows:
            name = r.group or ""
            out.append(name if repeat or name != previous else "")
            previous = name
        return out


# --------------------------------------------------------------------------------------------
# cell formatting


#: a wrapping column: ``tabularx``'s X, ragged right
_RAGGED_X = ">{\\raggedright\\arraybackslash}X"
#: width of the notes row of a plain ``tabular`` (which has no width of its own)
_NOTES_WIDTH = "\\dimexpr\\linewidth-2\\tabcolsep\\relax"


def _value(cell: Any) -> Any:
    return cell.value if isinstance(cell, Cell) else cell


def _mark(cell: Any) -> str:
    return cell.mark if isinstance(cell, Cell) else ""


@dataclass(frozen=True)
class _Tokens:
    """How one format writes a missing number, a minus, ``<`` before a tiny p, and text."""

    missing: str
    minus: str
    less: str
    text: Any


_TEX = _Tokens(missing="--", minus="$-$", less="$<$", text=latex_escape)


def _number(value: Any) -> float | None:
    """``value`` as a number, or None when it is text that is not one."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return to_float(value)


def _format(value: Any, fmt: str, tokens: _Tokens) -> str:
    """One value by the column format ``fmt``, written with ``tokens``."""
    if isinstance(value, tuple):
        lo, hi = (_format(v, fmt, tokens) for v in value)
        return tokens.missing if lo == hi == tokens.missing else f"[{lo}, {hi}]"
    if fmt == "bool":
        return "yes" if value else "no"
    v = None if fmt == "text" else _number(value)
    if v is None:
        return tokens.text("" if value is None else value)
    if math.isnan(v):
        return tokens.missing
    if fmt == "int":
        s = f"{int(round(v))}"
    elif fmt in ("p", "p4"):
        s = fmt_p(v, 3 if fmt == "p" else 4)
    else:
        s = format(v, fmt)
    if s.startswith("<"):
        return tokens.less + s[1:]
    return tokens.minus + s[1:] if s.startswith("-") else s


def _emphasise(cell: Any, text: str, emph: str, strong: str) -> str:
    """``text`` inside the ``emph`` / ``strong`` templates (``{}`` for the text) the cell asks
    for."""
    if isinstance(cell, Cell):
        if cell.emph:
            text = emph.format(text)
        if cell.strong:
            text = strong.format(text)
    return text


def _tex_cell(cell: Any, column: Column) -> str:
    if isinstance(cell, Cell) and cell.tex is not None:
        return cell.tex
    text = _format(_value(cell), column.fmt, _TEX) + latex_escape(_mark(cell))
    return _emphasise(cell, text, "\\emph{{{}}}", "\\textbf{{{}}}")


def _html_cell(cell: Any, plain: str) -> str:
    if isinstance(cell, Cell) and cell.html is not None:
        return cell.html
    text = html_escape(plain)
    if isinstance(_value(cell), tuple):  # an interval is read as one: never broken
        text = f'<span style="white-space:nowrap">{text}</span>'
    return _emphasise(cell, text, "<i>{}</i>", "<b>{}</b>")


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """Padded plain-text columns (``right``: indices aligned right), a dashed rule under the
    headers; trailing spaces stripped."""
    widths = [len(h) for h in headers]
    for r in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, r, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), sep] + [line(r) for r in rows])
