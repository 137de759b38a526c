"""Verdict: JSON round trip and the text / Markdown / LaTeX / CSV / HTML renderings."""

from __future__ import annotations

import csv
import io
import json
import math
import re

import numpy as np
import pytest

from kdtheory.hypothesis.verdict import (
    DecidingTest,
    EffectRow,
    Verdict,
    fmt_p,
    p_text,
    render,
    verdicts_from_json,
    verdicts_to_json,
)

NAN = float("nan")


def make_verdict(name: str = "dark-knowledge", p_adjusted: float | None = 0.012) -> Verdict:
    return Verdict(
        hypothesis=name,
        claim="The teacher's wrong-class probabilities carry what the student uses.",
        prediction="Shuffling the wrong-class probabilities removes KD's gain (< 1 point).",
        decision="supported",
        alpha=0.05,
        effect="KD gain lost by shuffling, accuracy points",
        estimate=0.031,
        ci=(0.012, 0.050),
        p_value=0.003,
        model="one-sided paired t-test by seed; random-effects meta-analysis (DL)",
        statistic=3.4,
        alternative="greater",
        reason="Shuffling removes most of the gain & it is significant at 5%.",
        experiments=[
            EffectRow(
                "mnist1d_mlp",
                0.028,
                0.010,
                0.046,
                0.004,
                3.1,
                5,
                "supported",
                extra={"tost_p": NAN, "gain_%": np.float64(1.5), "note": "ok"},
            ),
            EffectRow("cifar10_resnet", 0.035, -0.002, 0.072, 0.06, 1.7, 5, "inconclusive"),
        ],
        pooled=EffectRow(
            "pooled", 0.031, 0.012, 0.050, 0.003, 2.9, 2, "supported", {"tau2": 0.0, "i2": NAN}
        ),
        tables={"per_fraction": [{"fraction": 0.1, "gain": 0.05}, {"fraction": 1.0, "gain": NAN}]},
        summaries={"mnist1d_mlp": "OLS Regression Results\n====\nx  0.1"},
        p_adjusted=p_adjusted,
        family=["dark-knowledge", "label-smoothing"] if p_adjusted is not None else [],
    )


# ----------------------------------------------------------------------------- JSON


def test_json_round_trip_is_equal_with_nan():
    v = make_verdict()
    text = v.as_json()
    assert "NaN" not in text and "Infinity" not in text
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    back = Verdict.from_json(text)
    assert back == v
    assert Verdict.from_dict(v.to_dict()) == v
    assert math.isnan(back.experiments[0].statistic) is False
    assert back.ci == (0.012, 0.050)
    assert back.pooled is not None and back.pooled.extra["i2"] is None  # NaN -> null in extras


def test_json_top_level_keys_and_nulls():
    d = json.loads(make_verdict().as_json())
    for key in (
        "hypothesis",
        "decision",
        "alpha",
        "estimate",
        "ci",
        "p_value",
        "experiments",
        "pooled",
    ):
        assert key in d
    assert d["ci_level"] == pytest.approx(0.90)  # one-sided test at alpha 0.05
    assert d["experiments"][0]["extra"]["tost_p"] is None
    assert d["experiments"][0]["extra"]["gain_%"] == 1.5
    assert d["tables"]["per_fraction"][1]["gain"] is None


def test_unavailable_verdict_round_trips_and_renders():
    v = Verdict.unavailable(
        "neural-collapse", "claim", "prediction", 0.05, "experiment 'x' lacks 'features'"
    )
    assert v.decision == "inconclusive" and math.isnan(v.estimate) and math.isnan(v.p_value)
    assert not v.available
    d = json.loads(v.as_json())
    assert d["estimate"] is None and d["ci"] == [None, None] and d["pooled"] is None
    assert Verdict.from_json(v.as_json()) == v
    for fmt in ("text", "json", "markdown", "latex", "latex-document", "csv", "html"):
        out = render(v, fmt)
        assert "neural-collapse" in out or fmt == "latex"  # a lone tabular has no title
    assert "lacks" in v.as_text()


def test_equality_detects_differences():
    a, b = make_verdict(), make_verdict()
    assert a == b
    b.experiments[1].p_value = 0.07
    assert a != b
    assert EffectRow("x", NAN, NAN, NAN, NAN) == EffectRow("x", NAN, NAN, NAN, NAN)


def test_list_json_round_trip():
    vs = [make_verdict(), make_verdict("label-smoothing", p_adjusted=None)]
    text = verdicts_to_json(vs)
    assert isinstance(json.loads(text), list)
    assert verdicts_from_json(text) == vs
    assert verdicts_from_json(vs[0].as_json()) == [vs[0]]
    assert json.loads(render(vs, "json"))[1]["hypothesis"] == "label-smoothing"
    with pytest.raises(ValueError, match="decision"):
        Verdict.from_dict({**vs[0].to_dict(), "decision": "maybe"})


# ----------------------------------------------------------------------------- text


def test_text_rendering():
    v = make_verdict()
    text = v.as_text()
    assert str(v) == text
    assert "SUPPORTED" in text
    assert "wrong-class probabilities" in text
    assert "90% two-sided CI (one-sided test, alpha=0.05)" in text
    assert "Holm p = 0.0120" in text
    for label in ("mnist1d_mlp", "cifar10_resnet", "pooled"):
        assert label in text
    assert "OLS Regression Results" not in text
    detailed = v.as_text(details=True)
    assert "OLS Regression Results" in detailed and "per_fraction" in detailed
    assert "tost_p" in detailed


def test_family_text_and_markdown_have_a_summary_table():
    vs = [make_verdict(), make_verdict("label-smoothing")]
    text = render(vs, "text")
    assert text.index("label-smoothing") < text.index("Claim")  # summary first
    assert "Holm" in text
    md = render(vs, "markdown")
    assert md.startswith("## Verdicts")


# ----------------------------------------------------------------------------- Markdown


def _md_cells(line: str) -> int:
    return len(re.split(r"(?<!\\)\|", line.strip())) - 2


def test_markdown_tables_are_well_formed():
    md = make_verdict().as_markdown(details=True)
    assert md.startswith("### dark-knowledge: **supported**")
    tables: list[list[str]] = []
    current: list[str] = []
    for line in md.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    assert len(tables) >= 3
    for table in tables:
        widths = {_md_cells(line) for line in table}
        assert len(widths) == 1, table
        assert re.fullmatch(r"\|(-{3}:?\|)+", table[1].replace("---:", "---:")), table[1]
    effects = next(t for t in tables if t[0].startswith("| experiment"))
    assert len(effects) == 2 + 3  # header, rule, 2 experiments, pooled
    assert "Holm p" in effects[0]
    assert "```" in md  # model summary block


# ----------------------------------------------------------------------------- LaTeX


def _latex_rows(body: str) -> list[str]:
    return [ln for ln in body.splitlines() if ln.rstrip().endswith("\\\\")]


def test_latex_body_is_booktabs_with_escaping():
    tex = make_verdict().as_latex()
    lines = tex.splitlines()
    # a line-wide tabularx whose experiment column wraps: never scaled to fit
    assert lines[0].startswith("\\begin{tabularx}{\\linewidth}{") and lines[-1] == "\\end{tabularx}"
    assert lines[1] == "\\toprule" and lines[-3] == "\\bottomrule"
    assert lines[-2].startswith("\\multicolumn{") and "n: seeds" in lines[-2]  # the notes row
    assert "\\midrule" in lines
    assert "mnist1d\\_mlp" in tex and "cifar10\\_resnet" in tex
    assert re.search(r"(?<!\\)_", tex) is None  # every underscore escaped
    assert "90\\% CI" in tex
    rows = _latex_rows(tex)
    assert len(rows) == 1 + 3 + 1  # header + 2 experiments + pooled + notes
    n_cols = len(re.findall(r"(?<!\\)&", rows[0])) + 1
    assert n_cols == 7  # experiment, estimate, CI, p, Holm p, n, decision
    for row in rows[1:-1]:
        assert len(re.findall(r"(?<!\\)&", row)) == n_cols - 1
    assert "$-$0.002" in tex  # negative numbers typeset as minus signs


def test_latex_escapes_specials_in_labels():
    v = make_verdict()
    v.experiments[0].label = "a_b 50% & c#1 {x} ~^ \\"
    tex = v.as_latex()
    assert "a\\_b 50\\% \\& c\\#1 \\{x\\}" in tex
    assert "\\textbackslash{}" in tex and "\\textasciitilde{}" in tex


def test_latex_document_is_complete():
    doc = make_verdict().as_latex_document()
    assert doc.startswith("\\documentclass{article}")
    assert "\\usepackage{booktabs}" in doc
    assert doc.rstrip().endswith("\\end{document}")
    assert doc.count("\\begin{") == doc.count("\\end{")
    assert "\\begin{tabularx}" in doc and "\\begin{verbatim}" in doc
    assert "\\usepackage{tabularx}" in doc and "resizebox" not in doc
    # the reason's "&" and "%" are escaped in the description
    assert "gain \\& it is significant at 5\\%" in doc


def test_latex_document_declares_the_unicode_it_uses():
    # a two-sided deciding test describes itself with "≠", which pdflatex cannot typeset as
    # it is: escaped as math; a character latex_escape does not know is declared instead
    v = make_verdict()
    v.deciding = DecidingTest("t-test", "supported", "two-sided")
    v.reason = "the ratio ⅓ is small"
    doc = v.as_latex_document()
    assert "≠" not in doc and "$\\neq$" in doc
    assert "\\DeclareUnicodeCharacter{2153}" in doc
    assert doc.index("DeclareUnicodeCharacter") < doc.index("\\begin{document}")


def test_latex_family_table_one_row_per_hypothesis_and_experiment():
    vs = [
        make_verdict(),
        make_verdict("label-smoothing"),
        Verdict.unavailable("fidelity-decay", "c", "p", 0.05, "missing"),
    ]
    tex = render(vs, "latex")
    assert tex.count("\\begin{tabularx}") == 1 and "resizebox" not in tex
    rows = _latex_rows(tex)
    # header, a heading per hypothesis, 3 + 3 + 1 rows, the notes
    assert len(rows) == 1 + 3 + 3 + 3 + 1 + 1
    assert rows[0].startswith("Experiment &") and "Holm $p$" in rows[0]
    assert sum("\\emph{label-smoothing}" in r for r in rows) == 1  # the group's heading
    assert "fidelity-decay" in tex


# ----------------------------------------------------------------------------- CSV / HTML


def test_csv_parses_with_header_and_rows():
    v = make_verdict()
    rows = list(csv.DictReader(io.StringIO(v.as_csv())))
    assert [r["experiment"] for r in rows] == ["mnist1d_mlp", "cifar10_resnet", "pooled"]
    assert [r["row"] for r in rows] == ["experiment", "experiment", "pooled"]
    assert float(rows[0]["estimate"]) == 0.028
    assert float(rows[0]["ci_level"]) == pytest.approx(0.9)
    assert rows[0]["extra_tost_p"] == ""  # NaN -> empty cell
    assert rows[0]["extra_note"] == "ok"
    assert rows[2]["p_adjusted"] == "0.012" and rows[2]["verdict_decision"] == "supported"
    assert rows[1]["decision"] == "inconclusive"


def test_csv_of_a_family_has_a_hypothesis_column():
    vs = [make_verdict(), make_verdict("label-smoothing")]
    rows = list(csv.DictReader(io.StringIO(render(vs, "csv"))))
    assert len(rows) == 6
    assert {r["hypothesis"] for r in rows} == {"dark-knowledge", "label-smoothing"}


def test_html_rendering_escapes_and_repr():
    v = make_verdict()
    v.claim = "x < y & z"
    out = v.as_html()
    assert v._repr_html_() == out
    assert "x &lt; y &amp; z" in out and "<table" in out
    assert out.count("<table") == out.count("</table>")
    assert "supported" in out and "pooled" in out


def test_html_details_match_the_text_details_and_escape_every_cell():
    v = make_verdict(p_adjusted=1e-6)  # the Holm p shows as "<0.0001"
    v.experiments[0].extra["a<b"] = 0.5
    html = v.as_html(details=True)
    # the same further numbers as the text rendering, in a collapsible block
    assert "<summary>Further numbers</summary>" in html
    assert "a&lt;b" in html and "gain_%" in html and "a<b" not in html
    assert "&lt;0.0001" in html and "<0.0001" not in html
    assert "<b>supported</b>" in html  # the key row's decision
    text = v.as_text(details=True)
    assert "Further numbers" in text and "a<b" in text and "Holm p" in text
    assert html.count("<table") == html.count("</table>")


def test_render_rejects_unknown_format():
    with pytest.raises(ValueError, match="unknown format"):
        render(make_verdict(), "docx")
    assert render(make_verdict(), "md") == make_verdict().as_markdown()


# ----------------------------------------------------------------------------- deciding test
@pytest.mark.parametrize(
    ("kind", "ci", "clears"),
    [
        ("greater", (0.1, 2.0), True),
        ("greater", (-0.1, 2.0), False),
        ("less", (-2.0, -0.1), True),
        ("less", (-2.0, 0.1), False),
        ("two-sided", (-2.0, -0.1), True),
        ("two-sided", (-0.1, 0.1), False),
        ("inside", (-0.9, 0.9), True),
        ("inside", (-1.1, 0.9), False),
        ("outside", (1.1, 3.0), True),
        ("outside", (0.9, 3.0), False),
        ("greater", (NAN, NAN), False),
    ],
)
def test_deciding_test_decision_follows_p_alpha_and_ci(kind, ci, clears):
    t = DecidingTest("t", "rejected", kind, null=0.0, low=-1.0, high=1.0, ci_level=0.9)
    assert t.clears(*ci) == clears
    assert t.implied_decision(0.01, 0.05, *ci) == ("rejected" if clears else "inconclusive")
    assert t.implied_decision(0.2, 0.05, *ci) == "inconclusive"
    assert t.implied_decision(NAN, 0.05, *ci) == "inconclusive"
    with pytest.raises(ValueError, match="kind"):
        DecidingTest("t", "supported", "sideways")


def test_verdict_with_deciding_test_round_trips_and_uses_the_holm_p():
    test = DecidingTest("intersection-union", "supported", "greater", ci_level=0.9)
    v = make_verdict(p_adjusted=0.012)
    v.deciding, v.pooling = test, "mixed: t on k - 1 df"
    v.pooled.deciding, v.pooled.unit = test, "experiments"
    assert Verdict.from_json(v.as_json()) == v
    assert v.implied_decision() == "supported"
    v.p_adjusted = 0.08  # Holm-adjusted above alpha: the numbers imply inconclusive
    assert v.implied_decision() == "inconclusive"
    text = v.as_text()
    assert "deciding test: intersection-union" in text
    assert "2 experiments" in text and "5 seeds" in text
    assert "Pooled row: mixed: t on k - 1 df" in text and "tau² = 0" in text
    assert make_verdict().implied_decision() is None  # no deciding test, no claim


def test_rows_at_another_ci_level_or_test_are_marked_and_explained():
    v = make_verdict()
    v.experiments[0].deciding = DecidingTest("a", "supported", "greater", ci_level=0.9)
    v.pooled.deciding = DecidingTest("a", "supported", "greater", ci_level=0.9)
    text = v.as_text()
    assert "90% CI" in text and "CIs: 90% two-sided" in text
    assert "†" not in text and "Test (" not in text
    v.experiments[1].deciding = DecidingTest("b", "rejected", "greater", ci_level=0.9958333)
    for rendered in (v.as_text(), v.as_markdown(), v.as_html(), v.as_latex()):
        # the row's CI is marked, the note gives its level (not rounded to 100%), and the
        # rows' different deciding tests are keyed
        assert ("†" in rendered or "\\dag" in rendered) and "99.58" in rendered, rendered
        assert "100%" not in rendered and "100\\%" not in rendered
        assert "A = a" in rendered and "B = b" in rendered


def test_family_title_counts_the_holm_family_once():
    tested = [make_verdict("a"), make_verdict("b")]
    for v in tested:
        v.family = ["a", "b"]
    missing = Verdict.unavailable("c", "claim", "prediction", 0.05, "needs ls")
    text = render([*tested, missing], "text")
    assert text.startswith("2 hypotheses tested as one Holm family at alpha = 0.05")
    assert "not in the family (no p-value on this store): c" in text
    assert "(family of 2)" in text
    assert "2 hypotheses tested as one Holm family" in render([*tested, missing], "markdown")


def test_one_p_formatting():
    import kdtheory.hypothesis.toolkit as h

    assert fmt_p(0.02494) == "0.0249" and fmt_p(3e-6) == "<0.0001" and fmt_p(NAN) == "n/a"
    assert p_text(0.02494) == "p = 0.0249" and p_text(3e-6) == "p < 0.0001"
    assert h.fmt_p(0.02494) == p_text(0.02494) and h.fmt_p(NAN) == "p = n/a"


def test_detail_blocks_order_titles_and_escaping():
    """The one list of details the text, Markdown and HTML renderings share."""
    from kdtheory.report.table import Table
    from kdtheory.report.verdict_parts import detail_blocks, effect_lines

    v = make_verdict()
    v.tables = {"empty": [], "a<b": [{"x": 1}]}
    v.summaries = {"m|1": "summary text  \n\n"}
    blocks = detail_blocks(v, effect_lines(v), escape=lambda s: s.upper())
    titles = [title for title, _ in blocks]
    assert titles == ["Further numbers", "Table: A<B", "Model summary: M|1"]
    assert isinstance(blocks[0][1], Table) and isinstance(blocks[1][1], Table)
    assert blocks[2][1] == "summary text"  # stripped, not escaped
    from kdtheory.report.format import md_cell

    md = v.as_markdown(details=True)
    assert f"**Table: {md_cell('a<b')}**" in md
    assert "```\nsummary text\n```" in md and "empty" not in md
