"""What a hypothesis computes on one experiment and what its rule returns."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kdtheory.hypothesis.toolkit.effects import Effect
from kdtheory.hypothesis.verdict import DecidingTest, EffectRow
from kdtheory.stats.results import DeferredText


@dataclass(frozen=True)
class Ruling:
    """What a hypothesis's rule decided from its tests (one experiment's, or the pooled ones).

    Attributes
    ----------
    decision : {"supported", "rejected", "inconclusive"}
    shown : Effect
        The deciding test's numbers a row shows: estimate, CI and the p the decision rests on
        (see :func:`deciding`).
    deciding : DecidingTest
        The test the decision rests on.
    numbers : dict
        Further numbers behind the decision, put in every row's ``extra`` (an experiment's and
        the pooled one alike).
    """

    decision: str
    shown: Effect
    deciding: DecidingTest
    numbers: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class ExperimentResult:
    """What a hypothesis computed on one experiment
    (:meth:`kdtheory.hypothesis.template.PooledHypothesis.analyse`).

    Attributes
    ----------
    name : str
        The experiment id.
    components : dict
        The tests the rule decides on (:class:`Effect`, :class:`Equivalence`, or anything the
        hypothesis's rule and pooling understand; None: not tested in this experiment).
    settings : dict
        What was compared (methods, margins): first in the experiment's row ``extra``.
    numbers : dict
        Further numbers worth reporting: in the row ``extra`` after the rule's numbers.
    tables : dict of str to list of dict
        Records (e.g. per fraction) merged across experiments into ``Verdict.tables``; each
        record carries an ``experiment`` key.
    summary : str or callable
        Text of the fitted models, or a function of the experiment's :class:`Ruling` that
        returns it. A function is called only when the text is first read (the template wraps
        it in a :class:`~kdtheory.stats.DeferredText`): pass one when the text needs a fit
        that the decision does not (a statsmodels summary), so a plain ``kdtheory test``
        never pays for it.
    ruling : Ruling or None
        Set by the template: the rule applied to ``components``.
    row : EffectRow or None
        Set by the template: the experiment's row of ``Verdict.experiments``.
    """

    name: str
    components: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    numbers: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    summary: str | DeferredText | Callable[[Ruling], str] = ""
    ruling: Ruling | None = None
    row: EffectRow | None = None
