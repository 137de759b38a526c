"""Verdicts as CSV: one row per experiment, pooled row and verdict row, with the extra numbers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kdtheory.report.format import to_float
from kdtheory.report.table import Column, Row, Table
from kdtheory.report.verdict_parts import effect_lines, scalar_extra_keys

if TYPE_CHECKING:
    from kdtheory.hypothesis.verdict import Verdict

__all__ = ["CSV_COLUMNS", "verdicts_csv"]

CSV_COLUMNS = [
    "hypothesis",
    "row",
    "experiment",
    "title",
    "estimate",
    "ci_low",
    "ci_high",
    "ci_level",
    "statistic",
    "p_value",
    "n",
    "n_unit",
    "decision",
    "verdict_decision",
    "p_adjusted",
    "alpha",
    "alternative",
]


def verdicts_csv(items: Sequence[Verdict]) -> str:
    """CSV with a header line and a ``hypothesis`` column; numbers at full precision. Rows keep
    the experiment id (``experiment``) and add its display title (``title``)."""
    all_rows = [(v, r) for v in items for r in effect_lines(v)]
    extra_keys = scalar_extra_keys(r for _, r in all_rows)
    columns = [Column(c) for c in CSV_COLUMNS] + [Column(f"extra_{k}") for k in extra_keys]
    rows = [
        Row(
            [
                v.hypothesis,
                r.kind,
                r.experiment,
                r.label,
                to_float(r.estimate),
                to_float(r.ci_low),
                to_float(r.ci_high),
                r.ci_level if math.isfinite(to_float(r.ci_level)) else v.ci_level,
                to_float(r.statistic),
                to_float(r.p_value),
                "" if r.n is None else str(r.n),
                "" if r.n is None else r.unit,
                r.decision,
                v.decision,
                v.p_adjusted,
                to_float(v.alpha),
                v.alternative,
            ]
            + [r.extra.get(k) for k in extra_keys]
        )
        for v, r in all_rows
    ]
    return Table(columns, rows).to_csv()
