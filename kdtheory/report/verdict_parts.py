"""What every rendering of a verdict shows: its labelled lines, its effects table, its notes.

The per-format renderers (:mod:`kdtheory.report.verdict_text`, ``verdict_markdown``,
``verdict_latex``, ``verdict_csv``, ``verdict_html``) lay these out; the numbers and words are
made once, here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kdtheory.report.format import fmt_ci, fmt_num, fmt_pct, p_relation, to_float
from kdtheory.report.table import Cell, Column, Row, Table

if TYPE_CHECKING:
    from kdtheory.hypothesis.verdict import EffectRow, Verdict

__all__ = [
    "EffectLine",
    "ci_pair",
    "ci_words",
    "effect_lines",
    "effects_table",
    "family_table",
    "family_title",
    "detail_blocks",
    "further_numbers",
    "info_lines",
    "pooling_words",
    "records_table",
    "scalar_extra_keys",
    "test_line",
]

NAN = float("nan")


@dataclass
class EffectLine:
    """One line of a rendered effects table: an experiment, the pooled row or the verdict."""

    hypothesis: str
    kind: str  # "experiment", "pooled" or "verdict"
    label: str
    estimate: float
    ci_low: float
    ci_high: float
    statistic: float
    p_value: float
    n: int | None
    decision: str  # this row's own decision
    extra: dict[str, Any]
    key: bool = False  # carries the verdict's key effect (Holm p, verdict decision)
    p_adjusted: float | None = None
    shown_decision: str = ""  # verdict decision on the key row, own decision elsewhere
    unit: str = "seeds"
    ci_level: float = NAN  # level of this row's CI (NaN: the verdict's)
    test: str = ""  # name of this row's deciding test


def ci_pair(v: Verdict) -> tuple[float, float]:
    """The verdict's CI as a pair (NaN, NaN without one)."""
    return tuple(v.ci) if v.ci is not None else (NAN, NAN)  # type: ignore[return-value]


def _row_level(v: Verdict, r: EffectRow) -> float:
    if r.deciding is not None and math.isfinite(to_float(r.deciding.ci_level)):
        return float(r.deciding.ci_level)
    return v.ci_level


def _line(v: Verdict, r: EffectRow, kind: str, label: str) -> EffectLine:
    return EffectLine(
        v.hypothesis,
        kind,
        label,
        r.estimate,
        r.ci_low,
        r.ci_high,
        r.statistic,
        r.p_value,
        r.n,
        r.decision,
        dict(r.extra or {}),
        unit=r.unit,
        ci_level=_row_level(v, r),
        test=r.deciding.name if r.deciding is not None else "",
    )


def effect_lines(v: Verdict) -> list[EffectLine]:
    """One line per experiment, the pooled line, and a verdict line when neither carries the
    verdict's key numbers; the last line is the key one."""
    rows = [_line(v, r, "experiment", r.label) for r in v.experiments]
    if v.pooled is not None:
        rows.append(_line(v, v.pooled, "pooled", v.pooled.label or "pooled"))
    if v.pooled is None and len(v.experiments) != 1:
        ci = ci_pair(v)
        rows.append(
            EffectLine(
                v.hypothesis,
                "verdict",
                "overall" if v.experiments else "(not tested)",
                v.estimate,
                ci[0],
                ci[1],
                v.statistic,
                v.p_value,
                None,
                v.decision,
                {},
                ci_level=v.ci_level,
            )
        )
    for r in rows:
        r.shown_decision = r.decision
    key = rows[-1]
    key.key = True
    key.p_adjusted = v.p_adjusted
    key.shown_decision = v.decision
    return rows


def levels(rows: Sequence[EffectLine]) -> list[float]:
    """The distinct CI levels of rows that have a CI."""
    out: list[float] = []
    for r in rows:
        lvl = to_float(r.ci_level)
        has_ci = not math.isnan(to_float(r.ci_low))
        if has_ci and not math.isnan(lvl) and not any(math.isclose(lvl, o) for o in out):
            out.append(lvl)
    return out


def test_line(v: Verdict) -> str:
    """The deciding test, statistic, p, Holm p, alpha and alternative in one line."""
    parts = [f"statistic = {fmt_num(v.statistic)}", f"p {p_relation(v.p_value)}"]
    if v.deciding is not None:
        parts.insert(0, f"deciding test: {v.deciding.describe()}")
    if v.p_adjusted is not None:
        fam = f" (family of {len(v.family)})" if v.family else ""
        parts.append(f"Holm p {p_relation(v.p_adjusted)}{fam}")
    parts.append(f"alpha = {v.alpha:g}")
    parts.append(f"alternative: {v.alternative}")
    return ", ".join(parts)


def info_lines(v: Verdict, test: str | None = None) -> list[tuple[str, str]]:
    """The verdict's labelled lines (claim, prediction, effect, estimate, test, model, reason).

    Shared by every rendering of a verdict; ``test`` replaces the default test line.
    """
    return [
        ("Claim", v.claim),
        ("Prediction", v.prediction),
        ("Effect", v.effect),
        ("Estimate", f"{fmt_num(v.estimate)}, {v.ci_note} {fmt_ci(*ci_pair(v))}"),
        ("Test", test_line(v) if test is None else test),
        ("Model", v.model),
        ("Reason", v.reason),
    ] + [("Warning", w) for w in v.warnings]


def scalar_extra_keys(rows: Iterable[EffectLine]) -> list[str]:
    """The keys of the rows' ``extra`` numbers that hold one scalar (first-seen order)."""
    keys: list[str] = []
    for r in rows:
        for k, val in r.extra.items():
            if k not in keys and (val is None or isinstance(val, (bool, int, float, str))):
                keys.append(k)
            elif k not in keys and hasattr(val, "item") and getattr(val, "ndim", 1) == 0:
                keys.append(k)
    return keys


def fmt_any(val: Any) -> str:
    """A free-form value for display: numbers by :func:`fmt_num`, booleans lower-case."""
    if val is None:
        return "n/a"
    if isinstance(val, bool):
        return str(val).lower()
    if isinstance(val, (int, float)) or hasattr(val, "item"):
        try:
            return fmt_num(val)
        except (TypeError, ValueError):
            return str(val)
    return str(val)


def _verdict_table(columns: list[Column], rows: list[Row]) -> Table:
    return Table(columns, rows, missing="n/a", minus="-")


def records_table(records: Sequence[Mapping[str, Any]]) -> Table:
    """A table of free-form records (``Verdict.tables``): one column per key, left-aligned."""
    headers: list[str] = []
    for rec in records:
        for k in rec:
            if k not in headers:
                headers.append(str(k))
    rows = [Row([fmt_any(rec.get(h)) for h in headers]) for rec in records]
    return _verdict_table([Column(h, fmt="text") for h in headers], rows)


def effects_table(rows: Sequence[EffectLine], strong: Sequence[str] = ()) -> Table:
    """The per-experiment effects table; a Holm column when the key row has an adjusted p, a
    CI-level column when the rows' levels differ, a test column when their tests do.

    ``strong`` names the columns (``"experiment"``, ``"decision"``) shown bold on the key row.
    """
    has_holm = any(r.key and r.p_adjusted is not None for r in rows)
    mixed = len(levels(rows)) > 1
    tests = len({r.test for r in rows}) > 1
    columns = [
        Column("experiment", fmt="text"),
        Column("estimate", fmt=".4g"),
        Column("CI low", fmt=".4g"),
        Column("CI high", fmt=".4g"),
        *([Column("CI level", fmt="text", align="r")] if mixed else []),
        Column("statistic", fmt=".4g"),
        Column("p", fmt="p4"),
        *([Column("Holm p", fmt="p4")] if has_holm else []),
        Column("n", fmt="text", align="r"),
        Column("decision", fmt="text"),
        *([Column("deciding test", fmt="text")] if tests else []),
    ]
    body = []
    for r in rows:
        label = r.label + (" (RE)" if r.kind == "pooled" and r.label == "pooled" else "")
        lvl = to_float(r.ci_level)
        values: dict[str, Any] = {
            "experiment": label,
            "estimate": r.estimate,
            "CI low": r.ci_low,
            "CI high": r.ci_high,
            "CI level": "" if math.isnan(lvl) else fmt_pct(lvl, digits=4),
            "statistic": r.statistic,
            "p": r.p_value,
            "Holm p": r.p_adjusted if r.key and r.p_adjusted is not None else "",
            "n": "" if r.n is None else f"{r.n} {r.unit}",
            "decision": r.shown_decision,
            "deciding test": r.test,
        }
        cells = [
            Cell(values[c.header], strong=True)
            if r.key and c.header in strong
            else values[c.header]
            for c in columns
        ]
        body.append(Row(cells, key=r.key))
    return _verdict_table(columns, body)


def ci_words(v: Verdict, rows: Sequence[EffectLine]) -> str:
    """The table's CI level, stated once (or where it is stated when rows differ)."""
    found = levels(rows)
    if len(found) == 1:
        return f"{fmt_pct(found[0], digits=4)} two-sided"
    if not found:
        return v.ci_note
    return "two-sided, at the level in the 'CI level' column (Holm-adjusted where the p is)"


def pooling_words(v: Verdict) -> str:
    """One sentence on the pooled row: method, tau² and I²; empty without a pooled row."""
    if v.pooled is None:
        return ""
    ex = v.pooled.extra or {}
    tau2, i2 = ex.get("tau2"), ex.get("i2")
    parts = [f"Pooled row: {v.pooling or 'random-effects'}"]
    if tau2 is not None or i2 is not None:
        parts.append(f"tau² = {fmt_num(tau2)}, I² = {fmt_num(i2)} (of the key effect)")
    return "; ".join(parts) + "."


def further_numbers(rows: Sequence[EffectLine]) -> Table | None:
    """The rows' scalar extra numbers: one line per number, one column per row (stays narrow)."""
    keys = scalar_extra_keys(rows)
    if not keys:
        return None
    columns = [Column("number", fmt="text")]
    columns += [Column(r.label, fmt="text", align="r") for r in rows]
    body = [Row([k] + [fmt_any(r.extra.get(k)) for r in rows]) for k in keys]
    return _verdict_table(columns, body)


def detail_blocks(
    v: Verdict, rows: Sequence[EffectLine], escape: Callable[[str], str] = str
) -> list[tuple[str, Table | str]]:
    """What ``details`` adds to a rendered verdict, in order: the further numbers, each non-empty
    table of ``v.tables`` and each fitted model's summary.

    Parameters
    ----------
    v : Verdict
    rows : sequence of EffectLine
        :func:`effect_lines` of ``v``.
    escape : callable
        Escapes a table or model name for the target format (Markdown cell, HTML).

    Returns
    -------
    list of (str, Table or str)
        A title (``"Further numbers"``, ``"Table: <name>"``, ``"Model summary: <name>"``) and a
        table to render, or a model summary as plain, unescaped text.
    """
    blocks: list[tuple[str, Table | str]] = []
    further = further_numbers(rows)
    if further is not None:
        blocks.append(("Further numbers", further))
    for name, records in (v.tables or {}).items():
        if records:
            blocks.append((f"Table: {escape(name)}", records_table(records)))
    for name, summary in (v.summaries or {}).items():
        blocks.append((f"Model summary: {escape(name)}", str(summary).rstrip()))
    return blocks


def family_table(items: Sequence[Verdict], decision: Callable[[str], Cell] | None = None) -> Table:
    """One line per verdict of a family: decision, deciding test, estimate, CI (with its level),
    p and Holm p; ``decision`` makes the decision cell (emphasis, colour)."""
    columns = [
        Column("hypothesis", fmt="text"),
        Column("decision", fmt="text"),
        Column("deciding test", fmt="text"),
        Column("estimate", fmt=".4g"),
        Column("CI", fmt=".4g", align="l"),
        Column("CI level", fmt="text", align="r"),
        Column("p", fmt="p4"),
        Column("Holm p", fmt="p4"),
    ]
    body = [
        Row(
            [
                v.hypothesis,
                decision(str(v.decision)) if decision is not None else str(v.decision),
                v.deciding.name if v.deciding is not None else "",
                v.estimate,
                tuple(to_float(c) for c in ci_pair(v)),
                fmt_pct(v.ci_level, digits=4) if v.available and not math.isnan(v.ci_level) else "",
                v.p_value,
                v.p_adjusted if v.p_adjusted is not None else "",
            ]
        )
        for v in items
    ]
    return _verdict_table(columns, body)


def family_title(items: Sequence[Verdict]) -> str:
    """``"5 hypotheses tested as one Holm family at alpha = 0.05; 1 not testable: x"``: the
    family size stated once, the same number every verdict's "family of N" gives."""
    alphas = sorted({f"{v.alpha:g}" for v in items})
    tested = [v for v in items if v.p_adjusted is not None]
    untested = [v.hypothesis for v in items if v.p_adjusted is None]
    if tested:
        title = f"{len(tested)} hypotheses tested as one Holm family at alpha = {', '.join(alphas)}"
    else:
        title = f"{len(items)} hypotheses"
    if tested and untested:
        title += f"; not in the family (no p-value on this store): {', '.join(untested)}"
    return title
