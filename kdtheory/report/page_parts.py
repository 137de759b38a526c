"""What the report's Markdown and HTML pages both show: the verdict summary, the experiments,
the provenance and the convergence lines."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdtheory.report.format import fmt_ci, fmt_num, fmt_p, html_escape
from kdtheory.report.sections import slug
from kdtheory.report.table import Cell, Column, Row, Table

if TYPE_CHECKING:
    from kdtheory.hypothesis.verdict import Verdict

__all__ = [
    "convergence_lines",
    "experiments_table",
    "provenance_rows",
    "read_text",
    "summary_table",
]

_SUMMARY_COLUMNS = [
    Column("hypothesis", fmt="text"),
    Column("experiment", fmt="text"),
    Column("estimate", fmt="text", align="r"),
    Column("CI", fmt="text", align="r"),
    Column("p", fmt="text", align="r"),
    Column("Holm p", fmt="text", align="r"),
    Column("decision", fmt="text"),
]


def _decision_span(decision: str) -> str:
    cls = "nottested" if decision == "not tested" else decision
    return f'<span class="{html_escape(cls)}">{html_escape(decision)}</span>'


def _summary_row(hypothesis: str, label: str, numbers: list[str], decision: str, key: bool) -> Row:
    link = f'<a href="#h-{html_escape(slug(hypothesis))}">{html_escape(hypothesis)}</a>'
    return Row(
        [
            Cell(hypothesis, html=link),
            label,
            *numbers,
            Cell(decision, strong=key, html=_decision_span(decision)),
        ],
        key=key,
    )


def summary_table(verdicts: Sequence[Verdict]) -> Table:
    """One row per experiment and pooled row of each verdict; the verdict's row is the key one
    (bold decision, Holm p)."""
    rows = []
    for v in verdicts:
        if not v.available:
            rows.append(_summary_row(v.hypothesis, "—", ["", "", "", ""], "not tested", True))
            continue
        level = v.ci_level
        lvl = f" ({round(100 * level):g}%)" if not math.isnan(level) else ""
        items = list(v.experiments) + ([v.pooled] if v.pooled is not None else [])
        if not items:
            holm = fmt_p(v.p_adjusted) if v.p_adjusted is not None else ""
            numbers = [fmt_num(v.estimate), fmt_ci(*v.ci) + lvl, fmt_p(v.p_value), holm]
            rows.append(_summary_row(v.hypothesis, "all", numbers, v.decision, True))
        for r in items:
            key = (r is v.pooled) or (v.pooled is None and len(v.experiments) == 1)
            holm = fmt_p(v.p_adjusted) if key and v.p_adjusted is not None else ""
            numbers = [fmt_num(r.estimate), fmt_ci(r.ci_low, r.ci_high) + lvl, fmt_p(r.p_value)]
            decision = v.decision if key else r.decision
            rows.append(_summary_row(v.hypothesis, r.label, [*numbers, holm], decision, key))
    return Table(list(_SUMMARY_COLUMNS), rows, markdown_align=False)


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


_EXPERIMENT_HEADERS = ["experiment", "dataset", "teacher → student", "methods", "κ", "seeds"]


def experiments_table(prov: Mapping[str, Any]) -> Table:
    """One row per experiment of the store: dataset, architectures, methods, κ, seeds."""
    rows = []
    for name, info in (prov.get("experiments") or {}).items():
        kappa = info.get("n_train") or []
        rows.append(
            Row(
                [
                    name,
                    str(info.get("dataset", "")),
                    f"{info.get('teacher', '')} → {info.get('student', '')}",
                    ", ".join(info.get("methods", [])),
                    f"{min(kappa)}–{max(kappa)} ({len(kappa)} fractions)" if kappa else "",
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
