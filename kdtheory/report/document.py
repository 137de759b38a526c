"""Paper-ready reports: ``kdtheory report --runs data/ --out report/``.

:func:`build_report` tests hypotheses on a run store as one Holm family and writes a folder::

    report/
      index.html          one self-contained page (figures inline as base64 PNG, no network)
      report.md           the same in Markdown (figures as relative images)
      verdicts.json       every verdict (kdtheory-verdict/1) plus provenance (kdtheory-report/1)
      figures/*.pdf|png   vector and raster figures in the paper style of kdtheory.report.figures
      tables/*.tex        booktabs table bodies, and *-document.tex: complete compilable examples
      tables/*.md         the same tables in Markdown, shown inline in the report
      tables/*.csv        the same numbers as CSV; tables/records/*.csv every table a verdict
                          carries (per fraction, per cell, ...)

With ``latex_only`` the folder is a paper bundle instead (:mod:`kdtheory.report.bundle`):
``results.tex``, ``results-standalone.tex``, ``figures/*.pdf``, ``tables/*.tex`` and
``verdicts.json``, and no HTML, Markdown or CSV.

Figures, Markdown tables and text that plugins contribute are shown inline; a section's Markdown
is rendered without raw HTML, links or images, so ``index.html`` makes no network request.

The figures and tables under each hypothesis come from the ``kdtheory_report_sections`` hook
(:mod:`kdtheory.report.sections`): every plugin, the built-in ``report_figures`` one included,
returns :class:`ReportSection` objects for the verdicts it knows. A hypothesis the store cannot
test (a missing method or variable) gets :meth:`Verdict.unavailable` and the report says why; a
plugin whose test or figures fail is reported the same way instead of sinking the whole report.

The folder is built next to ``out_dir`` and moved into place at the end, so a report is never
half-written and no stale figure of an earlier report survives. An existing ``out_dir`` is only
replaced when it is empty or an earlier kdtheory report.

This module builds the folder; the jobs it calls live next to it: :mod:`~kdtheory.report.sections`
(plugin sections, overview figures), :mod:`~kdtheory.report.tables` (table files),
:mod:`~kdtheory.report.markdown_page`, :mod:`~kdtheory.report.html_page` and
:mod:`~kdtheory.report.provenance`. The hypotheses are tested as one Holm family by
:func:`kdtheory.hypothesis.family.run_all`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kdtheory.errors import KDTheoryError, SpecError
from kdtheory.hypothesis.family import run_all
from kdtheory.hypothesis.verdict import Verdict
from kdtheory.report.html_page import html_page
from kdtheory.report.markdown_page import markdown_page
from kdtheory.report.sections import (
    FIGURES_DIR,
    TABLES_DIR,
    ReportHookWarning,
    ReportSection,
    check_section_files,
    collect_sections,
    overview_sections,
    save_figure,
    slug,
)
from kdtheory.report.tables import (
    Column,
    records_to_csv,
    records_to_latex,
    records_to_markdown,
    verdict_tables_section,
    write_table,
    write_verdict_tables,
)
from kdtheory.report.verdict_latex import hypothesis_document
from kdtheory.stats import check_alpha

__all__ = [
    "FIGURES_DIR",
    "REPORT_FORMAT",
    "TABLES_DIR",
    "Column",
    "ReportError",
    "ReportHookWarning",
    "ReportSection",
    "build_report",
    "collect_sections",
    "hypothesis_document",
    "read_report",
    "records_to_csv",
    "records_to_latex",
    "records_to_markdown",
    "resolve_hypotheses",
    "save_figure",
    "slug",
    "write_table",
]

#: ``format`` of ``verdicts.json``.
REPORT_FORMAT = "kdtheory-report/1"


class ReportError(KDTheoryError):
    """A report cannot be written where asked (the folder is not a report, ...)."""


def resolve_hypotheses(hypotheses: Sequence[str] | str | None) -> list[str]:
    from kdtheory.plugin.manager import get_registries

    registry = get_registries().hypotheses
    if hypotheses is None:
        return registry.names()
    if isinstance(hypotheses, str):
        hypotheses = [h for h in hypotheses.split(",")]
    names: list[str] = []
    for h in hypotheses:
        h = str(h).strip()
        if not h:
            continue
        if h == "all":
            for n in registry.names():
                if n not in names:
                    names.append(n)
            continue
        registry.get(h)  # unknown names raise with "did you mean"
        if h not in names:
            names.append(h)
    if not names:
        raise SpecError(
            "no hypothesis named; give e.g. --hypotheses data-efficiency,fidelity-decay"
        )
    return names


def _is_report_dir(path: Path) -> bool:
    target = path / "verdicts.json"
    if not target.is_file():
        return False
    try:
        with open(target, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return False
    return isinstance(data, Mapping) and data.get("format") == REPORT_FORMAT


def _check_out_dir(out_dir: Path, store: Any) -> None:
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ReportError(f"--out {out_dir} is a file; give a folder for the report")
        if any(out_dir.iterdir()) and not _is_report_dir(out_dir):
            raise ReportError(
                f"--out {out_dir} is not empty and is not a kdtheory report; refusing to replace "
                "it. Give a new or empty folder (an earlier report folder is replaced)."
            )
    root = getattr(store, "path", None)
    if root is not None:
        root = Path(root).resolve()
        base = root if root.is_dir() else root.parent
        out = out_dir.resolve()
        if out == base or base in out.parents:
            raise ReportError(
                f"--out {out_dir} lies inside the run store {root}; its files would change the "
                "store's content hash. Write the report elsewhere."
            )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _install(tmp: Path, out_dir: Path) -> None:
    """Move the finished report ``tmp`` to ``out_dir`` (replacing an earlier report)."""
    mask = _umask()
    for folder, _dirs, files in os.walk(tmp):
        os.chmod(folder, 0o777 & ~mask)
        for name in files:  # atomic writes make 0600 files; a report is meant to be shared
            os.chmod(os.path.join(folder, name), 0o666 & ~mask)
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(out_dir, old)
        try:
            os.replace(tmp, out_dir)
        except BaseException:
            os.replace(old, out_dir)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)


def build_report(
    store: Any,
    out_dir: str | os.PathLike[str],
    hypotheses: Sequence[str] | str | None = None,
    alpha: float = 0.05,
    command: str | None = None,
    latex_only: bool = False,
) -> Path:
    """Test hypotheses on ``store`` and write a paper-ready report folder.

    Parameters
    ----------
    store : RunStore, mapping of str to xarray.Dataset, or path
        The run store (a path is opened with :func:`kdtheory.open_runs`).
    out_dir : path
        The report folder; created, or replaced when it holds an earlier report.
    hypotheses : list of str or comma-separated str, optional
        Hypotheses to test (default: every registered one). They form one Holm family.
    alpha : float
        Significance level, in (0, 0.5).
    command : str, optional
        The exact command, recorded in the provenance (the CLI passes its own).
    latex_only : bool
        Write a paper bundle instead (:mod:`kdtheory.report.bundle`): ``results.tex`` with
        every figure and table in captioned, labelled floats, ``results-standalone.tex``, the
        PDF figures, the booktabs table bodies and ``verdicts.json``; no HTML, Markdown or CSV.

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    Raises
    ------
    UnknownNameError, SpecError, StoreError, ReportError
        For an unknown hypothesis (with "did you mean"), a bad alpha, a store that cannot be
        read, or an ``out_dir`` that may not be replaced.
    """
    from kdtheory.plugin.manager import get_registries
    from kdtheory.report.provenance import provenance
    from kdtheory.store.atomic import write_text_atomic
    from kdtheory.store.convergence import ConvergenceWarning, check_store, problem_note
    from kdtheory.store.runs import as_store

    a = check_alpha(alpha)
    store = as_store(store)
    names = resolve_hypotheses(hypotheses)
    out_dir = Path(os.path.abspath(out_dir))
    _check_out_dir(out_dir, store)

    registry = get_registries().hypotheses
    sources = {n: registry.source(n) for n in names}
    convergence = check_store(store)
    verdicts = run_all(
        store, a, only=names, store_warnings=convergence.warnings(), failures=ReportHookWarning
    )
    prov = provenance(store, command, hypotheses=names, alpha=a, sources=sources)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        (tmp / FIGURES_DIR).mkdir()
        (tmp / TABLES_DIR).mkdir()
        overview = overview_sections(store, tmp)
        sections = {v.hypothesis: collect_sections(v, store, tmp) for v in verdicts}
        tables = write_verdict_tables(verdicts, tmp)
        for v in verdicts:
            sections[v.hypothesis].append(verdict_tables_section(v, tables[v.hypothesis]))
        for v in verdicts:
            for sec in sections[v.hypothesis]:
                check_section_files(sec, tmp)
        if latex_only:
            from kdtheory.report.bundle import write_bundle

            write_bundle(
                tmp, verdicts, sections, overview, tables["__family__"], command, ["verdicts.json"]
            )
            for sec in [*overview, *(s for secs in sections.values() for s in secs)]:
                sec.figures = [p for p in sec.figures if (tmp / p).is_file()]
                sec.tables = [p for p in sec.tables if (tmp / p).is_file()]
        data = {
            "format": REPORT_FORMAT,
            "provenance": prov,
            "convergence": convergence.to_dict(),
            "verdicts": [v.to_dict() for v in verdicts],
            "sections": {
                "overview": [s.to_dict() for s in overview],
                **{k: [s.to_dict() for s in secs] for k, secs in sections.items()},
            },
        }
        write_text_atomic(tmp / "verdicts.json", json.dumps(data, indent=2, allow_nan=False) + "\n")
        if not latex_only:
            write_text_atomic(
                tmp / "report.md",
                markdown_page(verdicts, sections, overview, prov, tables["__family__"], tmp),
            )
            write_text_atomic(
                tmp / "index.html",
                html_page(verdicts, sections, overview, prov, tables["__family__"], tmp),
            )
        _install(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    problems = convergence.warnings()
    if problems:
        warnings.warn(problem_note(len(problems)), ConvergenceWarning, stacklevel=2)
    return out_dir


def read_report(path: str | os.PathLike[str]) -> tuple[list[Verdict], dict[str, Any]]:
    """Read a report's ``verdicts.json`` (the report folder or the file): the verdicts, equal to
    the ones the report was built from, and the provenance."""
    path = Path(path)
    if path.is_dir():
        path = path / "verdicts.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, Mapping) or data.get("format") != REPORT_FORMAT:
        raise ValueError(f"{path}: not a kdtheory report (format {REPORT_FORMAT!r})")
    return [Verdict.from_dict(v) for v in data.get("verdicts", [])], dict(
        data.get("provenance", {})
    )
