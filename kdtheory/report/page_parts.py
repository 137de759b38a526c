"""What the report's Markdown and HTML pages both show: the verdict summary, the experiments,
the provenance and the convergence lines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdtheory.report.format import html_escape
from kdtheory.report.sections import slug
from kdtheory.report.table import Cell, Column, Row, Table
from kdtheory.report.verdict_parts import RowMarks, effect_lines
from kdtheory.store.titles import experiment_title

if TYPE_CHECKING:
    from kdtheory.hypothesis.verdict import Verdict

__all__ = [
    "convergence_lines",
    "experiments_table",
    "provenance_rows",
    "read_text",
    "summary_table",
]


def _decision_span(decision: str) -> str:
    cls = "nottested" if decision == "not tested" else decision
    return f'<span class="{html_escape(cls)}">{html_escape(decision)}</span>'


def _summary_row(
    hypothesis: str, columns: Sequence[Column], values: Mapping[str, Any], key: bool
) -> Row:
    link = f'<a href="#h-{html_escape(slug(hypothesis))}">{html_escape(hypothesis)}</a>'
    decision = str(values.get("decision", ""))
    cells = {
        **values,
        "hypothesis": Cell(hypothesis, html=link),
        "decision": Cell(decision, strong=key, html=_decision_span(decision)),
    }
    return Row([cells.get(c.header, "") for c in columns], key=key)


def summary_table(verdicts: Sequence[Verdict]) -> Table:
    """One row per experiment (by its title) and pooled row of each verdict; the verdict's row
    is the key one (bold decision, Holm p). The CI column is at the report's level; rows at
    another level are marked and rows resting on different deciding tests carry a test key,
    both explained in the table's notes."""
    lines_of = [(v, effect_lines(v)) for v in verdicts if v.available]
    marks = RowMarks.of(lines_of)
    ci = marks.header
    columns = [
        Column("hypothesis", fmt="text"),
        Column("experiment", fmt="text"),
        *([Column("test", fmt="text")] if marks.tests else []),
        Column("estimate", fmt=".4g"),
        Column(ci, fmt=".4g", align="r"),
        Column("p", fmt="p4"),
        Column("Holm p", fmt="p4"),
        Column("decision", fmt="text"),
    ]
    lines = dict((v.hypothesis, rows) for v, rows in lines_of)
    out = []
    for v in verdicts:
        if not v.available:
            values = {"experiment": "—", "decision": "not tested"}
            out.append(_summary_row(v.hypothesis, columns, values, True))
            continue
        for r in lines[v.hypothesis]:
            values = {
                "experiment": r.label + (" (RE)" if r.kind == "pooled" else ""),
                "test": marks.test_key(r, v),
                "estimate": r.estimate,
                ci: Cell((r.ci_low, r.ci_high), mark=marks.ci_mark(r)),
                "p": r.p_value,
                "Holm p": r.p_adjusted if r.key and r.p_adjusted is not None else "",
                "decision": r.shown_decision,
            }
            out.append(_summary_row(v.hypothesis, columns, values, r.key))
    table = Table(columns, out, markdown_align=False, missing="n/a", minus="-")
    table.notes = marks.notes(hypothesis_names=True)
    return table


def provenance_rows(prov: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The provenance as (label, value) lines."""
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


_EXPERIMENT_HEADERS = [
    "experiment",
    "id",
    "dataset",
    "teacher → student",
    "methods",
    "κ (fractions)",
    "seeds",
]


def experiments_table(prov: Mapping[str, Any]) -> Table:
    """One row per experiment of the store: its title and id, dataset, architectures, methods,
    κ, seeds."""
    rows = []
    for name, info in (prov.get("experiments") or {}).items():
        kappa = info.get("n_train") or []
        rows.append(
            Row(
                [
                    str(info.get("title") or experiment_title(info)),
                    name,
                    str(info.get("dataset", "")),
                    f"{info.get('teacher', '')} → {info.get('student', '')}",
                    ", ".join(info.get("methods", [])),
                    f"{min(kappa)}–{max(kappa)} ({len(kappa)})" if kappa else "",
                    str(len(info.get("seeds", []))),
                ]
            )
        )
    columns = [Column(h, fmt="text") for h in _EXPERIMENT_HEADERS]
    return Table(columns, rows, markdown_align=False)


def convergence_lines(verdicts: Sequence[Verdict]) -> list[str]:
    """The store's convergence warnings (each once), or one line saying there are none."""
    from kdtheory.store.convergence import CRITERIA

    lines = list(dict.fromkeys(w for v in verdicts for w in v.warnings))
    return lines or [
        f"none: no cell is under-trained and no teacher is weak (criteria: {CRITERIA})"
    ]


def read_text(path: Path) -> str:
    """The text of ``path``; empty when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""
