"""kdtheory.report.format and kdtheory.report.table: the formatter set and the one table type."""

from __future__ import annotations

import csv
import io
import math

import pytest

from kdtheory.report.format import (
    csv_value,
    fmt_ci,
    fmt_num,
    fmt_p,
    fmt_pct,
    latex_escape,
    md_cell,
    p_text,
    tex_p,
)
from kdtheory.report.latex import latex_document
from kdtheory.report.table import Cell, Column, Row, Table

NAN = float("nan")


def test_numbers_p_values_and_intervals():
    assert fmt_num(0.123456) == "0.1235"
    assert fmt_num(NAN) == "n/a" and fmt_num(None, missing="nan") == "nan"
    assert fmt_num(-math.inf) == "-inf"
    assert fmt_p(0.02494) == "0.0249" and fmt_p(3e-5) == "<0.0001" and fmt_p(3e-4, 3) == "<0.001"
    assert p_text(3e-5) == "p < 0.0001" and p_text(None) == "p = n/a"
    assert tex_p(3e-5) == "$<$0.0001"
    assert fmt_ci(NAN, NAN) == "n/a" and fmt_ci(NAN, NAN, 3, missing=None) == "[nan, nan]"
    assert fmt_ci(-1.5, 2) == "[-1.5, 2]"
    assert fmt_pct(0.995833, digits=4) == "99.58%" and fmt_pct(0.9) == "90%"


def test_escaping_per_format():
    assert latex_escape("a_b & 5%") == "a\\_b \\& 5\\%"
    assert md_cell("a|b\\c <b>x</b>") == "a\\|b\\\\c &lt;b>x&lt;/b>"
    assert csv_value(NAN) == "" and csv_value(True) == "true" and csv_value(0.1) == "0.1"


def _table() -> Table:
    records = [
        {"experiment": "e1", "name": "a_1", "v": -0.5, "p": 2e-4, "lo": 0.1, "hi": 0.2},
        {"experiment": "e2", "name": "b", "v": NAN, "p": 0.25, "lo": NAN, "hi": NAN},
    ]
    columns = [
        Column("name", "name", fmt="text"),
        Column("value", "v", fmt=".2f"),
        Column("p", "p", fmt="p"),
        Column("CI", ("lo", "hi"), fmt=".1f"),
    ]
    return Table.from_records(records, columns, group="experiment", caption="A caption.")


def test_one_table_renders_in_every_format():
    table = _table()
    text = table.to_text().splitlines()
    assert text[0].split() == ["experiment", "name", "value", "p", "CI"]
    assert "−0.50" in text[2] and "<0.001" in text[2] and "[0.1, 0.2]" in text[2]
    md = table.to_markdown().splitlines()
    assert md[1] == "|---|---|---:|---:|---:|"
    assert md[3] == "| e2 | b | – | 0.250 | – |" and md[-1] == "_A caption._"
    tex = table.to_latex()
    assert "\\multicolumn{4}{l}{\\emph{e1}} \\\\" in tex and "a\\_1" in tex
    assert "$-$0.50 & $<$0.001 & [0.1, 0.2]" in tex and tex.count("\\midrule") == 2
    rows = list(csv.reader(io.StringIO(table.to_csv())))
    assert rows[0] == ["experiment", "name", "value", "p", "CI"] and rows[2][2] == ""
    html = table.to_html("booktabs")
    assert html.count("<tr>") == 3 and '<td class="l">a_1</td>' in html
    with pytest.raises(ValueError, match="unknown table format"):
        table.render("rtf")


def test_cells_carry_emphasis_and_their_own_rendering():
    table = Table(
        [Column("what", fmt="text"), Column("x", fmt=".3g")],
        [Row([Cell("key", strong=True, html="<i>key</i>"), 1.5], key=True), Row(["other", 2])],
    )
    assert "| **key** | 1.5 |" in table.to_markdown()
    assert "\\textbf{key} & 1.5" in table.to_latex()
    html = table.to_html("booktabs")
    assert '<tr class="key"><td class="l"><i>key</i></td>' in html and '<tr class="">' in html


def test_the_document_builder_declares_unicode_and_wraps_the_body():
    doc = latex_document(["κ ≠ 0", ""])
    assert doc.startswith("\\documentclass{article}") and doc.endswith("\\end{document}\n")
    assert "\\DeclareUnicodeCharacter{2260}" in doc and "\\DeclareUnicodeCharacter{03BA}" in doc
