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

Figures, Markdown tables and text that plugins contribute are shown inline; a section's Markdown
is rendered without raw HTML, links or images, so ``index.html`` makes no network request.

The figures and tables under each hypothesis come from the ``kdtheory_report_sections`` hook
(:mod:`kdtheory.plugin.hookspecs`): every plugin, the built-in ``report_figures`` one included,
returns
:class:`ReportSection` objects for the verdicts it knows. A hypothesis the store cannot test (a
missing method or variable) gets :meth:`Verdict.unavailable` and the report says why; a plugin
whose test or figures fail is reported the same way instead of sinking the whole report.

The folder is built next to ``out_dir`` and moved into place at the end, so a report is never
half-written and no stale figure of an earlier report survives. An existing ``out_dir`` is only
replaced when it is empty or an earlier kdtheory report.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import os
import re
import shutil
import tempfile
import textwrap
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import xarray as xr

from kdtheory.errors import KDTheoryError, MissingRequirementError, SpecError, StoreError
from kdtheory.hypothesis.verdict import (
    Verdict,
    fmt_ci,
    fmt_num,
    fmt_p,
    info_lines,
    latex_escape,
    md_inert,
    render,
)
from kdtheory.stats import check_alpha

__all__ = [
    "REPORT_FORMAT",
    "Column",
    "ReportError",
    "ReportSection",
    "build_report",
    "collect_sections",
    "hypothesis_document",
    "latex_document",
    "read_report",
    "records_to_csv",
    "records_to_latex",
    "run_family",
    "save_figure",
    "write_table",
]

#: ``format`` of ``verdicts.json``.
REPORT_FORMAT = "kdtheory-report/1"

FIGURES_DIR = "figures"
TABLES_DIR = "tables"


class ReportError(KDTheoryError):
    """A report cannot be written where asked (the folder is not a report, ...)."""


class ReportHookWarning(UserWarning):
    """A hypothesis test or a ``kdtheory_report_sections`` plugin failed; the report says so."""


@dataclass
class ReportSection:
    """Figures, tables and text a plugin adds under one verdict's heading in a report.

    Attributes
    ----------
    title : str
        Heading of the section.
    text : str
        Markdown shown above the figures (rendered to HTML in ``index.html``; raw HTML, images
        and links are shown as text there, so the page stays self-contained).
    figures : list of str
        Paths relative to the report folder, e.g. ``"figures/accuracy.png"``. Files that
        differ only in their suffix are one figure: a PNG (or SVG) is shown inline, every
        format is linked.
    tables : list of str
        Paths relative to the report folder (``.tex``, ``.csv``, ``.md``, ...); all are linked,
        ``.md`` tables are shown inline, small CSV tables too in ``index.html``.
    captions : dict of str to str
        Optional caption per figure (keyed by any of its paths or by its stem).
    """

    title: str
    text: str = ""
    figures: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    captions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReportSection:
        return cls(
            title=str(data.get("title", "")),
            text=str(data.get("text", "")),
            figures=[str(f) for f in data.get("figures") or []],
            tables=[str(t) for t in data.get("tables") or []],
            captions={str(k): str(v) for k, v in (data.get("captions") or {}).items()},
        )

    def caption(self, stem: str) -> str:
        for key, text in self.captions.items():
            if stem in (key, _stem(key)) or Path(stem).name in (key, Path(_stem(key)).name):
                return text
        return ""


# ============================================================================================
# writing artefacts (used by plugins too)
# ============================================================================================


def slug(text: str) -> str:
    """A file-name-safe version of ``text``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "item"


def _stem(path: str) -> str:
    p = Path(path)
    return (p.parent / p.stem).as_posix()


def save_figure(fig: Any, out_dir: str | os.PathLike[str], name: str) -> list[str]:
    """Save ``fig`` as ``figures/<name>.pdf`` and ``.png`` under ``out_dir``; return the paths
    relative to ``out_dir``."""
    from kdtheory.report.figures import save

    written = save(fig, Path(out_dir) / FIGURES_DIR / slug(name))
    return [p.relative_to(out_dir).as_posix() for p in written]


@dataclass(frozen=True)
class Column:
    """A column of a LaTeX table made from records.

    Attributes
    ----------
    header : str
        Header text (LaTeX-escaped) unless ``header_tex`` is given.
    key : str or (str, str)
        Record key; a pair of keys is a confidence interval ``[low, high]``.
    fmt : str
        ``"text"``, ``"int"``, ``"p"`` or a Python format spec for numbers such as ``".1f"``.
    header_tex : str, optional
        Raw LaTeX header.
    align : str, optional
        LaTeX column alignment (default ``l`` for text, ``r`` for numbers).
    """

    header: str
    key: str | tuple[str, str]
    fmt: str = ".3g"
    header_tex: str | None = None
    align: str | None = None


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


@dataclass(frozen=True)
class _CellTokens:
    """How :func:`_format_value` writes text, a missing number, a tiny p and a minus sign."""

    text: Callable[[Any], str]
    nan: str
    small_p: str
    minus: str


_TEX_TOKENS = _CellTokens(text=latex_escape, nan="--", small_p="$<$0.001", minus="$-$")
_PLAIN_TOKENS = _CellTokens(text=str, nan="–", small_p="<0.001", minus="\u2212")


def _format_value(value: Any, fmt: str, tokens: _CellTokens) -> str:
    """One table cell: ``value`` by the column format ``fmt``, written with ``tokens``."""
    if fmt == "text":
        return tokens.text("" if value is None else value)
    if fmt == "bool":
        return "yes" if value else "no"
    v = _num(value)
    if math.isnan(v):
        return tokens.nan
    if fmt == "int":
        s = f"{int(round(v))}"
    elif fmt == "p":
        s = tokens.small_p if v < 0.001 else f"{v:.3f}"
    else:
        s = format(v, fmt)
    return tokens.minus + s[1:] if s.startswith("-") else s


def _tex_value(value: Any, fmt: str) -> str:
    return _format_value(value, fmt, _TEX_TOKENS)


def records_to_latex(
    records: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    group: str | None = "experiment",
) -> str:
    """A booktabs ``tabular`` of ``records``; with several values of ``group`` the rows are
    grouped under ``\\multicolumn`` headings (needs ``\\usepackage{booktabs}``)."""
    spec = "".join(c.align or ("l" if c.fmt == "text" else "r") for c in columns)
    head = " & ".join(c.header_tex or latex_escape(c.header) for c in columns)
    lines = [f"\\begin{{tabular}}{{{spec}}}", "\\toprule", head + " \\\\", "\\midrule"]
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for rec in records:
        groups.setdefault(str(rec.get(group, "")) if group else "", []).append(rec)
    show_groups = group is not None and len(groups) > 1
    for i, (name, recs) in enumerate(groups.items()):
        if show_groups:
            if i > 0:
                lines.append("\\midrule")
            lines.append(
                f"\\multicolumn{{{len(columns)}}}{{l}}{{\\emph{{{latex_escape(name)}}}}} \\\\"
            )
        for rec in recs:
            cells = []
            for c in columns:
                if isinstance(c.key, tuple):
                    lo, hi = (_tex_value(rec.get(k), c.fmt) for k in c.key)
                    cells.append("--" if lo == hi == "--" else f"[{lo}, {hi}]")
                else:
                    cells.append(_tex_value(rec.get(c.key), c.fmt))
            lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines)


#: T1 text fonts only with Latin Modern: without it, T1 falls back to bitmap EC fonts made by
#: mktexpk (slow, blurry) on a TeX Live without cm-super, while OT1 has vector CM fonts.
_FONT_SETUP = "\\IfFileExists{lmodern.sty}{\\usepackage[T1]{fontenc}\\usepackage{lmodern}}{}"

_PREAMBLE = [
    "\\documentclass{article}",
    "\\usepackage[utf8]{inputenc}",
    _FONT_SETUP,
    "\\usepackage{booktabs}",
    "\\usepackage{graphicx}",
    "\\usepackage[margin=2cm]{geometry}",
]


def latex_document(tabular: str, caption: str = "", title: str = "") -> str:
    """A complete, compilable ``article`` holding ``tabular`` in a table float (scaled down to
    the text width when wider)."""
    body = []
    if title:
        body.append(f"\\section*{{{latex_escape(title)}}}")
    body += [
        "\\begin{table}[ht]",
        "\\centering",
        "\\small",
        "\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{%",
        tabular,
        "}",
    ]
    if caption:
        body.append(f"\\caption{{{latex_escape(caption)}}}")
    body.append("\\end{table}")
    doc = "\n".join([*_PREAMBLE, "\\begin{document}", "", *body, "", "\\end{document}", ""])
    return _unicode_safe(doc)


#: Math for non-ASCII characters pdflatex's utf8 input does not know (declared per document).
_UNICODE_TEX: dict[str, str] = {
    "\u221d": "\\ensuremath{\\propto}",
    "\u2192": "\\ensuremath{\\rightarrow}",
    "\u2190": "\\ensuremath{\\leftarrow}",
    "\u2194": "\\ensuremath{\\leftrightarrow}",
    "\u21d2": "\\ensuremath{\\Rightarrow}",
    "\u2248": "\\ensuremath{\\approx}",
    "\u2260": "\\ensuremath{\\neq}",
    "\u2264": "\\ensuremath{\\leq}",
    "\u2265": "\\ensuremath{\\geq}",
    "\u2212": "\\ensuremath{-}",
    "\u00d7": "\\ensuremath{\\times}",
    "\u00b1": "\\ensuremath{\\pm}",
    "\u00b7": "\\ensuremath{\\cdot}",
    "\u221e": "\\ensuremath{\\infty}",
    "\u221a": "\\ensuremath{\\surd}",
    "\u2208": "\\ensuremath{\\in}",
    "\u2016": "\\ensuremath{\\|}",
    "\u2026": "\\ldots{}",
    "\u2013": "--",
    "\u2014": "---",
    "\u2018": "`",
    "\u2019": "'",
    "\u201c": "``",
    "\u201d": "''",
    "\u00b2": "\\ensuremath{^2}",
    "\u207a": "\\ensuremath{^+}",
    "\u207b": "\\ensuremath{^-}",
    "\u2082": "\\ensuremath{_2}",
    **{
        ch: f"\\ensuremath{{\\{name}}}"
        for ch, name in zip(
            "αβγδεζηθικλμνξπρστυφχψωΓΔΘΛΞΠΣΦΨΩ",
            "alpha beta gamma delta varepsilon zeta eta theta iota kappa lambda mu nu xi pi rho "
            "sigma tau upsilon phi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma Phi Psi "
            "Omega".split(),
            strict=True,
        )
    },
}


def _unicode_safe(document: str) -> str:
    """Declare every character beyond Latin-1 that ``document`` uses, so pdflatex typesets it
    (known symbols as math, anything else as ``[U+XXXX]``) instead of stopping."""
    chars = sorted({c for c in document if ord(c) > 0xFF})
    if not chars:
        return document
    lines = []
    for c in chars:
        tex = _UNICODE_TEX.get(c, f"[U+{ord(c):04X}]")
        lines.append(f"\\DeclareUnicodeCharacter{{{ord(c):04X}}}{{{tex}}}")
    marker = "\\begin{document}"
    return document.replace(marker, "\n".join(lines) + "\n" + marker, 1)


_ASCII = {
    "\u2212": "-",
    "\u2013": "-",
    "\u2014": "--",
    "\u00d7": "x",
    "\u00b1": "+/-",
    "\u2264": "<=",
    "\u2265": ">=",
    "\u2248": "~",
    "\u2026": "...",
    "\u03ba": "kappa",
    "\u03b1": "alpha",
    "\u221d": "~",
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
}


def _ascii(text: str) -> str:
    """Plain ASCII for verbatim blocks (verbatim cannot typeset other characters)."""
    import unicodedata

    out = []
    for ch in text:
        if ord(ch) < 128:
            out.append(ch)
            continue
        rep = _ASCII.get(ch)
        if rep is None:
            rep = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode() or "?"
        out.append(rep)
    return "".join(out)


def _p_text(p: Any) -> str:
    s = fmt_p(p)
    return f"< {s[1:]}" if s.startswith("<") else f"= {s}"


def hypothesis_document(v: Verdict, summaries: bool = True, wrap: int = 118) -> str:
    """A complete, compilable LaTeX ``article`` for one verdict: claim, prediction, effect,
    estimate, test, model and reason; its booktabs table (scaled to the text width when wider);
    and, with ``summaries``, the fitted models' text wrapped to the page."""
    test = [f"statistic = {fmt_num(v.statistic)}", f"p {_p_text(v.p_value)}"]
    if v.p_adjusted is not None:
        fam = f" (Holm family of {len(v.family)})" if v.family else ""
        test.append(f"Holm-adjusted p {_p_text(v.p_adjusted)}{fam}")
    test += [f"alpha = {v.alpha:g}", f"alternative: {v.alternative}"]
    items = info_lines(v, test=", ".join(test))
    body = [
        f"\\section*{{Hypothesis \\texttt{{{latex_escape(v.hypothesis)}}}: "
        f"{latex_escape(v.decision)}}}",
        "\\begin{description}",
        *(f"  \\item[{k}] {latex_escape(' '.join(str(val).split()))}" for k, val in items if val),
        "\\end{description}",
        "\\begin{table}[ht]",
        "\\centering",
        "\\small",
        "\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{%",
        v.as_latex(),
        "}",
        f"\\caption{{{latex_escape(v.hypothesis)}: per-experiment effects and the pooled "
        f"random-effects estimate ({latex_escape(v.ci_note)}).}}",
        "\\end{table}",
    ]
    if summaries:
        for name, summary in (v.summaries or {}).items():
            lines = []
            for line in _ascii(str(summary).rstrip()).splitlines():
                lines += textwrap.wrap(line, wrap, subsequent_indent="    ") or [""]
            text = "\n".join(lines).replace("\\end{verbatim}", "\\end{verbatim }")
            body += [
                f"\\paragraph{{Model summary: {latex_escape(name)}}}",
                "{\\tiny",
                "\\begin{verbatim}",
                text,
                "\\end{verbatim}",
                "}",
            ]
    doc = "\n".join([*_PREAMBLE, "\\begin{document}", "", *body, "", "\\end{document}", ""])
    return _unicode_safe(doc)


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
        writer.writerow([_csv_cell(rec.get(k)) for k in keys])
    return buf.getvalue()


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str)
    return str(value)


def _plain_value(value: Any, fmt: str) -> str:
    return _format_value(value, fmt, _PLAIN_TOKENS)


def records_to_markdown(
    records: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    group: str | None = "experiment",
    caption: str = "",
) -> str:
    """The table of :func:`records_to_latex` as a Markdown (GFM) table, with a leading column
    for ``group`` when the records hold several groups, and the caption in italics."""
    groups = [] if group is None else list(dict.fromkeys(str(r.get(group, "")) for r in records))
    show = len(groups) > 1
    headers = ([group] if show and group else []) + [c.header for c in columns]
    lines = ["| " + " | ".join(_md_cell(h) for h in headers) + " |"]
    aligns = (["---"] if show else []) + [
        "---:" if (c.align or ("l" if c.fmt == "text" else "r")) == "r" else "---" for c in columns
    ]
    lines.append("|" + "|".join(aligns) + "|")
    previous = None
    for rec in records:
        cells = []
        if show and group:
            name = str(rec.get(group, ""))
            cells.append(name if name != previous else "")
            previous = name
        for c in columns:
            if isinstance(c.key, tuple):
                lo, hi = (_plain_value(rec.get(k), c.fmt) for k in c.key)
                cells.append("–" if lo == hi == "–" else f"[{lo}, {hi}]")
            else:
                cells.append(_plain_value(rec.get(c.key), c.fmt))
        lines.append("| " + " | ".join(_md_cell(x) for x in cells) + " |")
    if caption:
        lines += ["", f"_{_md_cell(caption)}_"]
    return "\n".join(lines) + "\n"


def write_table(
    out_dir: str | os.PathLike[str],
    name: str,
    records: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    caption: str = "",
    group: str | None = "experiment",
) -> list[str]:
    """Write ``tables/<name>.tex`` (booktabs body), ``tables/<name>-document.tex`` (compilable
    example), ``tables/<name>.md`` (shown inline in the report) and ``tables/<name>.csv`` (every
    key of the records); return the paths relative to ``out_dir``."""
    from kdtheory.store.atomic import write_text_atomic

    out_dir = Path(out_dir)
    stem = slug(name)
    tabular = records_to_latex(records, columns, group=group)
    files = {
        f"{TABLES_DIR}/{stem}.tex": tabular + "\n",
        f"{TABLES_DIR}/{stem}-document.tex": latex_document(tabular, caption),
        f"{TABLES_DIR}/{stem}.md": records_to_markdown(records, columns, group, caption),
        f"{TABLES_DIR}/{stem}.csv": records_to_csv(records),
    }
    for rel, text in files.items():
        write_text_atomic(out_dir / rel, text)
    return list(files)


# ============================================================================================
# testing the hypotheses
# ============================================================================================


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


def run_family(
    store: Mapping[str, xr.Dataset],
    names: Sequence[str],
    alpha: float = 0.05,
    store_warnings: Sequence[str] | None = None,
) -> list[Verdict]:
    """Test ``names`` on ``store`` as one Holm family, like
    :func:`kdtheory.hypothesis.base.run_all`.

    A hypothesis whose requirements the store lacks gets :meth:`Verdict.unavailable` with the
    reason; so does one whose test raises (with a :class:`ReportHookWarning`), so that one
    failing plugin does not stop the report.
    """
    from kdtheory.hypothesis.base import adjust_family, with_store_warnings
    from kdtheory.plugin.manager import get_registries

    registry = get_registries().hypotheses
    hyps = [registry.get(n) for n in names]
    verdicts = []
    for hyp in hyps:
        try:
            hyp.check_requirements(store)
            verdict = hyp.test(store, alpha=alpha)
            if not isinstance(verdict, Verdict):
                raise TypeError(f"test() returned {type(verdict).__name__}, not a Verdict")
        except MissingRequirementError as exc:
            verdict = Verdict.unavailable(hyp.name, hyp.claim, hyp.prediction, alpha, str(exc))
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not sink the report
            warnings.warn(
                f"hypothesis {hyp.name!r} failed on this store and is reported as not tested: "
                f"{type(exc).__name__}: {exc}",
                ReportHookWarning,
                stacklevel=2,
            )
            verdict = Verdict.unavailable(
                hyp.name,
                hyp.claim,
                hyp.prediction,
                alpha,
                f"the test of {hyp.name!r} failed on this store: {type(exc).__name__}: {exc}",
            )
        verdicts.append(verdict)
    return adjust_family(with_store_warnings(verdicts, store, store_warnings), hyps)


def collect_sections(
    verdict: Verdict, store: Mapping[str, xr.Dataset], out_dir: Path, pm: Any = None
) -> list[ReportSection]:
    """Call every ``kdtheory_report_sections`` implementation for ``verdict``.

    Each plugin is called on its own: one that raises gives a section saying so (and a
    :class:`ReportHookWarning`) while the others still contribute.
    """
    if pm is None:
        from kdtheory.plugin.manager import get_registries

        pm = get_registries().pm
    kwargs = {"verdict": verdict, "store": store, "out_dir": Path(out_dir)}
    sections: list[ReportSection] = []
    impls = pm.hook.kdtheory_report_sections.get_hookimpls()
    for impl in reversed(impls):  # pluggy's call order
        if getattr(impl, "hookwrapper", False) or getattr(impl, "wrapper", False):
            continue
        try:
            result = impl.function(**{k: kwargs[k] for k in impl.argnames if k in kwargs})
        except Exception as exc:  # noqa: BLE001 - one plugin must not sink the report
            warnings.warn(
                f"report plugin {impl.plugin_name!r} failed for {verdict.hypothesis!r}: "
                f"{type(exc).__name__}: {exc}",
                ReportHookWarning,
                stacklevel=2,
            )
            sections.append(
                ReportSection(
                    title=f"Figures of {impl.plugin_name} unavailable",
                    text=f"The report plugin `{impl.plugin_name}` failed: "
                    f"`{type(exc).__name__}: {exc}`",
                )
            )
            continue
        for item in result or []:
            if isinstance(item, ReportSection):
                sections.append(item)
            elif isinstance(item, Mapping) and "title" in item:
                sections.append(ReportSection.from_dict(item))
            else:
                warnings.warn(
                    f"report plugin {impl.plugin_name!r} returned {type(item).__name__}, not a "
                    "kdtheory.report.document.ReportSection; ignored",
                    ReportHookWarning,
                    stacklevel=2,
                )
    return sections


def _overview(store: Mapping[str, xr.Dataset], out_dir: Path) -> list[ReportSection]:
    """Figures about the store as a whole: accuracy curves, and temperatures when several."""
    from kdtheory.report import figures as plot

    figures: list[str] = []
    captions: dict[str, str] = {}
    notes: list[str] = []
    for name, fn, caption in (
        (
            "accuracy",
            plot.accuracy_curves,
            "Test accuracy vs the number of student training samples κ (log axis), one colour "
            "per method; lines are means over seeds, bands 95% t-intervals over seeds; the "
            "dashed grey line is the teacher.",
        ),
        (
            "temperature",
            plot.temperature_effects,
            "KD at several temperatures. Left: test accuracy vs κ. Right: KD − label accuracy "
            "(points) vs the temperature T, one line per κ; bars are 95% t-intervals over seeds.",
        ),
    ):
        try:
            fig = fn(store)
        except MissingRequirementError as exc:
            if name != "temperature":
                notes.append(f"No {name} figure: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001
            warnings.warn(
                f"figure {name!r} failed: {type(exc).__name__}: {exc}",
                ReportHookWarning,
                stacklevel=2,
            )
            notes.append(f"The {name} figure failed: `{type(exc).__name__}: {exc}`")
            continue
        paths = save_figure(fig, out_dir, name)
        figures += paths
        captions[name] = caption
    return [
        ReportSection(
            title="Test accuracy", text="\n\n".join(notes), figures=figures, captions=captions
        )
    ]


# ============================================================================================
# the report
# ============================================================================================


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
    import kdtheory
    from kdtheory.plugin.manager import get_registries
    from kdtheory.report.provenance import provenance
    from kdtheory.store.atomic import write_text_atomic
    from kdtheory.store.convergence import ConvergenceWarning, check_store, problem_note

    a = check_alpha(alpha)
    if isinstance(store, (str, os.PathLike)):
        store = kdtheory.open_runs(store)
    if not isinstance(store, Mapping) or len(store) == 0:
        raise StoreError("the run store holds no experiments")
    names = resolve_hypotheses(hypotheses)
    out_dir = Path(os.path.abspath(out_dir))
    _check_out_dir(out_dir, store)

    registry = get_registries().hypotheses
    sources = {n: registry.source(n) for n in names}
    convergence = check_store(store)
    verdicts = run_family(store, names, a, convergence.warnings())
    prov = provenance(store, command, hypotheses=names, alpha=a, sources=sources)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        (tmp / FIGURES_DIR).mkdir()
        (tmp / TABLES_DIR).mkdir()
        overview = _overview(store, tmp)
        sections = {v.hypothesis: collect_sections(v, store, tmp) for v in verdicts}
        tables = _write_verdict_tables(verdicts, tmp)
        for v in verdicts:
            sections[v.hypothesis].append(_verdict_tables_section(v, tables[v.hypothesis]))
        for v in verdicts:
            for sec in sections[v.hypothesis]:
                _check_section_files(sec, tmp)
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
        write_text_atomic(
            tmp / "report.md",
            _markdown(verdicts, sections, overview, prov, tables["__family__"], tmp),
        )
        write_text_atomic(
            tmp / "index.html", _html(verdicts, sections, overview, prov, tables["__family__"], tmp)
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


def _write_verdict_tables(verdicts: Sequence[Verdict], out: Path) -> dict[str, list[str]]:
    """tables/verdicts.* for the family; tables/<hypothesis>.* and one CSV per verdict table."""
    from kdtheory.store.atomic import write_text_atomic

    written: dict[str, list[str]] = {}
    files = {
        f"{TABLES_DIR}/verdicts.tex": render(list(verdicts), "latex") + "\n",
        f"{TABLES_DIR}/verdicts-document.tex": latex_document(
            render(list(verdicts), "latex"),
            caption="Verdicts of every hypothesis per experiment and pooled across experiments "
            "(random-effects meta-analysis); Holm-adjusted p-values across the family.",
            title="kdtheory verdicts",
        ),
        f"{TABLES_DIR}/verdicts.csv": render(list(verdicts), "csv"),
    }
    for rel, text in files.items():
        write_text_atomic(out / rel, text)
    written["__family__"] = list(files)
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
        written[v.hypothesis] = list(files)
    return written


def _verdict_tables_section(v: Verdict, paths: list[str]) -> ReportSection:
    return ReportSection(
        title="Verdict tables",
        text="The verdict as a booktabs table (`.tex`, and `-document.tex` that compiles on its "
        "own) and as CSV, with every further table the test produced.",
        tables=paths,
    )


def _check_section_files(section: ReportSection, root: Path) -> None:
    missing = [p for p in [*section.figures, *section.tables] if not (root / p).is_file()]
    if missing:
        section.figures = [p for p in section.figures if p not in missing]
        section.tables = [p for p in section.tables if p not in missing]
        note = f"(Files listed by the plugin but not written: {', '.join(missing)}.)"
        section.text = f"{section.text}\n\n{note}".strip()


# ============================================================================================
# the verdict summary table
# ============================================================================================

_SUMMARY_HEADERS = ["hypothesis", "experiment", "estimate", "CI", "p", "Holm p", "decision"]


def _summary_rows(verdicts: Sequence[Verdict]) -> list[dict[str, Any]]:
    rows = []
    for v in verdicts:
        if not v.available:
            rows.append(
                {
                    "hypothesis": v.hypothesis,
                    "experiment": "—",
                    "estimate": "",
                    "CI": "",
                    "p": "",
                    "Holm p": "",
                    "decision": "not tested",
                    "key": True,
                    "verdict_decision": v.decision,
                }
            )
            continue
        level = v.ci_level
        lvl = f" ({round(100 * level):g}%)" if not math.isnan(level) else ""
        items = list(v.experiments) + ([v.pooled] if v.pooled is not None else [])
        if not items:
            items = []
            rows.append(
                {
                    "hypothesis": v.hypothesis,
                    "experiment": "all",
                    "estimate": fmt_num(v.estimate),
                    "CI": fmt_ci(*v.ci) + lvl,
                    "p": fmt_p(v.p_value),
                    "Holm p": fmt_p(v.p_adjusted) if v.p_adjusted is not None else "",
                    "decision": v.decision,
                    "key": True,
                    "verdict_decision": v.decision,
                }
            )
        for r in items:
            key = (r is v.pooled) or (v.pooled is None and len(v.experiments) == 1)
            rows.append(
                {
                    "hypothesis": v.hypothesis,
                    "experiment": r.label,
                    "estimate": fmt_num(r.estimate),
                    "CI": fmt_ci(r.ci_low, r.ci_high) + lvl,
                    "p": fmt_p(r.p_value),
                    "Holm p": fmt_p(v.p_adjusted) if key and v.p_adjusted is not None else "",
                    "decision": v.decision if key else r.decision,
                    "key": key,
                    "verdict_decision": v.decision,
                }
            )
    return rows


# ============================================================================================
# Markdown
# ============================================================================================


def _md_cell(text: Any) -> str:
    """One table cell or inline text: one line, ``|`` escaped, HTML and links inert."""
    return md_inert(" ".join(str(text).split()).replace("|", "\\|"))


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in ``text`` (which cannot close it)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _md_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _figure_groups(paths: Sequence[str]) -> list[tuple[str, list[str]]]:
    groups: dict[str, list[str]] = {}
    for p in paths:
        groups.setdefault(_stem(p), []).append(p)
    return list(groups.items())


def _inline_path(paths: Sequence[str]) -> str | None:
    for suffix in (".png", ".svg", ".jpg", ".jpeg", ".gif", ".webp"):
        for p in paths:
            if p.lower().endswith(suffix):
                return p
    return None


def _provenance_rows(prov: Mapping[str, Any]) -> list[tuple[str, str]]:
    store = prov.get("store", {}) or {}
    return [
        ("kdtheory", str(prov.get("kdtheory_version", ""))),
        ("command", str(prov.get("command", ""))),
        ("created", str(prov.get("created", ""))),
        ("run store", str(store.get("path") or "(in memory)")),
        (
            "store hash",
            f"{store.get('hash', '')} ({store.get('n_files', 0)} files, "
            f"{store.get('bytes', 0)} bytes)",
        ),
        ("alpha", str(prov.get("alpha", ""))),
        ("hypotheses", ", ".join(prov.get("hypotheses", []) or [])),
        ("python", f"{prov.get('python', '')} on {prov.get('platform', '')}"),
        ("packages", ", ".join(f"{k} {v}" for k, v in (prov.get("packages") or {}).items())),
    ]


def _experiment_rows(prov: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for name, info in (prov.get("experiments") or {}).items():
        kappa = info.get("n_train") or []
        rows.append(
            [
                name,
                str(info.get("dataset", "")),
                f"{info.get('teacher', '')} → {info.get('student', '')}",
                ", ".join(info.get("methods", [])),
                f"{min(kappa)}–{max(kappa)} ({len(kappa)} fractions)" if kappa else "",
                str(len(info.get("seeds", []))),
            ]
        )
    return rows


_EXPERIMENT_HEADERS = ["experiment", "dataset", "teacher → student", "methods", "κ", "seeds"]


def _convergence_lines(verdicts: Sequence[Verdict]) -> list[str]:
    """The store's convergence warnings (each once), or one line saying there are none."""
    from kdtheory.store.convergence import CRITERIA

    lines = list(dict.fromkeys(w for v in verdicts for w in v.warnings))
    return lines or [
        f"none: no cell is under-trained and no teacher is weak (criteria: {CRITERIA})"
    ]


def _markdown(
    verdicts: Sequence[Verdict],
    sections: Mapping[str, list[ReportSection]],
    overview: Sequence[ReportSection],
    prov: Mapping[str, Any],
    family_tables: Sequence[str],
    root: Path,
) -> str:
    out = ["# kdtheory report", ""]
    out.append(
        "Knowledge-distillation hypotheses tested on a run store; p-values are Holm-adjusted "
        "across the family of hypotheses tested together. Every number is in `verdicts.json`."
    )
    out += ["", "## Verdicts", ""]
    rows = _summary_rows(verdicts)
    out.append(
        _md_table(
            _SUMMARY_HEADERS,
            [
                [
                    r["hypothesis"],
                    r["experiment"],
                    r["estimate"],
                    r["CI"],
                    r["p"],
                    r["Holm p"],
                    f"**{r['decision']}**" if r["key"] else r["decision"],
                ]
                for r in rows
            ],
        )
    )
    out += [
        "",
        "_Bold: the verdict (the pooled random-effects row with several experiments). CIs are "
        "two-sided at the level shown (90% for a one-sided test at alpha = 0.05)._",
        "",
        "Tables: " + ", ".join(f"[{Path(p).name}]({p})" for p in family_tables),
        "",
        "## Convergence",
        "",
        *[f"- {md_inert(line)}" for line in _convergence_lines(verdicts)],
        "",
        "## Experiments",
        "",
        _md_table(_EXPERIMENT_HEADERS, _experiment_rows(prov)),
        "",
    ]
    for sec in overview:
        out += _md_section(sec, 2, root)
    out += ["## Hypotheses", ""]
    for v in verdicts:
        out.append(v.as_markdown(details=False))
        out.append("")
        if not v.available:
            out += [f"> **Not tested on this store.** {_md_cell(v.reason)}", ""]
        for sec in sections.get(v.hypothesis, []):
            out += _md_section(sec, 4, root)
        if v.summaries:
            out.append("<details><summary>Fitted models</summary>")
            out.append("")
            for name, summary in v.summaries.items():
                body = str(summary).rstrip()
                out += [f"**{_md_cell(name)}**", "", _fence(body), body, _fence(body), ""]
            out += ["</details>", ""]
    out += ["## Provenance", ""]
    out.append(
        _md_table(
            ["", ""],
            [[f"**{k}**", f"`{v}`" if k == "command" else v] for k, v in _provenance_rows(prov)],
        )
    )
    out += [
        "",
        "Each experiment's recipe is in `verdicts.json` under `provenance.experiments`.",
        "",
    ]
    return "\n".join(out)


def _md_section(sec: ReportSection, level: int, root: Path) -> list[str]:
    out = [f"{'#' * level} {_md_cell(sec.title)}", ""]
    if sec.text:
        out += [md_inert(sec.text), ""]
    for stem, paths in _figure_groups(sec.figures):
        shown = _inline_path(paths)
        caption = sec.caption(stem) or Path(stem).name
        if shown:
            out.append(f"![{_md_cell(Path(stem).name)}]({shown})")
            out.append("")
        links = " · ".join(f"[{Path(p).suffix.lstrip('.').upper()}]({p})" for p in paths)
        out += [f"_{_md_cell(caption)}_ ({links})", ""]
    for rel in sec.tables:
        if rel.lower().endswith(".md"):
            out += [_read(root / rel).rstrip(), ""]
    if sec.tables:
        out += ["Tables: " + ", ".join(f"[{Path(p).name}]({p})" for p in sec.tables), ""]
    return out


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


# ============================================================================================
# HTML
# ============================================================================================

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1f2328;line-height:1.45}
h1{font-size:1.7rem;border-bottom:2px solid #1f2328;padding-bottom:.3rem}
h2{font-size:1.35rem;margin-top:2.2rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem}
h3,h4{margin-top:1.5rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
table.booktabs{border-top:2px solid #1f2328;border-bottom:2px solid #1f2328}
table.booktabs thead{border-bottom:1px solid #1f2328}
table.booktabs td,table.booktabs th{padding:2px 10px;text-align:right}
table.booktabs td:first-child,table.booktabs th:first-child,
table.booktabs td.l,table.booktabs th.l{text-align:left}
tr.key td{font-weight:600}
figure{margin:1rem 0}
figure img,figure svg{width:min(100%,36rem);height:auto;border:1px solid #eaeef2}
figcaption{font-size:.88rem;color:#444;max-width:36rem}
.notice{background:#fff8c5;border:1px solid #d4a72c;padding:.5rem .8rem;border-radius:4px}
.supported{color:#1a7f37}.rejected{color:#cf222e}.inconclusive{color:#9a6700}
.nottested{color:#6e7781}
pre{background:#f6f8fa;padding:.6rem;overflow-x:auto;font-size:.8rem}
code{font-size:.88em}
details{margin:.5rem 0}
.files a{margin-right:.6rem}
.mdtable table{border-top:2px solid #1f2328;border-bottom:2px solid #1f2328}
.mdtable thead{border-bottom:1px solid #1f2328}
.mdtable td,.mdtable th{padding:2px 10px}
.mdtable p{font-size:.88rem;color:#444;max-width:44rem}
"""


def _h(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _markdown_html(text: str) -> str:
    """Markdown to HTML with raw HTML, images and links disabled (nothing external)."""
    if not text:
        return ""
    try:
        from markdown_it import MarkdownIt
    except ImportError:  # pragma: no cover - markdown-it-py comes with rich
        return "<p>" + _h(text).replace("\n\n", "</p><p>") + "</p>"
    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    md.disable(["image", "link", "autolink"])
    return md.render(text)


def _decision_span(decision: str) -> str:
    cls = "nottested" if decision == "not tested" else decision
    return f'<span class="{_h(cls)}">{_h(decision)}</span>'


def _html_summary(verdicts: Sequence[Verdict]) -> str:
    head = "".join(
        f'<th class="{"l" if h in ("hypothesis", "experiment", "decision") else ""}">{_h(h)}</th>'
        for h in _SUMMARY_HEADERS
    )
    body = []
    for r in _summary_rows(verdicts):
        cells = [
            f'<td class="l"><a href="#h-{_h(slug(r["hypothesis"]))}">'
            f"{_h(r['hypothesis'])}</a></td>",
            f'<td class="l">{_h(r["experiment"])}</td>',
            *(f"<td>{_h(r[k])}</td>" for k in ("estimate", "CI", "p", "Holm p")),
            f'<td class="l">{_decision_span(r["decision"])}</td>',
        ]
        body.append(f'<tr class="{"key" if r["key"] else ""}">' + "".join(cells) + "</tr>")
    return (
        f'<table class="booktabs"><thead><tr>{head}</tr></thead><tbody>'
        + "".join(body)
        + "</tbody></table>"
    )


def _html_figure(root: Path, stem: str, paths: Sequence[str], caption: str) -> str:
    shown = _inline_path(paths)
    media = ""
    if shown is not None:
        data = (root / shown).read_bytes()
        if shown.lower().endswith(".svg"):
            text = data.decode("utf-8", "replace")
            text = re.sub(r"<\?xml[^>]*>|<!DOCTYPE[^>]*>", "", text)
            text = re.sub(r"<script.*?</script>", "", text, flags=re.S | re.I)
            media = text
        else:
            mime = {"jpg": "jpeg"}.get(
                Path(shown).suffix.lstrip(".").lower(), Path(shown).suffix.lstrip(".").lower()
            )
            b64 = base64.b64encode(data).decode("ascii")
            media = f'<img alt="{_h(Path(stem).name)}" src="data:image/{mime};base64,{b64}">'
    links = "".join(
        f'<a href="{_h(p)}">{_h(Path(p).suffix.lstrip(".").upper())}</a>' for p in paths
    )
    cap = f"{_h(caption)} " if caption else ""
    return (
        f'<figure>{media}<figcaption>{cap}<span class="files">{links}</span></figcaption></figure>'
    )


def _html_csv(root: Path, rel: str, max_rows: int = 40) -> str:
    try:
        rows = list(csv.reader(io.StringIO((root / rel).read_text(encoding="utf-8"))))
    except (OSError, csv.Error):
        return ""
    if len(rows) < 2 or len(rows) - 1 > max_rows or len(rows[0]) > 14:
        return ""
    head = "".join(f"<th>{_h(c)}</th>" for c in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{_h(_short_num(c))}</td>" for c in r) + "</tr>" for r in rows[1:]
    )
    return (
        f"<details><summary>{_h(Path(rel).name)}</summary>"
        f'<table class="booktabs"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        "</details>"
    )


def _short_num(text: str) -> str:
    try:
        v = float(text)
    except ValueError:
        return text
    if not text.strip() or re.fullmatch(r"-?\d+", text.strip()):
        return text
    return f"{v:.4g}"


def _html_section(sec: ReportSection, root: Path, level: int, shown: set[str]) -> str:
    parts = [f"<h{level}>{_h(sec.title)}</h{level}>"]
    if sec.text:
        parts.append(_markdown_html(sec.text))
    for stem, paths in _figure_groups(sec.figures):
        anchor = f"fig-{slug(stem)}"
        if stem in shown:  # a figure shared by two hypotheses is embedded once
            parts.append(
                f'<p>See <a href="#{_h(anchor)}">{_h(Path(stem).name)}</a> above '
                "(the same figure).</p>"
            )
            continue
        shown.add(stem)
        parts.append(
            f'<div id="{_h(anchor)}">{_html_figure(root, stem, paths, sec.caption(stem))}</div>'
        )
    if sec.tables:
        links = "".join(f'<a href="{_h(p)}">{_h(Path(p).name)}</a> ' for p in sec.tables)
        parts.append(f'<p class="files">Tables: {links}</p>')
        for rel in sec.tables:
            if rel.lower().endswith(".md"):
                parts.append(f'<div class="mdtable">{_markdown_html(_read(root / rel))}</div>')
            elif rel.lower().endswith(".csv") and not rel.lower().endswith("-cells.csv"):
                parts.append(_html_csv(root, rel))
    return "\n".join(parts)


def _html(
    verdicts: Sequence[Verdict],
    sections: Mapping[str, list[ReportSection]],
    overview: Sequence[ReportSection],
    prov: Mapping[str, Any],
    family_tables: Sequence[str],
    root: Path,
) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>kdtheory report</title>",
        f"<style>{_CSS}</style>",
        "</head><body>",
        "<h1>kdtheory report</h1>",
        "<p>Knowledge-distillation hypotheses tested on a run store. p-values are "
        "Holm-adjusted across the family of hypotheses tested together; every number is in "
        '<a href="verdicts.json">verdicts.json</a>.</p>',
        "<h2>Verdicts</h2>",
        _html_summary(verdicts),
        "<p><small>Bold: the verdict (the pooled random-effects row with several experiments). "
        "CIs are two-sided at the level shown (90% for a one-sided test at alpha = 0.05)."
        "</small></p>",
        '<p class="files">Tables: '
        + "".join(f'<a href="{_h(p)}">{_h(Path(p).name)}</a> ' for p in family_tables)
        + "</p>",
        "<h2>Convergence</h2>",
        "<ul>" + "".join(f"<li>{_h(line)}</li>" for line in _convergence_lines(verdicts)) + "</ul>",
        "<h2>Experiments</h2>",
        '<table class="booktabs"><thead><tr>'
        + "".join(f'<th class="l">{_h(h)}</th>' for h in _EXPERIMENT_HEADERS)
        + "</tr></thead><tbody>"
        + "".join(
            "<tr>" + "".join(f'<td class="l">{_h(c)}</td>' for c in row) + "</tr>"
            for row in _experiment_rows(prov)
        )
        + "</tbody></table>",
    ]
    shown: set[str] = set()
    for sec in overview:
        parts.append(_html_section(sec, root, 2, shown))
    parts.append("<h2>Hypotheses</h2>")
    for v in verdicts:
        parts.append(f'<section id="h-{_h(slug(v.hypothesis))}">')
        parts.append(v.as_html(details=False))
        if not v.available:
            parts.append(f'<p class="notice"><b>Not tested on this store.</b> {_h(v.reason)}</p>')
        for sec in sections.get(v.hypothesis, []):
            parts.append(_html_section(sec, root, 5, shown))
        if v.summaries:
            for name, summary in v.summaries.items():
                parts.append(
                    f"<details><summary>Fitted model: {_h(name)}</summary>"
                    f"<pre>{_h(str(summary).rstrip())}</pre></details>"
                )
        parts.append("</section>")
    parts.append("<h2>Provenance</h2>")
    parts.append(
        '<table class="booktabs"><tbody>'
        + "".join(
            f'<tr><th class="l">{_h(k)}</th><td class="l"><code>{_h(v)}</code></td></tr>'
            for k, v in _provenance_rows(prov)
        )
        + "</tbody></table>"
    )
    for name, info in (prov.get("experiments") or {}).items():
        parts.append(
            f"<details><summary>Recipe of {_h(name)}</summary>"
            f"<pre>{_h(json.dumps(info.get('recipe'), indent=2, sort_keys=True))}</pre>"
            "</details>"
        )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
