"""What every rendering of a verdict shows: its labelled lines, its effects table, its notes.

The per-format renderers (:mod:`kdtheory.report.verdict_text`, ``verdict_markdown``,
``verdict_latex``, ``verdict_csv``, ``verdict_html``) lay these out; the numbers and words are
made once, here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kdtheory.report.format import (
    CI_MARKS,
    ci_header,
    fmt_ci,
    fmt_level,
    fmt_num,
    interval_level,
    p_relation,
    to_float,
)
from kdtheory.report.table import Cell, Column, Row, Table

if TYPE_CHECKING:
    from kdtheory.hypothesis.verdict import EffectRow, Verdict

__all__ = [
    "EffectLine",
    "RowMarks",
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
    "titled",
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
    test: str = ""  # name of this row's deciding test (ids shown as titles)
    experiment: str = ""  # the experiment id ("pooled", "overall"): JSON and CSV keep it


def titled(text: str, titles: Mapping[str, str]) -> str:
    """``text`` with every experiment id of ``titles`` replaced by its display title (longest
    id first, so an id inside another is not replaced on its own); for text readers see."""
    ids = sorted((k for k, t in titles.items() if k and t and k != t), key=len, reverse=True)
    if not ids or not text:
        return text
    pattern = re.compile("|".join(re.escape(k) for k in ids))
    return pattern.sub(lambda m: titles[m.group(0)], str(text))


def ci_pair(v: Verdict) -> tuple[float, float]:
    """The verdict's CI as a pair (NaN, NaN without one)."""
    return tuple(v.ci) if v.ci is not None else (NAN, NAN)  # type: ignore[return-value]


def _row_level(v: Verdict, r: EffectRow) -> float:
    if r.deciding is not None and math.isfinite(to_float(r.deciding.ci_level)):
        return float(r.deciding.ci_level)
    return v.ci_level


def _line(v: Verdict, r: EffectRow, kind: str, label: str) -> EffectLine:
    titles = v.titles or {}
    return EffectLine(
        v.hypothesis,
        kind,
        titles.get(label, label),
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
        test=titled(r.deciding.name, titles) if r.deciding is not None else "",
        experiment=label,
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
                test=titled(v.deciding.name, v.titles or {}) if v.deciding is not None else "",
                experiment="overall" if v.experiments else "",
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

    Shared by every rendering of a verdict; ``test`` replaces the default test line. Experiment
    ids in the text are shown as their titles (:func:`titled`).
    """
    lines = [
        ("Claim", v.claim),
        ("Prediction", v.prediction),
        ("Effect", v.effect),
        ("Estimate", f"{fmt_num(v.estimate)}, {v.ci_note} {fmt_ci(*ci_pair(v))}"),
        ("Test", test_line(v) if test is None else test),
        ("Model", v.model),
        ("Reason", v.reason),
    ] + [("Warning", w) for w in v.warnings]
    return [(k, titled(str(val), v.titles or {})) for k, val in lines]


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


def records_table(
    records: Sequence[Mapping[str, Any]], titles: Mapping[str, str] | None = None
) -> Table:
    """A table of free-form records (``Verdict.tables``): one column per key, left-aligned;
    an experiment id shown as its title (``titles``)."""
    headers: list[str] = []
    for rec in records:
        for k in rec:
            if k not in headers:
                headers.append(str(k))
    titles = titles or {}

    def shown(val: Any) -> str:
        return titles.get(val, val) if isinstance(val, str) else fmt_any(val)

    rows = [Row([shown(rec.get(h)) for h in headers]) for rec in records]
    return _verdict_table([Column(h, fmt="text") for h in headers], rows)


@dataclass
class RowMarks:
    """What marks the rows of a verdict table carry, and the notes that explain them.

    A row whose CI is at another level than the report's convention (``1 - 2*alpha``,
    :func:`kdtheory.report.format.interval_level`) gets a mark per distinct level
    (:data:`~kdtheory.report.format.CI_MARKS`); where one verdict's rows rest on different
    deciding tests (so their estimates are different quantities), each row gets a short test
    key (A, B, ...) naming its test in a note.
    """

    convention: float
    levels: dict[float, str]
    tests: dict[tuple[str, str], str]

    @classmethod
    def of(cls, items: Sequence[tuple[Verdict, Sequence[EffectLine]]]) -> RowMarks:
        alphas = [v.alpha for v, _ in items if math.isfinite(to_float(v.alpha))]
        convention = interval_level(alphas[0]) if alphas else NAN
        found = sorted(
            lvl
            for lvl in {round(x, 12) for _, rows in items for x in levels(rows)}
            if not math.isclose(lvl, convention)
        )
        tests: dict[tuple[str, str], str] = {}
        for v, rows in items:
            names = list(dict.fromkeys(_test_kind(r.test, v) for r in rows if r.test))
            if len(names) > 1:
                for name in names:
                    tests[(v.hypothesis, name)] = _key(len(tests))
        return cls(convention, {lvl: _mark(i) for i, lvl in enumerate(found)}, tests)

    def ci_mark(self, r: EffectLine) -> str:
        """The mark of ``r``'s CI (empty at the convention's level or without a CI)."""
        if math.isnan(to_float(r.ci_low)) and math.isnan(to_float(r.ci_high)):
            return ""
        lvl = to_float(r.ci_level)
        for level, mark in self.levels.items():
            if math.isclose(lvl, level):
                return mark
        return ""

    def test_key(self, r: EffectLine, v: Verdict) -> str:
        """``r``'s test key (empty when its verdict's rows share one test)."""
        return self.tests.get((r.hypothesis, _test_kind(r.test, v)), "")

    @property
    def header(self) -> str:
        """The CI column's header: the convention's level."""
        return ci_header(self.convention) if math.isfinite(self.convention) else "CI"

    def notes(self, hypothesis_names: bool = False) -> list[str]:
        """One line on the marked CI levels and one on the test keys (none when unused)."""
        out: list[str] = []
        if self.levels:
            marks = ", ".join(f"{m} {fmt_level(lvl)} CI" for lvl, m in self.levels.items())
            out.append(
                f"{marks}: the interval of the row's deciding test at the level that matches its "
                "(Holm-adjusted or two-sided) p."
            )
        if self.tests:
            keys = "; ".join(
                f"{key} = {f'{hyp}: ' if hypothesis_names else ''}{name}"
                for (hyp, name), key in self.tests.items()
            )
            out.append(f"Test (the estimate is this deciding test's quantity): {keys}.")
        return out


def _test_kind(name: str, v: Verdict) -> str:
    """A deciding test's name without the experiment it names in parentheses (the pooled
    row's "... (MNIST-5k · CNN 32→8)"): the same test on another experiment is the same kind."""
    for title in {*(v.titles or {}).values(), *(v.titles or {})}:
        name = name.replace(f" ({title})", "")
    return name


def _mark(i: int) -> str:
    return CI_MARKS[i] if i < len(CI_MARKS) else CI_MARKS[-1] * (i - len(CI_MARKS) + 2)


def _key(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else f"A{i}"


def effects_table(v: Verdict, rows: Sequence[EffectLine], strong: Sequence[str] = ()) -> Table:
    """The per-experiment effects table: experiment titles, the CI at the report's level (rows
    at another level marked), a Holm column when the key row has an adjusted p, a test key
    column when the rows' deciding tests differ; notes say what the marks and keys mean.

    ``rows`` are :func:`effect_lines` of ``v``; ``strong`` names the columns
    (``"experiment"``, ``"decision"``) shown bold on the key row.
    """
    marks = RowMarks.of([(v, rows)])
    has_holm = any(r.key and r.p_adjusted is not None for r in rows)
    columns = [
        Column("experiment", fmt="text"),
        *([Column("test", fmt="text")] if marks.tests else []),
        Column("estimate", fmt=".4g"),
        Column(marks.header, fmt=".4g", align="r"),
        Column("statistic", fmt=".4g"),
        Column("p", fmt="p4"),
        *([Column("Holm p", fmt="p4")] if has_holm else []),
        Column("n", fmt="text", align="r"),
        Column("decision", fmt="text"),
    ]
    body = []
    for r in rows:
        label = r.label + (" (RE)" if r.kind == "pooled" and r.label == "pooled" else "")
        values: dict[str, Any] = {
            "experiment": label,
            "test": marks.test_key(r, v),
            "estimate": r.estimate,
            marks.header: Cell((r.ci_low, r.ci_high), mark=marks.ci_mark(r)),
            "statistic": r.statistic,
            "p": r.p_value,
            "Holm p": r.p_adjusted if r.key and r.p_adjusted is not None else "",
            "n": "" if r.n is None else f"{r.n} {r.unit}",
            "decision": r.shown_decision,
        }
        cells = [
            Cell(values[c.header], strong=True)
            if r.key and c.header in strong
            else values[c.header]
            for c in columns
        ]
        body.append(Row(cells, key=r.key))
    table = _verdict_table(columns, body)
    table.notes = marks.notes()
    return table


def ci_words(v: Verdict, rows: Sequence[EffectLine]) -> str:
    """The table's CI convention in words: ``"90% two-sided"`` (marked rows explained in the
    table's notes)."""
    level = interval_level(v.alpha) if math.isfinite(to_float(v.alpha)) else NAN
    if not levels(rows):
        return v.ci_note
    return f"{fmt_level(level)} two-sided unless marked"


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
            blocks.append((f"Table: {escape(name)}", records_table(records, v.titles)))
    for name, summary in (v.summaries or {}).items():
        shown = (v.titles or {}).get(name, name)
        blocks.append((f"Model summary: {escape(shown)}", str(summary).rstrip()))
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
                titled(v.deciding.name, v.titles or {}) if v.deciding is not None else "",
                v.estimate,
                tuple(to_float(c) for c in ci_pair(v)),
                fmt_level(v.ci_level) if v.available else "",
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
