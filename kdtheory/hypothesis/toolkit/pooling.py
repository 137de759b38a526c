"""Effects of one test and pooling them across experiments."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from kdtheory.hypothesis.toolkit.decisions import effect_row
from kdtheory.hypothesis.toolkit.effects import Effect, Equivalence
from kdtheory.hypothesis.toolkit.options import NAN, POOLING
from kdtheory.hypothesis.toolkit.results import ExperimentResult, Ruling
from kdtheory.hypothesis.toolkit.text import meta_summary
from kdtheory.hypothesis.verdict import EffectRow
from kdtheory.stats import (
    POOLING_METHODS,
    MetaResult,
    pool_experiments,
)


class Pooled:
    """Pools of the experiments' components across experiments.

    Each ``(component, alternative)`` pool is computed once by
    :func:`kdtheory.stats.pool_experiments` with ``method`` and serves both the decision
    (:meth:`effect`) and the pooled summary text (:meth:`summary`). Experiments whose component
    is None (not tested there) or NaN are left out of that component's pool.

    Parameters
    ----------
    results : sequence of ExperimentResult
        The experiments to pool; each carries its :class:`Effect` s in ``components``.
    alpha : float
    method : {"mixed", "hksj"}
    """

    def __init__(
        self, results: Sequence[ExperimentResult], alpha: float, method: str = POOLING
    ) -> None:
        self.results = list(results)
        self.alpha = alpha
        self.method = method
        self._metas: dict[tuple[str, str, float], MetaResult | None] = {}

    @property
    def description(self) -> str:
        """The pooling method in words."""
        return f"{self.method}: {POOLING_METHODS[self.method]}"

    def effects(self, component: str) -> list[Effect]:
        """The experiments' (non-None, finite) effects of ``component``."""
        found = (r.components.get(component) for r in self.results)
        return [e for e in found if e is not None and np.isfinite(e.estimate)]

    def meta(self, component: str, alternative: str, null: float = 0.0) -> MetaResult | None:
        """The full :class:`MetaResult` (tau², I², method) of one pool; None if fewer than 2
        experiments have the component."""
        key = (component, alternative, float(null))
        if key not in self._metas:
            effects = self.effects(component)
            self._metas[key] = (
                pool_experiments(
                    [e.estimate for e in effects],
                    [e.se for e in effects],
                    [e.n for e in effects],
                    alternative,
                    self.alpha,
                    method=self.method,
                    null=null,
                )
                if len(effects) >= 2
                else None
            )
        return self._metas[key]

    def effect(self, component: str, alternative: str, null: float = 0.0) -> Effect | None:
        """The pooled :class:`Effect` of ``component`` under ``alternative``: None when no
        experiment tested it, NaN numbers when fewer than 2 experiments have a finite one."""
        if all(r.components.get(component) is None for r in self.results):
            return None
        m = self.meta(component, alternative, null)
        if m is None:
            return Effect(NAN, NAN, NAN, NAN, NAN, alternative=alternative, null=null)
        return Effect.of(m, null)

    def tests(self) -> dict[str, Any]:
        """Every component pooled the way it was tested in the experiments: an
        :class:`Effect` with its own alternative and null (:meth:`effect`), an
        :class:`Equivalence` within its own margins (:meth:`tost`); None where no experiment
        tested it.

        Raises
        ------
        TypeError
            For a component that is neither (a hypothesis pools such components itself).
        """
        names = list(dict.fromkeys(c for r in self.results for c in r.components))
        out: dict[str, Any] = {}
        for name in names:
            found = (r.components.get(name) for r in self.results)
            first = next((c for c in found if c is not None), None)
            if first is None:
                out[name] = None
            elif isinstance(first, Equivalence):
                out[name] = self.tost(name, first.low, first.high)
            elif isinstance(first, Effect):
                out[name] = self.effect(name, first.alternative, first.null)
            else:
                raise TypeError(
                    f"component {name!r} is a {type(first).__name__}, not an Effect or an "
                    "Equivalence: pool it in the hypothesis's pool()"
                )
        return out

    def tost(self, component: str, low: float, high: float) -> Equivalence:
        """Equivalence of the pooled ``component`` within ``(low, high)``: the two one-sided
        pooled tests against the margins; equivalent exactly when the pooled ``1 - 2*alpha``
        interval lies inside them."""
        lo = self.meta(component, "greater", low)
        hi = self.meta(component, "less", high)
        if lo is None or hi is None:
            return Equivalence(NAN, False, NAN, NAN, low, high)
        p = max(lo.p_value, hi.p_value)
        equivalent = bool(np.isfinite(p) and p < self.alpha)
        return Equivalence(
            p,
            equivalent,
            lo.ci_low,
            lo.ci_high,
            low,
            high,
            lo.estimate,
            lo.se,
            lo.k,
            float(lo.k - 1),
        )

    def row(self, ruling: Ruling, heterogeneity: str) -> EffectRow:
        """The pooled :class:`EffectRow` of ``ruling``: its shown numbers and deciding test,
        ``k``, the pooling method, tau² and I² of the ``heterogeneity`` component, then the
        ruling's numbers."""
        e = ruling.shown
        het = self.meta(heterogeneity, "two-sided")
        extra = {
            "k": e.n,
            "pooling": self.method,
            "tau2": het.tau2 if het is not None else NAN,
            "i2": het.i2 if het is not None else NAN,
            **ruling.numbers,
        }
        return effect_row(
            label="pooled",
            effect=e,
            decision=ruling.decision,
            extra=extra,
            deciding=ruling.deciding,
            unit="experiments",
        )

    def summary(self, title: str, lines: Mapping[str, tuple[str, str]]) -> str:
        """:func:`meta_summary` of the pools named in ``lines`` (label → component, alternative);
        pools that were never tested are left out."""
        metas = {label: self.meta(*pool) for label, pool in lines.items()}
        present = {label: m for label, m in metas.items() if m is not None}
        return meta_summary(title, present, [r.name for r in self.results], self.description)
