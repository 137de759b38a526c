"""Display labels of experiments (kdtheory.store.titles) and LaTeX escaping that keeps the text."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

import kdtheory
from kdtheory.report.format import latex_escape
from kdtheory.store.titles import experiment_title, experiment_titles, spec_label
from kdtheory.testing.synthetic import make_store

DATA = Path(__file__).resolve().parents[1] / "data"


def test_titles_of_the_shipped_experiments():
    store = kdtheory.open_runs(DATA)
    titles = experiment_titles(store)
    assert titles == {
        "mnist-5k--cnn_channels=32_width=128--cnn_channels=8": "MNIST-5k · CNN 32→8",
        "mnist-5k--vit--vit_dim=32_heads=2": "MNIST-5k · ViT→ViT 32",
        "mnist1d_num_samples=4000--cnn_channels=64_width=128--mlp_width=128": (
            "MNIST-1D n=4000 · CNN 64→MLP 128"
        ),
    }
    name = "mnist-5k--vit--vit_dim=32_heads=2"
    assert store[name].kd.title == experiment_title(store[name].attrs) == titles[name]


def test_a_title_attribute_wins_and_is_one_line():
    attrs = {
        "title": "  Our\n  main  result ",
        "dataset": "mnist",
        "teacher": "cnn",
        "student": "mlp",
    }
    assert experiment_title(attrs) == "Our main result"
    assert experiment_title({**attrs, "title": " "}) == "MNIST · CNN→MLP"


def test_unknown_architectures_and_missing_attributes_never_crash():
    assert spec_label("resnet:depth=18,width=2") == ("resnet", "depth=18 width=2")
    assert spec_label("cnn:width=64") == ("CNN", "")  # no channels: the family alone
    attrs = {
        "dataset": "cifar10:augment=1",
        "teacher": "resnet:depth=18",
        "student": "mlp:width=64",
    }
    assert experiment_title(attrs) == "cifar10 augment=1 · resnet depth=18→MLP 64"
    odd = {"dataset": "d:x", "teacher": ":", "student": "mlp:,,"}
    assert experiment_title(odd) == "d x · ?→MLP"
    assert experiment_title({"experiment": "exp-1"}) == "exp-1"
    assert experiment_title({}) == "experiment"
    assert experiment_title(None) == "experiment"


def test_synthetic_titles_are_readable_and_distinct():
    store = make_store(3)
    titles = experiment_titles(store)
    assert len(set(titles.values())) == 3
    for name, title in titles.items():
        assert title.startswith("Synthetic · ")
        assert title.endswith(f"({name})")  # same models: the id tells them apart
    one = make_store(1)
    assert experiment_titles(one) == {
        "synthetic-0": "Synthetic · synthetic-teacher→synthetic-student"
    }
    store["synthetic-1"].attrs["title"] = "Planted gain"
    assert experiment_titles(store)["synthetic-1"] == "Planted gain"


# --------------------------------------------------------------------------------------------
# LaTeX escaping

SPECIALS = "a--b---c ''x'' ,,y `z` \"q\" _%&#~^\\{}$ <>| end"


def test_latex_escape_breaks_ligatures_and_escapes_specials():
    tex = latex_escape(SPECIALS)
    assert "--" not in tex.replace("-{}-", "")  # no en dash can form
    assert tex.startswith("a-{}-b-{}-{}-c '{}'x'{}' ,{},y ")
    for raw, escaped in [
        ("_", r"\_"),
        ("%", r"\%"),
        ("&", r"\&"),
        ("#", r"\#"),
        ("$", r"\$"),
        ("~", r"\textasciitilde{}"),
        ("^", r"\textasciicircum{}"),
        ("\\", r"\textbackslash{}"),
    ]:
        assert escaped in latex_escape(f"x{raw}y"), raw
    assert latex_escape("mnist-5k--cnn_channels=32") == r"mnist-5k-{}-cnn\_channels=32"
    assert latex_escape("MNIST-5k · CNN 32→8") == r"MNIST-5k $\cdot$ CNN 32$\rightarrow$8"
    assert latex_escape("\u2013") == "--"  # a real en dash stays one


#: glyphs of the OT1 math-symbol font that text commands borrow
_OMS = {"n": "\\", "f": "{", "g": "}", "j": "|"}


def _typeset_text(log: str) -> str:
    """The visible text of the box that ``\\showbox0`` wrote to a pdflatex log."""
    out = []
    for line in log.splitlines():
        m = re.match(r"^\.\\(\w+)/\S+ (.+)$", line)
        if m:
            font, char = m.groups()
            out.append(_OMS.get(char, char) if font == "OMS" else char)
        elif line.startswith(".\\glue"):
            out.append(" ")
        elif line.startswith("..\\rule"):
            out.append("_")  # \_ is a rule in OT1
    return "".join(out)


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_latex_escape_round_trips_through_pdflatex(tmp_path):
    doc = "\n".join(
        [
            r"\documentclass{article}",
            r"\usepackage[utf8]{inputenc}",
            r"\begin{document}",
            r"\showboxdepth=100 \showboxbreadth=10000",
            r"\setbox0\hbox{" + latex_escape(SPECIALS) + "}",
            r"\showbox0",
            r"\setbox1\hbox{" + latex_escape("MNIST-5k · CNN 32→8, κ ≤ 2 × 3 …") + "}",
            r"\end{document}",
        ]
    )
    (tmp_path / "t.tex").write_text(doc, encoding="utf-8")
    subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "t.tex"],
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
    )
    log = (tmp_path / "t.log").read_text(errors="replace")
    # \showbox stops with "! OK." (so pdflatex exits 1); any other "!" line is an error
    errors = [line for line in log.splitlines() if line.startswith("!") and line != "! OK."]
    assert errors == [] and "! OK." in log, log[-2000:]
    assert "ligature" not in log
    assert _typeset_text(log) == SPECIALS
