"""kdtheory.report.bundle: ``kdtheory report --latex-only`` on a small synthetic store."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import SMALL
from typer.testing import CliRunner

from kdtheory.cli.app import app
from kdtheory.report.bundle import RESULTS_TEX, STANDALONE_TEX, bundle_targets
from kdtheory.report.document import read_report
from kdtheory.testing.synthetic import make_store

HYPOTHESES = [
    "dark-knowledge",
    "data-efficiency",
    "fidelity-decay",
    "label-smoothing",
    "neural-collapse",
]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundle")
    runs = root / "runs"
    runs.mkdir()
    for name, ds in make_store(2, seed=0, **SMALL).items():
        ds.to_netcdf(runs / f"{name}.nc")
    out = root / "paper"
    result = CliRunner().invoke(
        app, ["report", "--runs", str(runs), "--out", str(out), "--latex-only"]
    )
    assert result.exit_code == 0, result.output
    return out, result.output


def test_only_latex_files_are_written(bundle):
    out, output = bundle
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert RESULTS_TEX in files and STANDALONE_TEX in files and "verdicts.json" in files
    assert not any(f.endswith((".html", ".md", ".csv", ".png")) for f in files), files
    assert not any(f.endswith("-document.tex") for f in files)
    assert {Path(f).parent.as_posix() for f in files} <= {".", "figures", "tables"}
    assert "results.tex" in output
    # no temporary folder or file of the atomic build is left next to the bundle
    assert sorted(p.name for p in out.parent.iterdir()) == ["paper", "runs"]


def test_every_target_exists_and_every_file_is_used(bundle):
    out, _ = bundle
    results = (out / RESULTS_TEX).read_text(encoding="utf-8")
    targets = bundle_targets(results)
    assert targets, results
    assert len(targets) == len(set(targets))
    for target in targets:
        assert (out / target).is_file(), target
    # each \input / \includegraphics outside the comments was found by bundle_targets
    code = "\n".join(line for line in results.splitlines() if not line.startswith("%"))
    assert len(targets) == len(re.findall(r"\\(?:input|includegraphics)\b", code))
    used = {
        p.relative_to(out).as_posix() for d in ("figures", "tables") for p in (out / d).iterdir()
    }
    assert used == set(targets)
    assert "figures/accuracy.pdf" in targets and "tables/verdicts.tex" in targets
    for h in HYPOTHESES:
        assert f"tables/{h}.tex" in targets


def test_floats_have_captions_labels_and_paragraphs(bundle):
    out, _ = bundle
    results = (out / RESULTS_TEX).read_text(encoding="utf-8")
    assert "\\usepackage{booktabs}" in results and "\\usepackage{graphicx}" in results
    assert "\\usepackage{tabularx}" in results
    floats = re.findall(r"\\begin\{(figure\*?|table\*)\}(.*?)\\end\{\1\}", results, re.S)
    assert len(floats) == len(bundle_targets(results))
    for kind, body in floats:
        assert re.search(r"\\caption\{.+\}", body), body
        prefix = "fig" if kind.startswith("figure") else "tab"
        assert re.search(rf"\\label\{{{prefix}:[\w.-]+\}}", body), body
    labels = re.findall(r"\\label\{([^}]+)\}", results)
    assert len(labels) == len(set(labels))
    # the report's own captions: an overview figure's, a plugin table's, the verdict table's
    assert "\\label{fig:accuracy}" in results
    assert "the dashed grey line is the teacher" in results
    verdicts, _ = read_report(out)
    assert [v.hypothesis for v in verdicts] == HYPOTHESES
    for v in verdicts:
        para = results.split(f"\\label{{hyp:{v.hypothesis}}}", 1)[1].split("\n\n", 1)[0]
        assert f"Decision: \\emph{{{v.decision}}}" in para
        if v.available:
            assert "Holm-adjusted $p$" in para and "CI [" in para, para


def test_verdicts_json_lists_only_bundle_files(bundle):
    out, _ = bundle
    data = json.loads((out / "verdicts.json").read_text(encoding="utf-8"))
    for secs in data["sections"].values():
        for sec in secs:
            for path in [*sec["figures"], *sec["tables"]]:
                assert (out / path).is_file(), path


def test_a_bundle_replaces_a_report_and_back(bundle, tmp_path):
    out, _ = bundle
    copy = tmp_path / "paper"
    shutil.copytree(out, copy)
    runs = out.parent / "runs"
    result = CliRunner().invoke(
        app, ["report", "--runs", str(runs), "--out", str(copy), "-H", "data-efficiency"]
    )
    assert result.exit_code == 0, result.output
    assert (copy / "index.html").is_file() and not (copy / RESULTS_TEX).exists()


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_standalone_wrapper_compiles(bundle, tmp_path):
    out, _ = bundle
    work = tmp_path / "paper"
    shutil.copytree(out, work)
    proc = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", STANDALONE_TEX],
        cwd=work,
        capture_output=True,
        timeout=300,
    )
    log = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, log[-3000:]
    assert (work / STANDALONE_TEX.replace(".tex", ".pdf")).is_file()
    log = (work / STANDALONE_TEX.replace(".tex", ".log")).read_text(errors="replace")
    assert "Missing character" not in log
    # set in two columns like a paper, and every table fits: none is scaled, none overflows
    assert "\\documentclass[twocolumn]{article}" in (work / STANDALONE_TEX).read_text()
    assert "Overfull \\hbox" not in log, re.findall(r"Overfull \\hbox.*", log)


def test_tables_are_never_scaled_and_captions_come_from_the_sections(bundle):
    out, _ = bundle
    results = (out / RESULTS_TEX).read_text(encoding="utf-8")
    for tex in [results, *(p.read_text() for p in (out / "tables").glob("*.tex"))]:
        assert "resizebox" not in tex and "scalebox" not in tex
    assert not list((out / "tables").glob("*-document.tex"))  # nothing left to parse
    # the per-kappa table's caption, as the hypothesis wrote it, above its table
    assert re.search(
        r"\\caption\{KD vs label smoothing per kappa.*?\}\n\\label\{tab:label-smoothing-by-kappa\}",
        results,
    )
    # the interval convention stated once, at the top
    assert results.count("\\paragraph{Intervals.}") == 1
    assert results.index("Intervals.") < results.index("\\begin{")


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_a_paper_inputs_the_bundle_from_a_sub_folder(bundle, tmp_path):
    out, _ = bundle
    shutil.copytree(out, tmp_path / "results")
    wrapper = (out / STANDALONE_TEX).read_text(encoding="utf-8")
    paper = wrapper.replace(
        "\\input{results}", "\\newcommand{\\kdresultsdir}{results/}\n\\input{results/results}"
    )
    assert paper != wrapper
    (tmp_path / "paper.tex").write_text(paper, encoding="utf-8")
    proc = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"],
        cwd=tmp_path,
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout.decode(errors="replace")[-3000:]
    assert (tmp_path / "paper.pdf").is_file()


def test_figures_print_at_their_natural_width_in_two_columns(bundle):
    """A figure drawn for both columns (6.9 in) floats as figure*, a one-column one as figure,
    so \\linewidth is about the width it was drawn for and its 7 pt text stays 7 pt."""
    from kdtheory.report.bundle import WIDE_FIGURE_IN, pdf_width_in

    out, _ = bundle
    results = (out / RESULTS_TEX).read_text(encoding="utf-8")
    floats = re.findall(r"\\begin\{(figure\*?)\}(.*?)\\end\{\1\}", results, re.S)
    assert "figure*" in {kind for kind, _ in floats}  # two experiments: panels side by side
    for kind, body in floats:
        path = re.search(r"\\includegraphics\[[^]]*\]\{\\kdresultsdir\s*([^}]+)\}", body)
        width = pdf_width_in(out / path.group(1).strip())
        assert width is not None and 3.0 < width < 7.2, (path.group(1), width)
        assert (kind == "figure*") == (width > WIDE_FIGURE_IN), (path.group(1), width)
