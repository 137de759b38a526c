"""Verdicts: the result object of a hypothesis test, and its renderings.

One :class:`Verdict` renders itself as text (``str(verdict)``), JSON, Markdown, LaTeX (booktabs),
CSV and HTML (``_repr_html_`` for notebooks) from the same numbers. :func:`render` does the same
for a list of verdicts (a family tested together, e.g. ``kdtheory test all``).

Confidence intervals follow :mod:`kdtheory.stats`: they are two-sided, at level ``1 - alpha`` for a
two-sided test and ``1 - 2*alpha`` for a one-sided test, so the interval agrees with the test's
decision. A verdict and each of its rows name the test their decision rests on
(:class:`DecidingTest`) and show that test's p and CI, so the decision follows from the numbers
shown (:meth:`DecidingTest.implied_decision`). Every rendering names the CI level once per table.

JSON is strict (no ``NaN``): missing numbers become ``null``, infinities the strings ``"inf"`` /
``"-inf"``; :meth:`Verdict.from_dict` turns them back into floats for the numeric fields. Inside
the free-form ``extra`` dicts and ``tables`` records a ``null`` stays ``None``. Two verdicts compare
equal when their JSON forms are equal, so ``Verdict.from_dict(v.to_dict()) == v`` holds even with
NaN values.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kdtheory.stats import ci_level, ci_level_note

Decision = Literal["supported", "rejected", "inconclusive"]
DECISIONS: tuple[str, ...] = ("supported", "rejected", "inconclusive")
FORMATS: tuple[str, ...] = ("text", "json", "markdown", "latex", "latex-document", "csv", "html")
VERDICT_FORMAT = "kdtheory-verdict/1"

NAN = float("nan")


# --------------------------------------------------------------------------------------------
# JSON helpers


def _jsonable(obj: Any) -> Any:
    """Convert ``obj`` into plain JSON types: NaN -> None, ±inf -> "inf"/"-inf", numpy -> python."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if math.isnan(obj):
            return None
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return float(obj)
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in obj]
    # numpy scalars / arrays, pandas NA, anything else
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        try:
            return _jsonable(tolist())
        except Exception:  # noqa: BLE001
            pass
    item = getattr(obj, "item", None)
    if callable(item):
        try:
            return _jsonable(item())
        except Exception:  # noqa: BLE001
            pass
    try:
        if obj != obj:  # pandas.NA-like
            return None
    except Exception:  # noqa: BLE001
        pass
    return str(obj)


def _to_float(value: Any) -> float:
    if value is None:
        return NAN
    try:
        return float(value)
    except (TypeError, ValueError):
        return NAN


def _to_opt_float(value: Any) -> float | None:
    return None if value is None else _to_float(value)


# --------------------------------------------------------------------------------------------
# the deciding test

#: Kinds of deciding test: one-sided against ``null`` (``"greater"``, ``"less"``), two-sided
#: against ``null``, equivalence (the CI must lie ``"inside"`` ``(low, high)``) or its converse
#: (the CI must lie ``"outside"`` ``(low, high)``).
DECIDING_KINDS: tuple[str, ...] = ("greater", "less", "two-sided", "inside", "outside")


@dataclass
class DecidingTest:
    """The one test a decision rests on; its p-value and CI are the ones a verdict shows.

    A decision is a function of the shown p-value, alpha and the shown CI
    (:meth:`implied_decision`): when ``p <= alpha`` *and* the CI clears the null the way
    ``kind`` says, the decision is ``outcome`` (``"supported"`` or ``"rejected"``); otherwise it
    is ``"inconclusive"``.

    Attributes
    ----------
    name : str
        What the test is, in words (e.g. ``"intersection-union of (a), (b1), (b2)"``).
    outcome : {"supported", "rejected"}
        The decision this test gives when it is significant.
    kind : {"greater", "less", "two-sided", "inside", "outside"}
        How the CI must clear the null: above ``null``, below it, either side of it, inside
        ``(low, high)`` or outside it.
    null, low, high : float
        The null value (first three kinds) or the band (``inside``/``outside``).
    ci_level : float
        Two-sided level of the shown CI (Holm-adjusted where the p-value is).
    """

    name: str
    outcome: str
    kind: str
    null: float = 0.0
    low: float = float("nan")
    high: float = float("nan")
    ci_level: float = float("nan")

    def __post_init__(self) -> None:
        if self.kind not in DECIDING_KINDS:
            raise ValueError(
                f"deciding test kind must be one of {DECIDING_KINDS}; got {self.kind!r}"
            )
        if self.outcome not in ("supported", "rejected"):
            raise ValueError(
                f"deciding test outcome must be supported or rejected; got {self.outcome!r}"
            )

    def clears(self, ci_low: float, ci_high: float) -> bool:
        """Whether the CI ``(ci_low, ci_high)`` clears the null the way :attr:`kind` says."""
        lo, hi = _to_float(ci_low), _to_float(ci_high)
        if math.isnan(lo) or math.isnan(hi):
            return False
        if self.kind == "greater":
            return lo > self.null
        if self.kind == "less":
            return hi < self.null
        if self.kind == "two-sided":
            return lo > self.null or hi < self.null
        if self.kind == "inside":
            return self.low < lo and hi < self.high
        return hi < self.low or lo > self.high

    def implied_decision(self, p_value: float, alpha: float, ci_low: float, ci_high: float) -> str:
        """The decision the shown numbers imply (see the class docstring)."""
        p = _to_float(p_value)
        if not math.isnan(p) and p <= alpha and self.clears(ci_low, ci_high):
            return self.outcome
        return "inconclusive"

    def describe(self) -> str:
        """``"intersection-union … (H1: > 0)"``: the test and what it must show."""
        what = {
            "greater": f"> {_fmt_null(self.null)}",
            "less": f"< {_fmt_null(self.null)}",
            "two-sided": f"≠ {_fmt_null(self.null)}",
            "inside": f"inside [{_fmt_null(self.low)}, {_fmt_null(self.high)}]",
            "outside": f"outside [{_fmt_null(self.low)}, {_fmt_null(self.high)}]",
        }[self.kind]
        return f"{self.name} (H1: {what}; significant -> {self.outcome})"

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(
            {
                "name": self.name,
                "outcome": self.outcome,
                "kind": self.kind,
                "null": self.null,
                "low": self.low,
                "high": self.high,
                "ci_level": self.ci_level,
            }
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> DecidingTest | None:
        if not data:
            return None
        return cls(
            name=str(data.get("name", "")),
            outcome=str(data.get("outcome", "supported")),
            kind=str(data.get("kind", "two-sided")),
            null=_to_float(data.get("null")),
            low=_to_float(data.get("low")),
            high=_to_float(data.get("high")),
            ci_level=_to_float(data.get("ci_level")),
        )


def _fmt_null(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else "n/a"


# --------------------------------------------------------------------------------------------
# effect rows


@dataclass
class EffectRow:
    """The key effect estimated on one experiment, or pooled across experiments.

    Attributes
    ----------
    label : str
        Experiment id, or ``"pooled"``.
    estimate : float
        Point estimate of the key effect.
    ci_low, ci_high : float
        Two-sided confidence interval at level ``1 - alpha`` for a two-sided test, ``1 - 2*alpha``
        for a one-sided one (``Verdict.alternative``); see :mod:`kdtheory.stats`.
    p_value : float
        p-value of the test this row's decision rests on (:attr:`deciding`), one-sided where the
        claim is directional.
    statistic : float
        Test statistic (t or z).
    n : int
        Units of replication, counted in :attr:`unit`.
    decision : str
        The decision on this experiment alone (on the pooled tests for the pooled row).
    extra : dict
        Further numbers worth reporting (e.g. TOST p-value, secondary tests).
    unit : str
        What ``n`` counts: ``"seeds"`` for an experiment, ``"experiments"`` for the pooled row.
    deciding : DecidingTest or None
        The test this row's decision rests on (its p-value and CI are this row's).
    """

    label: str
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    statistic: float = float("nan")
    n: int = 0
    decision: Decision = "inconclusive"
    extra: dict[str, Any] = field(default_factory=dict)
    unit: str = "seeds"
    deciding: DecidingTest | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (NaN -> None)."""
        return {
            "label": str(self.label),
            "estimate": _jsonable(_to_float(self.estimate)),
            "ci_low": _jsonable(_to_float(self.ci_low)),
            "ci_high": _jsonable(_to_float(self.ci_high)),
            "p_value": _jsonable(_to_float(self.p_value)),
            "statistic": _jsonable(_to_float(self.statistic)),
            "n": int(self.n) if self.n is not None else 0,
            "decision": str(self.decision),
            "extra": _jsonable(dict(self.extra or {})),
            "unit": str(self.unit),
            "deciding": self.deciding.to_dict() if self.deciding is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EffectRow:
        """Inverse of :meth:`to_dict`."""
        return cls(
            label=str(data.get("label", "")),
            estimate=_to_float(data.get("estimate")),
            ci_low=_to_float(data.get("ci_low")),
            ci_high=_to_float(data.get("ci_high")),
            p_value=_to_float(data.get("p_value")),
            statistic=_to_float(data.get("statistic")),
            n=int(data.get("n") or 0),
            decision=data.get("decision", "inconclusive"),
            extra=dict(data.get("extra") or {}),
            unit=str(data.get("unit", "seeds")),
            deciding=DecidingTest.from_dict(data.get("deciding")),
        )

    def __eq__(self, other: object) -> bool:  # NaN-aware: equal when the JSON forms are
        if not isinstance(other, EffectRow):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


# --------------------------------------------------------------------------------------------
# verdicts


@dataclass
class Verdict:
    """The outcome of testing one hypothesis on a run store.

    Attributes
    ----------
    hypothesis, claim, prediction : str
        Name, one-sentence claim and what the data must show.
    decision : {"supported", "rejected", "inconclusive"}
    alpha : float
    effect : str
        What ``estimate`` measures, with its unit (e.g. "slope of KD gain per log(kappa),
        accuracy points").
    estimate, ci, p_value, statistic : float, (float, float), float, float
        The key effect: pooled across experiments when there are several, else the one
        experiment's. ``ci`` is two-sided at ``1 - alpha`` (two-sided test) or ``1 - 2*alpha``
        (one-sided test); :attr:`ci_note` says which.
    model : str
        The statistical model / test used.
    alternative : str
        ``"two-sided"``, ``"less"`` or ``"greater"``.
    reason : str
        One or two sentences that say why the decision was reached.
    experiments : list of EffectRow
    pooled : EffectRow or None
        Random-effects meta-analysis across experiments (None with a single experiment).
    tables : dict of str to list of dict
        Further per-cell / per-fraction tables (records), e.g. ``{"per_fraction": [...]}``.
    summaries : dict of str to str
        Fitted models' text summaries, by experiment.
    p_adjusted : float or None
        Holm-adjusted p-value when tested as part of a family.
    family : list of str
        Names of the hypotheses in the Holm family this verdict was adjusted in (empty when
        tested alone).
    warnings : list of str
        What undermines the runs under the verdict: under-trained cells, a weak teacher (see
        :mod:`kdtheory.store.convergence`). Shown with every rendering.
    deciding : DecidingTest or None
        The test the decision rests on; ``estimate``, ``ci``, ``p_value`` (and ``p_adjusted``)
        are its numbers. None for verdicts that do not say (third-party plugins).
    pooling : str
        How experiments were pooled (empty with one experiment).
    """

    hypothesis: str
    claim: str
    prediction: str
    decision: Decision
    alpha: float
    effect: str
    estimate: float
    ci: tuple[float, float]
    p_value: float
    model: str
    statistic: float = float("nan")
    alternative: str = "two-sided"
    reason: str = ""
    experiments: list[EffectRow] = field(default_factory=list)
    pooled: EffectRow | None = None
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    summaries: dict[str, str] = field(default_factory=dict)
    p_adjusted: float | None = None
    family: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    deciding: DecidingTest | None = None
    pooling: str = ""

    # ---------------------------------------------------------------- construction helpers

    @classmethod
    def unavailable(
        cls,
        hypothesis: str,
        claim: str,
        prediction: str,
        alpha: float,
        reason: str,
        *,
        effect: str = "",
        alternative: str = "two-sided",
        model: str = "not fitted",
    ) -> Verdict:
        """An ``inconclusive`` verdict with NaN numbers, for a store that lacks what the
        hypothesis needs (``reason`` says what)."""
        return cls(
            hypothesis=hypothesis,
            claim=claim,
            prediction=prediction,
            decision="inconclusive",
            alpha=alpha,
            effect=effect,
            estimate=NAN,
            ci=(NAN, NAN),
            p_value=NAN,
            model=model,
            alternative=alternative,
            reason=reason,
        )

    # ---------------------------------------------------------------- derived

    @property
    def ci_level(self) -> float:
        """Level of :attr:`ci`: the deciding test's, else ``1 - alpha`` (``1 - 2*alpha`` for a
        one-sided test)."""
        if self.deciding is not None and math.isfinite(_to_float(self.deciding.ci_level)):
            return float(self.deciding.ci_level)
        try:
            return ci_level(self.alternative, self.alpha)
        except ValueError:
            return NAN

    @property
    def ci_note(self) -> str:
        """Words describing :attr:`ci`, e.g. ``"95% two-sided CI"``."""
        if self.deciding is not None and math.isfinite(_to_float(self.deciding.ci_level)):
            return f"{_pct(self.deciding.ci_level)} two-sided CI"
        try:
            return ci_level_note(self.alternative, self.alpha)
        except ValueError:
            return "CI"

    def implied_decision(self) -> str | None:
        """The decision implied by the shown p-value (Holm-adjusted when tested in a family),
        alpha and CI through :attr:`deciding`; None without a deciding test."""
        if self.deciding is None:
            return None
        p = self.p_adjusted if self.p_adjusted is not None else self.p_value
        lo, hi = _ci_pair(self)
        return self.deciding.implied_decision(p, self.alpha, lo, hi)

    @property
    def available(self) -> bool:
        """False for a verdict made by :meth:`unavailable` (no estimate, no p-value)."""
        no_numbers = math.isnan(_to_float(self.estimate)) and math.isnan(_to_float(self.p_value))
        return bool(self.experiments) or not no_numbers

    # ---------------------------------------------------------------- JSON

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (NaN -> None). ``ci_level`` and ``format`` are derived keys."""
        ci = tuple(self.ci) if self.ci is not None else (NAN, NAN)
        level = self.ci_level
        return {
            "format": VERDICT_FORMAT,
            "hypothesis": str(self.hypothesis),
            "claim": str(self.claim),
            "prediction": str(self.prediction),
            "decision": str(self.decision),
            "alpha": _jsonable(_to_float(self.alpha)),
            "alternative": str(self.alternative),
            "effect": str(self.effect),
            "estimate": _jsonable(_to_float(self.estimate)),
            "ci": [_jsonable(_to_float(c)) for c in ci],
            "ci_level": _jsonable(level),
            "p_value": _jsonable(_to_float(self.p_value)),
            "p_adjusted": _jsonable(_to_opt_float(self.p_adjusted)),
            "statistic": _jsonable(_to_float(self.statistic)),
            "model": str(self.model),
            "reason": str(self.reason),
            "family": [str(f) for f in self.family],
            "deciding": self.deciding.to_dict() if self.deciding is not None else None,
            "pooling": str(self.pooling),
            "experiments": [row.to_dict() for row in self.experiments],
            "pooled": self.pooled.to_dict() if self.pooled is not None else None,
            "tables": _jsonable({str(k): list(v) for k, v in (self.tables or {}).items()}),
            "summaries": {str(k): str(v) for k, v in (self.summaries or {}).items()},
            "warnings": [str(w) for w in self.warnings],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        """Rebuild a Verdict from :meth:`to_dict` output (or parsed JSON)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a verdict must be a JSON object, got {type(data).__name__}")
        missing = [k for k in ("hypothesis", "decision") if k not in data]
        if missing:
            raise ValueError(f"not a kdtheory verdict: missing key(s) {', '.join(missing)}")
        decision = data["decision"]
        if decision not in DECISIONS:
            raise ValueError(
                f"verdict decision must be one of {', '.join(DECISIONS)}; got {decision!r}"
            )
        ci = data.get("ci") or [None, None]
        if len(ci) != 2:
            raise ValueError(f"verdict 'ci' must have two bounds; got {ci!r}")
        pooled = data.get("pooled")
        return cls(
            hypothesis=str(data["hypothesis"]),
            claim=str(data.get("claim", "")),
            prediction=str(data.get("prediction", "")),
            decision=decision,
            alpha=_to_float(data.get("alpha")),
            effect=str(data.get("effect", "")),
            estimate=_to_float(data.get("estimate")),
            ci=(_to_float(ci[0]), _to_float(ci[1])),
            p_value=_to_float(data.get("p_value")),
            model=str(data.get("model", "")),
            statistic=_to_float(data.get("statistic")),
            alternative=str(data.get("alternative", "two-sided")),
            reason=str(data.get("reason", "")),
            experiments=[EffectRow.from_dict(r) for r in data.get("experiments") or []],
            pooled=EffectRow.from_dict(pooled) if pooled is not None else None,
            tables={str(k): [dict(r) for r in v] for k, v in (data.get("tables") or {}).items()},
            summaries={str(k): str(v) for k, v in (data.get("summaries") or {}).items()},
            p_adjusted=_to_opt_float(data.get("p_adjusted")),
            family=[str(f) for f in data.get("family") or []],
            warnings=[str(w) for w in data.get("warnings") or []],
            deciding=DecidingTest.from_dict(data.get("deciding")),
            pooling=str(data.get("pooling") or ""),
        )

    def as_json(self, indent: int | None = 2) -> str:
        """Strict JSON (no NaN literals)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> Verdict:
        return cls.from_dict(json.loads(text))

    def __eq__(self, other: object) -> bool:  # NaN-aware: equal when the JSON forms are
        if not isinstance(other, Verdict):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    # ---------------------------------------------------------------- renderings

    def as_text(self, details: bool = False, width: int = 100) -> str:
        """A readable terminal rendering: the headline and the per-experiment table.

        ``details=True`` adds the extra numbers, further tables and fitted models' summaries.
        """
        return _verdict_text(self, details=details, width=width)

    def __str__(self) -> str:
        return self.as_text()

    def as_markdown(self, details: bool = False) -> str:
        """GitHub-flavoured Markdown: a heading, a key/value table and the experiments table."""
        return _verdict_markdown(self, details=details)

    def as_latex(self) -> str:
        """A booktabs ``tabular`` (``\\begin{tabular}`` ... ``\\end{tabular}``) of the
        per-experiment rows and the pooled row; needs ``\\usepackage{booktabs}``."""
        return _latex_tabular([self], hypothesis_column=False)

    def as_latex_document(self, details: bool = True) -> str:
        """A complete, compilable LaTeX ``article`` with this verdict."""
        return latex_document([self], details=details)

    def as_csv(self) -> str:
        """CSV with a header line: one row per experiment, the pooled row, and (when neither
        carries the verdict's key numbers) a ``verdict`` row."""
        return _csv([self])

    def as_html(self, details: bool = True) -> str:
        """A self-contained HTML fragment (used by Jupyter through ``_repr_html_``)."""
        return _verdict_html(self, details=details)

    def _repr_html_(self) -> str:
        return self.as_html()


# --------------------------------------------------------------------------------------------
# module-level functions on lists of verdicts


def verdicts_to_json(verdicts: Iterable[Verdict], indent: int | None = 2) -> str:
    """A JSON array of verdicts."""
    return json.dumps([v.to_dict() for v in verdicts], indent=indent, allow_nan=False)


def verdicts_from_json(text: str) -> list[Verdict]:
    """Parse a JSON array of verdicts (a single verdict object gives a list of one)."""
    data = json.loads(text)
    if isinstance(data, Mapping) and "verdicts" in data:  # a report's verdicts.json
        data = data["verdicts"]
    if isinstance(data, Mapping):
        return [Verdict.from_dict(data)]
    if not isinstance(data, list):
        raise ValueError("expected a JSON array of verdicts or one verdict object")
    return [Verdict.from_dict(d) for d in data]


def render(
    verdicts: Verdict | Sequence[Verdict], fmt: str = "text", *, details: bool = False
) -> str:
    """Render one verdict or a family of verdicts.

    Parameters
    ----------
    verdicts : Verdict or sequence of Verdict
    fmt : {"text", "json", "markdown", "latex", "latex-document", "csv", "html"}
        For a list: ``json`` gives a JSON array; ``csv`` one table with a ``hypothesis``
        column; ``latex`` one booktabs table with a row per hypothesis x experiment; ``text``
        and ``markdown`` a family summary table followed by each verdict. A single Verdict
        renders exactly as its own ``as_*`` method (``json`` gives one object).
    details : bool
        Text/Markdown/HTML: add extra numbers, tables and model summaries.
    """
    fmt = {"md": "markdown", "tex": "latex"}.get(fmt, fmt)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    single = isinstance(verdicts, Verdict)
    items: list[Verdict] = [verdicts] if single else list(verdicts)  # type: ignore[list-item]
    if fmt == "json":
        return items[0].as_json() if single else verdicts_to_json(items)
    if fmt == "csv":
        return _csv(items)
    if fmt == "latex":
        return _latex_tabular(items, hypothesis_column=not single)
    if fmt == "latex-document":
        return latex_document(items, details=details)
    if fmt == "html":
        if single:
            return items[0].as_html(details=details)
        parts = [_family_html(items)] if len(items) > 1 else []
        parts += [v.as_html(details=details) for v in items]
        return "\n".join(parts)
    if fmt == "markdown":
        if single or len(items) == 1:
            return items[0].as_markdown(details=details) if items else ""
        return "\n\n".join(
            [_family_markdown(items)] + [v.as_markdown(details=details) for v in items]
        )
    # text
    if single or len(items) == 1:
        return items[0].as_text(details=details) if items else ""
    rule = "=" * 100
    return f"\n\n{rule}\n\n".join(
        [_family_text(items)] + [v.as_text(details=details) for v in items]
    )


# --------------------------------------------------------------------------------------------
# formatting helpers


def fmt_num(x: Any, digits: int = 4) -> str:
    """A number for display: 4 significant digits, ``n/a`` for NaN/None."""
    v = _to_float(x)
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{digits}g}"


def fmt_p(p: Any) -> str:
    """A p-value for display: 4 decimals, ``<0.0001`` below that, ``n/a`` for NaN/None."""
    v = _to_float(p)
    if math.isnan(v):
        return "n/a"
    if v < 1e-4:
        return "<0.0001"
    return f"{v:.4f}"


def p_text(p: Any) -> str:
    """``"p = 0.0249"``, ``"p < 0.0001"`` or ``"p = n/a"``: :func:`fmt_p` in running text."""
    return f"p {_p_eq(p)}"


def _pct(level: float) -> str:
    """``0.995833`` -> ``"99.58%"``: a CI level, at most 4 significant digits."""
    return f"{100.0 * float(level):.4g}%"


def fmt_ci(lo: Any, hi: Any) -> str:
    if math.isnan(_to_float(lo)) and math.isnan(_to_float(hi)):
        return "n/a"
    return f"[{fmt_num(lo)}, {fmt_num(hi)}]"


@dataclass
class _Row:
    """One line of a rendered effects table."""

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


def _row_level(v: Verdict, r: EffectRow) -> float:
    if r.deciding is not None and math.isfinite(_to_float(r.deciding.ci_level)):
        return float(r.deciding.ci_level)
    return v.ci_level


def _levels(rows: Sequence[_Row]) -> list[float]:
    """The distinct CI levels of rows that have a CI."""
    out: list[float] = []
    for r in rows:
        lvl = _to_float(r.ci_level)
        has_ci = not math.isnan(_to_float(r.ci_low))
        if has_ci and not math.isnan(lvl) and not any(math.isclose(lvl, o) for o in out):
            out.append(lvl)
    return out


def _ci_pair(v: Verdict) -> tuple[float, float]:
    return tuple(v.ci) if v.ci is not None else (NAN, NAN)  # type: ignore[return-value]


def _rows(v: Verdict) -> list[_Row]:
    rows = [
        _Row(
            v.hypothesis,
            "experiment",
            r.label,
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
        for r in v.experiments
    ]
    if v.pooled is not None:
        p = v.pooled
        rows.append(
            _Row(
                v.hypothesis,
                "pooled",
                p.label or "pooled",
                p.estimate,
                p.ci_low,
                p.ci_high,
                p.statistic,
                p.p_value,
                p.n,
                p.decision,
                dict(p.extra or {}),
                unit=p.unit,
                ci_level=_row_level(v, p),
                test=p.deciding.name if p.deciding is not None else "",
            )
        )
    if v.pooled is None and len(v.experiments) != 1:
        ci = _ci_pair(v)
        rows.append(
            _Row(
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


def _wrap(label: str, text: str, width: int, label_width: int = 12) -> list[str]:
    text = " ".join(str(text).split()) if text else ""
    if not text:
        return []
    lines = textwrap.wrap(text, width=max(20, width - label_width - 1)) or [""]
    out = [f"{label:<{label_width}} {lines[0]}"]
    out += [f"{'':<{label_width}} {line}" for line in lines[1:]]
    return out


def _text_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    widths = [len(h) for h in headers]
    for r in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, r, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), sep] + [line(r) for r in rows])


def _p_eq(p: Any) -> str:
    s = fmt_p(p)
    return f"< {s[1:]}" if s.startswith("<") else f"= {s}"


def _test_line(v: Verdict) -> str:
    parts = [f"statistic = {fmt_num(v.statistic)}", f"p {_p_eq(v.p_value)}"]
    if v.deciding is not None:
        parts.insert(0, f"deciding test: {v.deciding.describe()}")
    if v.p_adjusted is not None:
        fam = f" (family of {len(v.family)})" if v.family else ""
        parts.append(f"Holm p {_p_eq(v.p_adjusted)}{fam}")
    parts.append(f"alpha = {v.alpha:g}")
    parts.append(f"alternative: {v.alternative}")
    return ", ".join(parts)


def _scalar_extra_keys(rows: Iterable[_Row]) -> list[str]:
    keys: list[str] = []
    for r in rows:
        for k, val in r.extra.items():
            if k not in keys and (val is None or isinstance(val, (bool, int, float, str))):
                keys.append(k)
            elif k not in keys and hasattr(val, "item") and getattr(val, "ndim", 1) == 0:
                keys.append(k)
    return keys


def _fmt_any(val: Any) -> str:
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


def _records_table(records: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    headers: list[str] = []
    for rec in records:
        for k in rec:
            if k not in headers:
                headers.append(str(k))
    body = [[_fmt_any(rec.get(h)) for h in headers] for rec in records]
    return headers, body


# ---------------------------------------------------------------- text


_EFFECT_HEADERS = ["experiment", "estimate", "CI low", "CI high", "statistic", "p", "n", "decision"]


def _row_cells(r: _Row) -> list[str]:
    label = r.label + (" (RE)" if r.kind == "pooled" and r.label == "pooled" else "")
    return [
        label,
        fmt_num(r.estimate),
        fmt_num(r.ci_low),
        fmt_num(r.ci_high),
        fmt_num(r.statistic),
        fmt_p(r.p_value),
        "" if r.n is None else f"{r.n} {r.unit}",
        r.shown_decision,
    ]


def info_lines(v: Verdict, test: str | None = None) -> list[tuple[str, str]]:
    """The verdict's labelled lines (claim, prediction, effect, estimate, test, model, reason).

    Shared by every rendering of a verdict; ``test`` replaces the default test line.
    """
    return [
        ("Claim", v.claim),
        ("Prediction", v.prediction),
        ("Effect", v.effect),
        ("Estimate", f"{fmt_num(v.estimate)}, {v.ci_note} {fmt_ci(*_ci_pair(v))}"),
        ("Test", _test_line(v) if test is None else test),
        ("Model", v.model),
        ("Reason", v.reason),
    ] + [("Warning", w) for w in v.warnings]


_Table = tuple[list[str], list[list[str]], set[int]]  # headers, body, right-aligned columns


def _effects_table(
    rows: Sequence[_Row],
    cell: Callable[[str], str] = str,
    mark_key: Callable[[list[str]], list[str]] | None = None,
) -> _Table:
    """The per-experiment effects table; a Holm column when the key row has an adjusted p.

    ``cell`` escapes each cell for the format; ``mark_key`` highlights the key row's cells.
    """
    has_holm = any(r.key and r.p_adjusted is not None for r in rows)
    mixed = len(_levels(rows)) > 1
    tests = len({r.test for r in rows}) > 1
    headers = list(_EFFECT_HEADERS)
    body = []
    for r in rows:
        cells = [cell(c) for c in _row_cells(r)]
        if r.key and mark_key is not None:
            cells = mark_key(cells)
        if has_holm:
            holm_p = cell(fmt_p(r.p_adjusted)) if r.key and r.p_adjusted is not None else ""
            cells = cells[:6] + [holm_p] + cells[6:]
        if mixed:
            lvl = _to_float(r.ci_level)
            cells = cells[:4] + [cell("" if math.isnan(lvl) else _pct(lvl))] + cells[4:]
        if tests:
            cells = cells + [cell(r.test)]
        body.append(cells)
    if has_holm:
        headers = headers[:6] + ["Holm p"] + headers[6:]
    if mixed:
        headers = headers[:4] + ["CI level"] + headers[4:]
    if tests:
        headers = headers + ["deciding test"]
    right = set(range(1, len(headers) - (2 if tests else 1)))
    return headers, body, right


def _ci_words(v: Verdict, rows: Sequence[_Row]) -> str:
    """The table's CI level, stated once (or where it is stated when rows differ)."""
    levels = _levels(rows)
    if len(levels) == 1:
        return f"{_pct(levels[0])} two-sided"
    if not levels:
        return v.ci_note
    return "two-sided, at the level in the 'CI level' column (Holm-adjusted where the p is)"


def _pooling_words(v: Verdict) -> str:
    """One sentence on the pooled row: method, tau² and I²; empty without a pooled row."""
    if v.pooled is None:
        return ""
    ex = v.pooled.extra or {}
    tau2, i2 = ex.get("tau2"), ex.get("i2")
    parts = [f"Pooled row: {v.pooling or 'random-effects'}"]
    if tau2 is not None or i2 is not None:
        parts.append(f"tau² = {fmt_num(tau2)}, I² = {fmt_num(i2)} (of the key effect)")
    return "; ".join(parts) + "."


def _further_numbers(rows: Sequence[_Row], cell: Callable[[str], str] = str) -> _Table | None:
    """The rows' scalar extra numbers: one line per number, one column per row (stays narrow)."""
    keys = _scalar_extra_keys(rows)
    if not keys:
        return None
    body = [[cell(k)] + [cell(_fmt_any(r.extra.get(k))) for r in rows] for k in keys]
    return ["number"] + [r.label for r in rows], body, set(range(1, len(rows) + 1))


def _family_table(
    items: Sequence[Verdict],
    cell: Callable[[str], str] = str,
    decision: Callable[[str], str] | None = None,
) -> _Table:
    """One line per verdict of a family: decision, deciding test, estimate, CI (with its level),
    p and Holm p."""
    body = [
        [
            cell(v.hypothesis),
            decision(str(v.decision)) if decision is not None else cell(str(v.decision)),
            cell(v.deciding.name if v.deciding is not None else ""),
            cell(fmt_num(v.estimate)),
            cell(fmt_ci(*_ci_pair(v))),
            cell(_pct(v.ci_level) if v.available and not math.isnan(v.ci_level) else ""),
            cell(fmt_p(v.p_value)),
            cell(fmt_p(v.p_adjusted)) if v.p_adjusted is not None else "",
        ]
        for v in items
    ]
    headers = ["hypothesis", "decision", "deciding test", "estimate", "CI", "CI level", "p"]
    return headers + ["Holm p"], body, {3, 5, 6, 7}


def _verdict_text(v: Verdict, details: bool, width: int) -> str:
    head = f"{v.hypothesis}: {str(v.decision).upper()}"
    lines = [head, "=" * min(width, max(len(head), 40))]
    for label, value in info_lines(v):
        lines += _wrap(label, value, width)
    rows = _rows(v)
    if v.experiments or v.pooled is not None:
        lines.append("")
        lines.append(
            f"Per experiment. CIs: {_ci_words(v, rows)}. n: seeds per experiment, experiments "
            "pooled. The last row carries the verdict's decision."
        )
        lines.append(_text_table(*_effects_table(rows)))
        if v.pooled is not None:
            lines += textwrap.wrap(_pooling_words(v), width=width)
    if details:
        further = _further_numbers(rows)
        if further is not None:
            lines += ["", "Further numbers", _text_table(*further)]
        for name, records in (v.tables or {}).items():
            if not records:
                continue
            headers, body = _records_table(records)
            lines += ["", f"Table: {name}", _text_table(headers, body, set())]
        for name, summary in (v.summaries or {}).items():
            lines += ["", f"Model summary: {name}", str(summary).rstrip()]
    return "\n".join(lines)


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


def _family_text(items: Sequence[Verdict]) -> str:
    return f"{family_title(items)}\n\n" + _text_table(*_family_table(items))


# ---------------------------------------------------------------- markdown


#: what makes Markdown text inert: raw HTML (``<`` before a letter, ``/``, ``!`` or ``?``, which
#: also starts autolinks) and inline links or images (``](``); code spans are left as they are
_MD_ACTIVE = re.compile(r"(?P<code>(`+)[\s\S]*?(?<!`)\2(?!`))|<(?=[A-Za-z/!?])|\]\(")


def md_inert(text: str) -> str:
    """``text`` with raw HTML and links escaped, so Markdown shows it as written.

    Store attributes (experiment ids, dataset specs, method names) reach Markdown reports;
    like ``index.html``, which escapes them, ``report.md`` must not pass HTML through.
    ``<`` becomes ``&lt;`` where it could open a tag, and ``](`` becomes ``\\](``; inside
    code spans nothing changes (HTML is inert there).
    """

    def sub(m: re.Match[str]) -> str:
        if m.group("code"):
            return m.group(0)
        return "&lt;" if m.group(0) == "<" else "\\]("

    return _MD_ACTIVE.sub(sub, text)


def _md(text: Any) -> str:
    s = " ".join(str(text).split())
    return md_inert(s.replace("\\", "\\\\").replace("|", "\\|"))


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    head = "| " + " | ".join(_md(h) for h in headers) + " |"
    align = "|" + "|".join("---:" if i in right else "---" for i in range(len(headers))) + "|"
    body = ["| " + " | ".join(_md(c) for c in r) + " |" for r in rows]
    return "\n".join([head, align] + body)


def _verdict_markdown(v: Verdict, details: bool) -> str:
    out = [f"### {_md(v.hypothesis)}: **{_md(v.decision)}**", ""]
    out.append(_md_table(["", ""], [[f"**{k}**", str(val)] for k, val in info_lines(v)], set()))
    rows = _rows(v)
    if v.experiments or v.pooled is not None:

        def bold_ends(cells: list[str]) -> list[str]:
            return [f"**{cells[0]}**"] + cells[1:-1] + [f"**{cells[-1]}**"]

        out += ["", _md_table(*_effects_table(rows, mark_key=bold_ends))]
        out += [
            "",
            f"_CIs: {_ci_words(v, rows)}. n: seeds per experiment, experiments pooled. Last row: "
            f"the verdict's decision._",
        ]
        if v.pooled is not None:
            out += ["", f"_{_pooling_words(v)}_"]
    if details:
        further = _further_numbers(rows)
        if further is not None:
            out += ["", "**Further numbers**", "", _md_table(*further)]
        for name, records in (v.tables or {}).items():
            if records:
                headers, body = _records_table(records)
                out += ["", f"**Table: {_md(name)}**", "", _md_table(headers, body, set())]
        for name, summary in (v.summaries or {}).items():
            out += ["", f"**Model summary: {_md(name)}**", "", "```", str(summary).rstrip(), "```"]
    return "\n".join(out)


def _family_markdown(items: Sequence[Verdict]) -> str:
    table = _family_table(items, decision=lambda d: f"**{d}**")
    return f"## Verdicts\n\n{family_title(items)}.\n\n" + _md_table(*table)


# ---------------------------------------------------------------- LaTeX

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    # common non-ASCII characters that pdflatex's utf8 input cannot typeset by default
    "\u2212": "$-$",
    "\u00d7": r"$\times$",
    "\u2264": r"$\leq$",
    "\u2265": r"$\geq$",
    "\u2248": r"$\approx$",
    "\u221a": r"$\surd$",
    "\u2013": "--",
    "\u2014": "---",
    "\u2026": r"\ldots{}",
    "\u00b2": r"$^2$",
    "\u00b1": r"$\pm$",
    "\u221d": r"$\propto$",
    "\u2016": r"$\|$",
    "\u03b1": r"$\alpha$",
    "\u03b2": r"$\beta$",
    "\u03b5": r"$\varepsilon$",
    "\u03ba": r"$\kappa$",
    "\u03bb": r"$\lambda$",
    "\u03bc": r"$\mu$",
    "\u03c3": r"$\sigma$",
    "\u03c4": r"$\tau$",
}
_LATEX_RE = re.compile("|".join(re.escape(k) for k in _LATEX_SPECIAL))


def latex_escape(text: Any) -> str:
    """Escape LaTeX special characters (``_ % & $ # { } ~ ^ \\``) and common Unicode symbols."""
    return _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group(0)], str(text))


def _tex_num(x: Any) -> str:
    s = fmt_num(x)
    if s == "n/a":
        return "--"
    return "$-$" + s[1:] if s.startswith("-") else s


def _tex_p(p: Any) -> str:
    s = fmt_p(p)
    if s == "n/a":
        return "--"
    return "$<$0.0001" if s.startswith("<") else s


def _tex_ci(lo: Any, hi: Any) -> str:
    if math.isnan(_to_float(lo)) and math.isnan(_to_float(hi)):
        return "--"
    return f"[{_tex_num(lo)}, {_tex_num(hi)}]"


def _latex_tabular(items: Sequence[Verdict], hypothesis_column: bool) -> str:
    levels = {v.ci_level for v in items if v.available} or {v.ci_level for v in items}
    uniform = len(levels) == 1 and not math.isnan(next(iter(levels)))
    ci_head = f"{round(100 * next(iter(levels)), 6):g}\\% CI" if uniform else "CI"
    has_holm = any(v.p_adjusted is not None for v in items)
    headers = (["Hypothesis"] if hypothesis_column else []) + ["Experiment", "Estimate", ci_head]
    headers += ["Statistic", "$p$"] + (["Holm $p$"] if has_holm else []) + ["$n$", "Decision"]
    spec = ("l" if hypothesis_column else "") + "lrrr" + "r" + ("r" if has_holm else "") + "rl"
    lines = [
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(headers) + " \\\\",
        "\\midrule",
    ]
    for i, v in enumerate(items):
        if i > 0:
            lines.append("\\midrule")
        rows = _rows(v)
        for j, r in enumerate(rows):
            label = latex_escape(r.label)
            if r.kind == "pooled":
                label = f"\\emph{{{label}}}"
            ci = _tex_ci(r.ci_low, r.ci_high)
            if not uniform and ci != "--" and not math.isnan(v.ci_level):
                ci += f"$_{{{round(100 * v.ci_level, 6):g}\\%}}$"
            cells = [latex_escape(v.hypothesis) if j == 0 else ""] if hypothesis_column else []
            cells += [label, _tex_num(r.estimate), ci, _tex_num(r.statistic), _tex_p(r.p_value)]
            if has_holm:
                cells.append(_tex_p(r.p_adjusted) if r.key and r.p_adjusted is not None else "")
            decision = latex_escape(r.shown_decision)
            cells += [
                "" if r.n is None else f"{r.n} {latex_escape(r.unit)}",
                f"\\textbf{{{decision}}}" if r.key else decision,
            ]
            if r.key and j > 0 and r.kind != "experiment" and len(rows) > 1:
                first = 2 if hypothesis_column else 1
                lines.append(f"\\cmidrule(l){{{first}-{len(headers)}}}")
            lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines)


def latex_document(items: Sequence[Verdict], details: bool = True) -> str:
    """A complete LaTeX ``article`` (booktabs) with every verdict of ``items``."""
    from kdtheory.report.latex import latex_document as document
    from kdtheory.report.latex import verbatim_block

    body: list[str] = []
    for v in items:
        body.append(
            f"\\section*{{Hypothesis \\texttt{{{latex_escape(v.hypothesis)}}}: "
            f"{latex_escape(v.decision)}}}"
        )
        body.append("\\begin{description}")
        for key, val in info_lines(v):
            if val:
                body.append(f"  \\item[{key}] {latex_escape(val)}")
        body.append("\\end{description}")
        body += [
            "\\begin{table}[ht]",
            "\\centering",
            "\\small",
            _latex_tabular([v], hypothesis_column=False),
            f"\\caption{{{latex_escape(v.hypothesis)}: per-experiment effects and the pooled "
            f"random-effects estimate ({latex_escape(v.ci_note)}).}}",
            "\\end{table}",
        ]
        if details:
            for name, summary in (v.summaries or {}).items():
                body += verbatim_block(f"Model summary: {name}", str(summary), "scriptsize", None)
        body.append("")
    return document(body)


# ---------------------------------------------------------------- CSV

_CSV_COLUMNS = [
    "hypothesis",
    "row",
    "experiment",
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


def _csv_value(val: Any) -> str:
    if val is None:
        return ""
    if isinstance(val, bool):
        return str(val).lower()
    if isinstance(val, float) or hasattr(val, "item"):
        f = _to_float(val)
        return "" if math.isnan(f) else repr(f)
    return str(val)


def _csv(items: Sequence[Verdict]) -> str:
    all_rows = [(v, r) for v in items for r in _rows(v)]
    extra_keys = _scalar_extra_keys(r for _, r in all_rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(_CSV_COLUMNS + [f"extra_{k}" for k in extra_keys])
    for v, r in all_rows:
        writer.writerow(
            [
                v.hypothesis,
                r.kind,
                r.label,
                _csv_value(_to_float(r.estimate)),
                _csv_value(_to_float(r.ci_low)),
                _csv_value(_to_float(r.ci_high)),
                _csv_value(v.ci_level),
                _csv_value(_to_float(r.statistic)),
                _csv_value(_to_float(r.p_value)),
                "" if r.n is None else str(r.n),
                "" if r.n is None else r.unit,
                r.decision,
                v.decision,
                _csv_value(v.p_adjusted),
                _csv_value(_to_float(v.alpha)),
                v.alternative,
            ]
            + [_csv_value(r.extra.get(k)) for k in extra_keys]
        )
    return buf.getvalue()


# ---------------------------------------------------------------- HTML

_DECISION_COLOURS = {"supported": "#1a7f37", "rejected": "#cf222e", "inconclusive": "#9a6700"}


def _h(text: Any) -> str:
    return html.escape(str(text))


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    def cell(tag: str, i: int, c: str) -> str:
        align = "right" if i in right else "left"
        return f'<{tag} style="text-align:{align};padding:2px 8px">{c}</{tag}>'

    head = "<tr>" + "".join(cell("th", i, _h(h)) for i, h in enumerate(headers)) + "</tr>"
    body = "".join(
        "<tr>" + "".join(cell("td", i, c) for i, c in enumerate(r)) + "</tr>" for r in rows
    )
    return (
        '<table style="border-collapse:collapse;border-top:2px solid;border-bottom:2px solid">'
        f'<thead style="border-bottom:1px solid">{head}</thead><tbody>{body}</tbody></table>'
    )


def _verdict_html(v: Verdict, details: bool) -> str:
    colour = _DECISION_COLOURS.get(str(v.decision), "inherit")
    parts = [
        '<div class="kdtheory-verdict">',
        f"<h4><code>{_h(v.hypothesis)}</code>: "
        f'<span style="color:{colour}">{_h(v.decision)}</span></h4>',
    ]
    parts.append(
        "<table>"
        + "".join(
            f'<tr><th style="text-align:left;vertical-align:top;padding:2px 8px">{_h(k)}</th>'
            f'<td style="text-align:left;padding:2px 8px">{_h(val)}</td></tr>'
            for k, val in info_lines(v)
            if val
        )
        + "</table>"
    )
    rows = _rows(v)
    if v.experiments or v.pooled is not None:

        def bold_decision(cells: list[str]) -> list[str]:
            return cells[:-1] + [f"<b>{cells[-1]}</b>"]

        parts.append(_html_table(*_effects_table(rows, cell=_h, mark_key=bold_decision)))
        parts.append(
            f"<p><small>CIs: {_h(_ci_words(v, rows))}. {_h(_pooling_words(v))}</small></p>"
        )
    if details:
        further = _further_numbers(rows, cell=_h)
        if further is not None:
            parts.append(
                "<details><summary>Further numbers</summary>" + _html_table(*further) + "</details>"
            )
        for name, records in (v.tables or {}).items():
            if records:
                headers, body = _records_table(records)
                parts.append(
                    f"<details><summary>Table: {_h(name)}</summary>"
                    + _html_table(headers, [[_h(c) for c in r] for r in body], set())
                    + "</details>"
                )
        for name, summary in (v.summaries or {}).items():
            parts.append(
                f"<details><summary>Model summary: {_h(name)}</summary>"
                f"<pre>{_h(str(summary).rstrip())}</pre></details>"
            )
    parts.append("</div>")
    return "\n".join(parts)


def _family_html(items: Sequence[Verdict]) -> str:
    def coloured(decision: str) -> str:
        colour = _DECISION_COLOURS.get(decision, "inherit")
        return f'<span style="color:{colour}">{_h(decision)}</span>'

    return "<h3>Verdicts</h3>" + _html_table(*_family_table(items, cell=_h, decision=coloured))
