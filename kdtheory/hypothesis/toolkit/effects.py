"""The numbers of one test (Effect) and of an equivalence test (Equivalence)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kdtheory.hypothesis.toolkit.options import NAN
from kdtheory.hypothesis.verdict import DecidingTest
from kdtheory.stats import (
    MetaResult,
    TestResult,
    TostResult,
)


@dataclass
class Effect:
    """One test's numbers, from a single experiment or pooled across experiments."""

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float
    statistic: float = NAN
    n: int = 0
    df: float = NAN
    alternative: str = "two-sided"
    null: float = 0.0

    @classmethod
    def of(cls, r: TestResult | MetaResult, null: float = 0.0) -> Effect:
        """The numbers of a test result; ``null`` is the value the test was against (it is
        not recorded in the result), used when the effect is pooled (:meth:`Pooled.tests`)."""
        n = getattr(r, "n", None)
        if n is None:
            n = getattr(r, "k", 0)
        df = getattr(r, "df", None)
        if df is None:
            df = float(n - 1) if n and n > 1 else NAN
        return cls(
            estimate=r.estimate,
            se=r.se,
            ci_low=r.ci_low,
            ci_high=r.ci_high,
            p_value=r.p_value,
            statistic=r.statistic,
            n=int(n),
            df=df,
            alternative=getattr(r, "alternative", "two-sided"),
            null=float(null),
        )

    def sig(self, alpha: float) -> bool:
        """Whether the p-value is below ``alpha`` (False when NaN)."""
        return bool(self.p_value < alpha)

    @property
    def finite(self) -> bool:
        return bool(np.isfinite(self.estimate) and np.isfinite(self.se))


@dataclass
class Equivalence:
    """A TOST result (single experiment or pooled)."""

    p_value: float
    equivalent: bool
    ci_low: float
    ci_high: float
    low: float
    high: float
    estimate: float = NAN
    se: float = NAN
    n: int = 0
    df: float = NAN

    @classmethod
    def of(cls, r: TostResult) -> Equivalence:
        return cls(
            r.p_value,
            r.equivalent,
            r.ci_low,
            r.ci_high,
            r.low,
            r.high,
            r.estimate,
            r.se,
            int(r.n),
            float(r.df),
        )

    def effect(self, statistic: float = NAN) -> Effect:
        """The TOST as an :class:`Effect`: estimate, ``1 - 2*alpha`` CI and the TOST p."""
        return Effect(
            self.estimate,
            self.se,
            self.ci_low,
            self.ci_high,
            self.p_value,
            statistic,
            self.n,
            self.df,
        )

    def deciding(self, name: str, outcome: str, alpha: float) -> tuple[Effect, DecidingTest]:
        """The TOST as the deciding test (:func:`deciding`, kind ``"inside"``, the band
        ``(low, high)``): the numbers a row shows and the test.

        Parameters
        ----------
        name : str
            The test in words (``"TOST slope within ±0.5"``).
        outcome : {"supported", "rejected"}
            The decision equivalence leads to.
        alpha : float
        """
        from kdtheory.hypothesis.toolkit.decisions import deciding  # decisions builds on Effect

        return deciding(self.effect(), name, outcome, "inside", alpha, low=self.low, high=self.high)
