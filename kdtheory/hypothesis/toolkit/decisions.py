"""The deciding test, intersection-union, rows by keyword and test numbers in words."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from kdtheory.hypothesis.toolkit.effects import Effect
from kdtheory.hypothesis.toolkit.options import NAN
from kdtheory.hypothesis.toolkit.results import Ruling
from kdtheory.hypothesis.toolkit.text import fmt
from kdtheory.hypothesis.verdict import DecidingTest, EffectRow
from kdtheory.stats import (
    ci_at_level,
    ci_level,
    holm_ci_level,
)


def deciding(
    e: Effect | None,
    name: str,
    outcome: str,
    kind: str,
    alpha: float,
    *,
    p: float | None = None,
    p_raw: float | None = None,
    null: float = 0.0,
    low: float = NAN,
    high: float = NAN,
) -> tuple[Effect, DecidingTest]:
    """The numbers a row shows for its deciding test, and the test.

    Parameters
    ----------
    e : Effect or None
        The test's estimate, se, CI (at the unadjusted level) and p-value.
    name, outcome, kind
        See :class:`kdtheory.hypothesis.verdict.DecidingTest`.
    alpha : float
    p : float, optional
        The decision's p-value when it is not ``e.p_value`` (an intersection-union p, or a
        Holm-adjusted one).
    p_raw : float, optional
        With a Holm-adjusted ``p``: the member's unadjusted p-value; the CI is then widened to
        the level that agrees with ``p`` (:func:`kdtheory.stats.holm_ci_level`).
    null, low, high
        The null value or the band.
    """
    alternative = "two-sided" if kind == "two-sided" else "greater"
    level = ci_level(alternative, alpha)
    if e is None:
        e = Effect(NAN, NAN, NAN, NAN, NAN)
    p_shown = e.p_value if p is None else float(p)
    lo, hi = e.ci_low, e.ci_high
    if p_raw is not None and p is not None:
        level = holm_ci_level(float(p_raw), float(p), alternative, alpha)
        lo, hi = ci_at_level(e.estimate, e.se, e.df, level)
        if e.se == 0 and np.isfinite(e.estimate):
            lo = hi = e.estimate
    shown = Effect(e.estimate, e.se, lo, hi, p_shown, e.statistic, e.n, e.df)
    test = DecidingTest(name, outcome, kind, null=null, low=low, high=high, ci_level=level)
    return shown, test


def intersection_union_p(*effects: Effect | None) -> float:
    """The p-value of "every one of these effects is significant": the largest p.

    An intersection-union test needs no multiplicity correction. None effects (not tested in
    this experiment) are left out; a NaN p makes the result NaN (one test without a p cannot be
    passed), and so does having no effect at all.
    """
    ps = [float(e.p_value) for e in effects if e is not None]
    if not ps or not all(np.isfinite(ps)):
        return NAN
    return max(ps)


def intersection_union(
    shown: Effect, parts: Sequence[Effect | None], what: str, alpha: float
) -> tuple[Effect, DecidingTest]:
    """The deciding test of "every one of ``parts`` is significant": outcome ``"supported"``,
    p :func:`intersection_union_p` of ``parts``.

    Parameters
    ----------
    shown : Effect
        The effect whose estimate and CI the row shows (the key effect, usually among
        ``parts``); its alternative is the test's kind.
    parts : sequence of Effect or None
        The tests that must all be significant (None: not tested, left out).
    what : str
        The parts in words; the test is named ``"intersection-union: <what>"``.
    alpha : float

    Returns
    -------
    (Effect, DecidingTest)
        As :func:`deciding`.
    """
    return deciding(
        shown,
        f"intersection-union: {what}",
        "supported",
        shown.alternative,
        alpha,
        p=intersection_union_p(*parts),
    )


def directional_ruling(
    claimed: Effect,
    opposite: Effect,
    alpha: float,
    name: str,
    numbers: Mapping[str, Any] | None = None,
) -> Ruling:
    """The rule of a claim that one effect lies on one side of its null.

    Parameters
    ----------
    claimed : Effect
        The effect tested in the claim's direction (``alternative`` ``"greater"`` or
        ``"less"``).
    opposite : Effect
        The same effect tested the other way.
    alpha : float
    name : str
        What the effect is, e.g. ``"KD − label accuracy"`` (names the deciding test).
    numbers : mapping, optional
        Further numbers for the rows (:attr:`Ruling.numbers`).

    Returns
    -------
    Ruling
        ``supported`` when ``claimed`` is significant, ``rejected`` when ``opposite`` is,
        ``inconclusive`` otherwise (showing ``claimed``); each shows its deciding test's numbers.
    """
    sign = {"greater": ">", "less": "<"}
    for e in (claimed, opposite):
        if e.alternative not in sign:
            raise ValueError(f"directional_ruling needs one-sided effects; got {e.alternative!r}")
    decision, e, outcome = "inconclusive", claimed, "supported"
    if claimed.sig(alpha):
        decision = "supported"
    elif opposite.sig(alpha):
        decision, e, outcome = "rejected", opposite, "rejected"
    label = f"{name} {sign[e.alternative]} {fmt(e.null)}"
    shown, test = deciding(e, label, outcome, e.alternative, alpha, null=e.null)
    return Ruling(decision, shown, test, dict(numbers or {}))


def effect_row(
    *,
    label: str,
    effect: Effect,
    decision: str,
    extra: Mapping[str, Any] | None = None,
    deciding: DecidingTest | None = None,
    unit: str = "seeds",
) -> EffectRow:
    """An :class:`EffectRow` of ``effect``'s numbers (``deciding``: the test they belong to).

    Every argument is a keyword: a row has too many numbers to build by position.
    """
    e = effect
    return EffectRow(
        label=label,
        estimate=float(e.estimate),
        ci_low=float(e.ci_low),
        ci_high=float(e.ci_high),
        p_value=float(e.p_value),
        statistic=float(e.statistic),
        n=int(e.n),
        decision=decision,  # type: ignore[arg-type]
        extra=dict(extra or {}),
        unit=unit,
        deciding=deciding,
    )
