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

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kdtheory.report.format import fmt_pct
from kdtheory.report.format import to_float as _to_float

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
    titles : dict of str to str
        Display title of each experiment id (:func:`kdtheory.store.titles.experiment_titles`),
        set when the verdict is made from a store: tables, headings and text meant for readers
        show these; JSON and CSV keep the ids.
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
    titles: dict[str, str] = field(default_factory=dict)

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
        from kdtheory.stats import ci_level

        try:
            return ci_level(self.alternative, self.alpha)
        except ValueError:
            return NAN

    @property
    def ci_note(self) -> str:
        """Words describing :attr:`ci`, e.g. ``"95% two-sided CI"``."""
        if self.deciding is not None and math.isfinite(_to_float(self.deciding.ci_level)):
            return f"{fmt_pct(self.deciding.ci_level, digits=4)} two-sided CI"
        from kdtheory.stats import ci_level_note

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
        lo, hi = tuple(self.ci) if self.ci is not None else (NAN, NAN)
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
            "titles": {str(k): str(v) for k, v in (self.titles or {}).items()},
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
            titles={str(k): str(v) for k, v in (data.get("titles") or {}).items()},
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
    # (statsmodels ``Summary`` style: the renderers live in kdtheory.report and are imported
    # when called, so importing this module stays light)

    def as_text(self, details: bool = False, width: int = 100) -> str:
        """A readable terminal rendering: the headline and the per-experiment table.

        ``details=True`` adds the extra numbers, further tables and fitted models' summaries.
        """
        from kdtheory.report.verdict_text import verdict_text

        return verdict_text(self, details=details, width=width)

    def __str__(self) -> str:
        return self.as_text()

    def as_markdown(self, details: bool = False) -> str:
        """GitHub-flavoured Markdown: a heading, a key/value table and the experiments table."""
        from kdtheory.report.verdict_markdown import verdict_markdown

        return verdict_markdown(self, details=details)

    def as_latex(self) -> str:
        """A booktabs ``tabular`` (``\\begin{tabular}`` ... ``\\end{tabular}``) of the
        per-experiment rows and the pooled row; needs ``\\usepackage{booktabs}``."""
        from kdtheory.report.verdict_latex import verdicts_tabular

        return verdicts_tabular([self], hypothesis_column=False)

    def as_latex_document(self, details: bool = True) -> str:
        """A complete, compilable LaTeX ``article`` with this verdict."""
        from kdtheory.report.verdict_latex import verdicts_document

        return verdicts_document([self], details=details)

    def as_csv(self) -> str:
        """CSV with a header line: one row per experiment, the pooled row, and (when neither
        carries the verdict's key numbers) a ``verdict`` row."""
        from kdtheory.report.verdict_csv import verdicts_csv

        return verdicts_csv([self])

    def as_html(self, details: bool = True) -> str:
        """A self-contained HTML fragment (used by Jupyter through ``_repr_html_``)."""
        from kdtheory.report.verdict_html import verdict_html

        return verdict_html(self, details=details)

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
    """Render one verdict or a family of verdicts in ``fmt``: see
    :func:`kdtheory.report.render.render`."""
    from kdtheory.report.render import render as render_verdicts

    return render_verdicts(verdicts, fmt, details=details)


# The formatters every rendering shares, importable from here as before.
from kdtheory.report.format import fmt_ci as fmt_ci  # noqa: E402
from kdtheory.report.format import fmt_num as fmt_num  # noqa: E402
from kdtheory.report.format import fmt_p as fmt_p  # noqa: E402
from kdtheory.report.format import latex_escape as latex_escape  # noqa: E402
from kdtheory.report.format import md_inert as md_inert  # noqa: E402
from kdtheory.report.format import p_text as p_text  # noqa: E402
