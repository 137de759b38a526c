"""Tables that go into a paper unedited (issue 14): display titles in every table row, one
interval convention per report, rows marked where their CI or deciding test differs, escaping
that survives pdflatex, and short reasons."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from test_verdict import make_verdict

from kdtheory.hypothesis.sections import ci_column, table_level
from kdtheory.hypothesis.toolkit import mean_ci_columns
from kdtheory.hypothesis.verdict import DecidingTest, Verdict
from kdtheory.report.format import (
    ci_header,
    fmt_level,
    interval_convention,
    interval_level,
    latex_escape,
)
from kdtheory.report.latex import latex_document
from kdtheory.report.render import render

DATA = Path(__file__).resolve().parents[1] / "data"
TITLES = {"mnist1d_mlp": "MNIST-1D · MLP 128", "cifar10_resnet": "CIFAR-10 · ResNet→ResNet"}
IDS = tuple(TITLES)


def titled_verdict(alpha: float = 0.05) -> Verdict:
    v = make_verdict()
    v.titles = dict(TITLES)
    v.alpha = alpha
    return v


def _rows(text: str, start: str) -> list[str]:
    """The lines of a rendered table body that start with ``start`` (a row marker)."""
    return [line for line in text.splitlines() if line.lstrip().startswith(start)]


# ------------------------------------------------------------------------------ titles


def test_table_rows_show_titles_and_keep_ids_in_csv_and_json():
    v = titled_verdict()
    for rendered in (v.as_text(), v.as_markdown(), v.as_html(), v.as_latex()):
        for title in ("MNIST-1D", "CIFAR-10"):
            assert title in rendered
    # no id in any table row (the model summary heading names its experiment by title too)
    for rendered in (v.as_text(details=True), v.as_markdown(details=True), v.as_latex()):
        for line in rendered.splitlines():
            if "|" in line or "&" in line or line.startswith(("mnist", "cifar")):
                assert not any(i in line for i in IDS), line
    assert not any(i in v.as_html(details=True).split("<pre>")[0] for i in IDS)
    rows = list(csv.DictReader(io.StringIO(v.as_csv())))
    assert [r["experiment"] for r in rows] == [*IDS, "pooled"]
    assert [r["title"] for r in rows][:2] == [TITLES[i] for i in IDS]
    data = json.loads(v.as_json())
    assert [r["label"] for r in data["experiments"]] == list(IDS)
    assert data["titles"] == TITLES
    assert Verdict.from_json(v.as_json()).titles == TITLES


def test_test_runner_attaches_the_stores_titles():
    from kdtheory.hypothesis.family import run_test
    from kdtheory.store.titles import experiment_titles
    from kdtheory.testing.synthetic import make_store

    store = make_store(2, seed=0, n_seeds=2, n_train=60, n_test=40, fractions=(0.3, 1.0))
    v = run_test("data-efficiency", store)
    assert v.titles == experiment_titles(store)
    table = v.as_markdown()
    for name, title in v.titles.items():
        if name != title:
            assert f"| {name} |" not in table


# ------------------------------------------------------------------------------ LaTeX


NASTY = "a--b --- 50% & #1 ~x^2_y {z} \\ <b>|c ''q'' ,,d ?`!` \"s\" · → κ ≠ − ρ † ¶"


def test_latex_escape_handles_specials_ligatures_and_unicode():
    tex = latex_escape(NASTY)
    assert "--" not in tex.replace("-{}-", "")  # no en/em-dash ligature survives
    assert "''" not in tex.replace("'{}'", "") and ",," not in tex
    for raw, escaped in [
        ("%", "\\%"),
        ("&", "\\&"),
        ("#", "\\#"),
        ("_", "\\_"),
        ("~", "\\textasciitilde{}"),
        ("^", "\\textasciicircum{}"),
        ("·", "$\\cdot$"),
        ("→", "$\\rightarrow$"),
        ("κ", "$\\kappa$"),
        ("≠", "$\\neq$"),
        ("−", "$-$"),
        ("ρ", "$\\rho$"),
        ("†", "\\dag{}"),
    ]:
        assert escaped in tex, raw
    assert all(ord(c) < 128 for c in tex)  # nothing left for inputenc to choke on


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_escaped_text_and_titled_tables_compile(tmp_path):
    v = titled_verdict()
    v.experiments[0].deciding = DecidingTest("b", "rejected", "two-sided", ci_level=0.975)
    doc = latex_document([latex_escape(NASTY), "", "\\noindent", v.as_latex()], twocolumn=True)
    (tmp_path / "t.tex").write_text(doc, encoding="utf-8")
    proc = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
    )
    log = (tmp_path / "t.log").read_text(errors="replace")
    assert proc.returncode == 0, log[-2000:]
    assert "Missing character" not in log


def test_no_table_is_ever_scaled():
    for rendered in (
        titled_verdict().as_latex(),
        titled_verdict().as_latex_document(),
        render([titled_verdict(), make_verdict("label-smoothing")], "latex"),
    ):
        assert "resizebox" not in rendered and "scalebox" not in rendered


# ------------------------------------------------------------------------------ intervals


def test_level_format_never_rounds_to_100_percent():
    assert fmt_level(0.9) == "90%" and fmt_level(0.975) == "97.5%"
    assert fmt_level(0.9875) == "98.75%" and fmt_level(0.99583333) == "99.58%"
    assert fmt_level(0.99999) == "99.999%"
    assert ci_header(0.8) == "80% CI" and ci_header(0.9, "(CKA)") == "90% CI (CKA)"


@pytest.mark.parametrize(("alpha", "header"), [(0.05, "90% CI"), (0.1, "80% CI")])
def test_ci_headers_follow_alpha(alpha, header):
    v = titled_verdict(alpha)
    assert interval_level(alpha) == pytest.approx(1 - 2 * alpha)
    other = {"90% CI", "80% CI", "95% CI"} - {header}
    for rendered in (v.as_text(), v.as_markdown(), v.as_html(), v.as_latex()):
        shown = rendered.replace("\\%", "%")
        assert header in shown and not any(o in shown for o in other), shown
    assert f"two-sided at {fmt_level(1 - 2 * alpha)} (1 " in interval_convention(alpha)
    column = ci_column("gap", level=table_level(v))
    assert column.header == header and column.header_tex == header.replace("%", "\\%")


def test_per_kappa_intervals_are_t_intervals_at_one_minus_two_alpha():
    values = np.array([[1.0, 2.0, 4.0], [3.0, 3.5, 5.0]])
    for alpha in (0.05, 0.1):
        cols = mean_ci_columns(values, alpha, "gap")
        for i, row in enumerate(values):
            half = stats.t.ppf(1 - alpha, 2) * row.std(ddof=1) / np.sqrt(3)
            assert cols["ci_low"][i] == pytest.approx(row.mean() - half)
            assert cols["ci_high"][i] == pytest.approx(row.mean() + half)


def test_rows_at_holm_levels_and_different_tests_are_marked():
    v = titled_verdict()
    v.experiments[0].deciding = DecidingTest("TOST b", "supported", "inside", ci_level=0.9)
    v.experiments[1].deciding = DecidingTest("curvature q", "rejected", "two-sided", ci_level=0.975)
    v.pooled.deciding = DecidingTest("TOST b", "supported", "inside", ci_level=0.9)
    md = v.as_markdown()
    row = next(line for line in md.splitlines() if line.startswith("| CIFAR-10"))
    assert "†" in row and "| B |" in row
    assert "† 97.5% CI" in md and "A = TOST b" in md and "B = curvature q" in md
    tex = v.as_latex()
    assert "\\dag{}" in tex and "97.5\\% CI" in tex and "B = curvature q" in tex


# ------------------------------------------------------------------------------ reasons


@pytest.mark.skipif(not DATA.is_dir(), reason="the shipped store is not there")
def test_label_smoothing_reason_is_short_and_its_tests_are_a_table(tmp_path):
    from kdtheory.hypothesis.family import run_test
    from kdtheory.plugin.manager import get_registries

    v = run_test("label-smoothing", DATA)
    assert v.decision == "rejected"  # the branch that listed every test before
    assert len(v.reason) < 700, v.reason
    assert len(re.findall(r"[.!?](?:\s|$)", v.reason)) <= 3
    assert "Holm p = 1.000" not in v.reason and "…" not in v.reason
    # the per-fraction tests are a table of the section (the figure exists: not drawn again)
    (tmp_path / "figures").mkdir()
    (tmp_path / "tables").mkdir()
    for suffix in (".pdf", ".png"):
        (tmp_path / "figures" / f"gaps{suffix}").write_bytes(b"")
    hyp = get_registries().hypotheses.get("label-smoothing")
    (section,) = hyp.report_sections(v, {}, tmp_path)
    body = "tables/label-smoothing-rejection-family.tex"
    assert body in section.tables and "rejection family" in section.caption(body)
    md = (tmp_path / "tables/label-smoothing-rejection-family.md").read_text(encoding="utf-8")
    rows = [line for line in md.splitlines() if line.startswith("|")][2:]
    assert len(rows) == 3 * (1 + 7)  # every experiment's mean and per-fraction tests
    assert sum("| yes |" in r for r in rows) == 1  # the one significant test
    assert "MNIST-1D n=4000 · CNN 64→MLP 128" in md and "mnist1d_num_samples" not in md
