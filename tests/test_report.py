"""kdtheory.report.document / kdtheory.report.provenance: a full report on a small synthetic
store.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import pluggy
import pytest
from helpers import SMALL

import kdtheory
import kdtheory.report.document as report_module
from kdtheory import hookimpl
from kdtheory.hypothesis.verdict import Verdict
from kdtheory.plugin import hookspecs
from kdtheory.report.document import (
    REPORT_FORMAT,
    ReportError,
    ReportHookWarning,
    ReportSection,
    build_report,
    collect_sections,
    read_report,
)
from kdtheory.report.provenance import dataset_hash, store_hash
from kdtheory.testing.synthetic import make_store

BUILTINS = [
    "dark-knowledge",
    "data-efficiency",
    "fidelity-decay",
    "label-smoothing",
    "neural-collapse",
]
FIGURES = [
    "accuracy",
    "kd-gain",
    "gaps",
    "rank-correlation",
    "fidelity",
    "collapse",
    "collapse-all",
    # kd, ls and kd-shuffled are three levels of the objective: data-efficiency adds its section
    "data-efficiency-by-objective",
]


def write_store(folder: Path, seed: int = 0, drop: tuple[str, ...] = ()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, ds in make_store(1, seed=seed, **SMALL).items():
        ds.drop_vars(list(drop)).to_netcdf(folder / f"{name}.nc")
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    store = write_store(root / "runs")
    seen: list[list[Verdict]] = []

    run_all = report_module.run_all

    def recording(*args, **kwargs):
        seen.append(run_all(*args, **kwargs))
        return seen[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report_module, "run_all", recording)
        out = build_report(store, root / "report", command="kdtheory report --runs runs")
    return store, out, seen[0]


def test_every_artefact_is_written(built):
    _, out, _ = built
    for name in ("index.html", "report.md", "verdicts.json"):
        assert (out / name).is_file()
    for stem in FIGURES:
        assert (out / "figures" / f"{stem}.pdf").read_bytes()[:4] == b"%PDF"
        assert (out / "figures" / f"{stem}.png").read_bytes()[:4] == b"\x89PNG"
    tables = out / "tables"
    for stem in ["verdicts", *BUILTINS, *(f"{h}-by-kappa" for h in BUILTINS)]:
        body = (tables / f"{stem}.tex").read_text()
        assert "\\toprule" in body and "\\bottomrule" in body and "\\begin{tabular" in body
        doc = (tables / f"{stem}-document.tex").read_text()
        assert "\\documentclass" in doc and "\\usepackage{booktabs}" in doc
        rows = list(csv.reader(io.StringIO((tables / f"{stem}.csv").read_text())))
        assert len(rows) >= 2
    for h in BUILTINS:
        assert (tables / f"{h}-by-kappa.md").read_text().startswith("| ")
    assert (tables / "records" / "data-efficiency-data_multiplier.csv").is_file()
    md = (out / "report.md").read_text()
    for h in BUILTINS:
        assert f"### {h}:" in md
    for word in ("Claim", "Prediction", "Model", "Estimate", "Holm p", "## Provenance"):
        assert word in md
    for stem in FIGURES:
        assert f"(figures/{stem}.png)" in md and f"(figures/{stem}.pdf)" in md


def test_html_is_self_contained(built):
    _, out, _ = built
    text = (out / "index.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert "http://" not in text.lower().replace("http://www.w3.org", "")
    assert "https://" not in text.lower()
    assert not re.search(r"<script|<link|<iframe|<object|<embed|@import|url\(", text, re.I)
    srcs = re.findall(r"""src\s*=\s*["']([^"']*)""", text)
    assert len(srcs) == len(FIGURES)
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    for href in re.findall(r"""href\s*=\s*["']([^"']*)""", text):
        assert href.startswith("#") or (out / href).is_file(), href
    for h in BUILTINS:
        assert f'id="h-{h}"' in text
    # recipes are headed by the readable title, the id following as the key
    assert (
        "Recipe of Synthetic · synthetic-teacher→synthetic-student (<code>synthetic-0</code>)"
        in (text)
    )


def test_verdicts_json_round_trips(built):
    store, out, built_from = built
    verdicts, prov = read_report(out)
    data = json.loads((out / "verdicts.json").read_text())
    assert data["format"] == REPORT_FORMAT
    assert [v.hypothesis for v in verdicts] == BUILTINS
    for v, d in zip(verdicts, data["verdicts"], strict=True):
        assert isinstance(v, Verdict) and v.to_dict() == d
    assert verdicts == built_from  # the same Verdict objects, NaN-aware
    assert all(v.p_adjusted is not None and v.family == BUILTINS for v in verdicts)
    # provenance: version, exact command, recipes, the store's content hash
    assert prov["kdtheory_version"] == kdtheory.__version__
    assert prov["command"] == "kdtheory report --runs runs"
    assert prov["store"]["hash"] == store_hash(store)
    assert prov["store"]["n_files"] == 1
    (exp,) = prov["experiments"].values()
    assert exp["recipe"]["generator"] == "kdtheory.testing.synthetic"
    assert exp["sources"] == ["synthetic-0.nc"]


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_latex_documents_compile(built, tmp_path):
    _, out, _ = built
    docs = sorted((out / "tables").glob("*-document.tex"))
    # + label smoothing's rejection family, + the objective factor's two tables
    assert len(docs) == 1 + 2 * len(BUILTINS) + 1 + 2
    for doc in docs:
        shutil.copy(doc, tmp_path / doc.name)
    procs = {
        doc.name: subprocess.Popen(
            ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for doc in docs
    }
    for name, proc in procs.items():
        log, _ = proc.communicate(timeout=180)
        pdf = tmp_path / name.replace(".tex", ".pdf")
        assert proc.returncode == 0 and pdf.is_file(), log.decode(errors="replace")[-2000:]


def test_a_missing_variable_is_reported_not_fatal(tmp_path):
    store = write_store(
        tmp_path / "runs", seed=1, drop=("features", "teacher_features", "classifier_weight")
    )
    out = tmp_path / "report"
    # an earlier report there is replaced, stale files and all
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "stale.png").write_bytes(b"old")
    (out / "verdicts.json").write_text(json.dumps({"format": REPORT_FORMAT}))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReportHookWarning)
        build_report(store, out, hypotheses="neural-collapse,data-efficiency")
    assert not (out / "figures" / "stale.png").exists()
    verdicts, _ = read_report(out / "verdicts.json")
    by_name = {v.hypothesis: v for v in verdicts}
    assert not by_name["neural-collapse"].available
    assert "features" in by_name["neural-collapse"].reason
    assert by_name["data-efficiency"].available
    assert by_name["data-efficiency"].family == ["data-efficiency"]
    assert (out / "figures" / "kd-gain.png").is_file()
    assert not (out / "figures" / "collapse.png").exists()
    md = (out / "report.md").read_text()
    section = md.split("### neural-collapse")[1].split("### ")[0]
    assert "Not tested on this store" in section and "features" in section
    html_text = (out / "index.html").read_text()
    assert "Not tested on this store" in html_text
    assert "not tested" in md.split("## Verdicts")[1].split("##")[0]


def test_report_refuses_to_overwrite_other_folders(tmp_path):
    store = write_store(tmp_path / "runs")
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(ReportError, match="not a kdtheory report"):
        build_report(store, foreign, hypotheses=["data-efficiency"])
    assert (foreign / "thesis.tex").read_text() == "precious"
    with pytest.raises(ReportError, match="inside the run store"):
        build_report(store, store / "report", hypotheses=["data-efficiency"])
    with pytest.raises(kdtheory.errors.UnknownNameError, match="Did you mean 'data-efficiency'"):
        build_report(store, tmp_path / "r", hypotheses=["data-eficiency"])
    with pytest.raises(kdtheory.errors.SpecError, match="alpha"):
        build_report(store, tmp_path / "r", alpha=0.7)


def test_provenance_hash_follows_the_store(tmp_path):
    store = write_store(tmp_path / "runs")
    first = store_hash(store)
    assert first.startswith("sha256:") and store_hash(store) == first
    assert store_hash(kdtheory.open_runs(store)) == first
    # a changed value changes the hash
    path = store / "synthetic-0.nc"
    ds = kdtheory.open_runs(store)["synthetic-0"]
    ds["test_logits"][0, 0, 0, 0, 0] = ds["test_logits"][0, 0, 0, 0, 0] + 1.0
    path.unlink()
    ds.to_netcdf(path)
    second = store_hash(store)
    assert second != first
    # a new recipe or cell file changes it; an unrelated file does not
    (store / "notes.txt").write_text("not part of the store")
    assert store_hash(store) == second
    (store / "extra.json").write_text("{}")
    assert store_hash(store) != second
    # in-memory stores hash their datasets
    mem = make_store(1, seed=2, **SMALL)
    h = store_hash(mem)
    mem["synthetic-0"]["test_labels"][0] = (int(mem["synthetic-0"]["test_labels"][0]) + 1) % 5
    assert store_hash(mem) != h
    assert dataset_hash(mem["synthetic-0"]) != dataset_hash(
        make_store(1, seed=2, **SMALL)["synthetic-0"]
    )


class GoodPlugin:
    @hookimpl
    def kdtheory_report_sections(self, verdict, store, out_dir):
        if verdict.hypothesis != "my-hypothesis":
            return None
        (out_dir / "tables").mkdir(exist_ok=True)
        (out_dir / "tables" / "mine.csv").write_text("a,b\n1,2\n")
        return [ReportSection(title="Mine", text="*hello*", tables=["tables/mine.csv"])]


class BrokenPlugin:
    @hookimpl
    def kdtheory_report_sections(self, verdict, store, out_dir):
        raise RuntimeError("boom")


def test_plugins_contribute_sections_and_a_broken_one_is_contained(tmp_path):
    pm = pluggy.PluginManager("kdtheory")
    pm.add_hookspecs(hookspecs)
    pm.register(GoodPlugin(), name="good")
    pm.register(BrokenPlugin(), name="broken")
    verdict = Verdict.unavailable("my-hypothesis", "claim", "prediction", 0.05, "why")
    with pytest.warns(ReportHookWarning, match="boom"):
        sections = collect_sections(verdict, {}, tmp_path, pm=pm)
    titles = [s.title for s in sections]
    assert "Mine" in titles
    assert any("broken" in t for t in titles)
    mine = sections[titles.index("Mine")]
    assert (tmp_path / mine.tables[0]).read_text().startswith("a,b")
    assert ReportSection.from_dict(mine.to_dict()) == mine


def test_overview_adds_temperature_effects_when_the_store_has_several(tmp_path):
    import numpy as np
    import xarray as xr

    from kdtheory.report.sections import overview_sections as _overview

    ds = make_store(1, seed=3, **SMALL)["synthetic-0"]
    t2 = ds.sel({"arm": ["kd-T4"]}).assign_coords(arm=["kd-T2"], temperature=("arm", [2.0]))
    t2["test_logits"] = t2["test_logits"] + np.float32(0.3)
    t2 = t2[[v for v in t2.data_vars if "arm" in t2[v].dims]]
    multi = xr.concat([ds, t2], "arm", data_vars="minimal", coords="minimal", compat="override")
    (tmp_path / "figures").mkdir()
    (section,) = _overview({"synthetic-0": multi}, tmp_path)
    assert sorted(section.figures) == [
        "figures/accuracy.pdf",
        "figures/accuracy.png",
        "figures/temperature.pdf",
        "figures/temperature.png",
    ]
    assert "temperature" in section.captions


def test_markdown_cells_escape_backslashes_so_a_pipe_stays_in_its_cell():
    from kdtheory.report.document import Column, records_to_markdown

    text = records_to_markdown(
        [{"experiment": "a", "name": "x\\|y", "v": 1.0}],
        [Column("name", "name", fmt="text"), Column("v", "v")],
    )
    body = text.splitlines()[2]
    unescaped = re.sub(r"\\.", "", body)  # drop escaped characters; what is left splits cells
    assert unescaped.count("|") == 3, body
    assert "x\\\\\\|y" in body


def test_one_interval_convention_stated_once_and_followed(built):
    _, out, _ = built
    md = (out / "report.md").read_text(encoding="utf-8")
    page = (out / "index.html").read_text(encoding="utf-8")
    for text in (md, page):
        assert text.count("Intervals: every confidence interval is two-sided at 90%") == 1
        assert text.index("Intervals:") < text.index("Verdicts")
    for table in (out / "tables").glob("*.md"):
        body = table.read_text(encoding="utf-8")
        assert "95%" not in body and "100%" not in body, table.name
        if "CI" in body.splitlines()[0]:
            assert "90% CI" in body.splitlines()[0], table.name
    # experiments are named by title in the tables, by id only in the experiments table's id
    (name,) = json.loads((out / "verdicts.json").read_text())["provenance"]["experiments"]
    rows = [line for line in md.splitlines() if line.startswith("|")]
    assert [r for r in rows if name in r] == [r for r in rows if f"| {name} |" in r]
    assert len([r for r in rows if name in r]) == 1
