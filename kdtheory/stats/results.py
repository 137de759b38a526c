"""The result types of :mod:`kdtheory.stats`: a t-test, a TOST, a pooled (meta-analytic) effect."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kdtheory.stats.reference import NAN

__all__ = ["DeferredText", "MetaResult", "TestResult", "TostResult", "estimate_fields"]


class DeferredText:
    """Text made on first use: a fitted model's summary that only a detailed rendering reads.

    ``str()`` (and formatting, ``+``, ``in``, ``len`` and str's methods, JSON export through
    ``str``) computes the text once and keeps it. kdtheory defers the statsmodels summaries
    this way: fitting and printing them (and importing statsmodels and scipy.stats for it) was
    about half of a plain ``kdtheory test all``, which never shows them. A pickled
    DeferredText is its text.

    Parameters
    ----------
    make : callable
        Called with no arguments, once, to produce the text.

    Examples
    --------
    >>> t = DeferredText(lambda: "fitted")
    >>> f"model: {t}"
    'model: fitted'
    """

    __slots__ = ("_make", "_text")

    def __init__(self, make: Callable[[], str]) -> None:
        self._make: Callable[[], str] | None = make
        self._text: str | None = None

    def __str__(self) -> str:
        if self._text is None:
            assert self._make is not None
            self._text, self._make = str(self._make()), None
        return self._text

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __getattr__(self, name: str) -> Any:  # str's methods (splitlines, rstrip, ...)
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(str(self), name)

    def __contains__(self, part: str) -> bool:
        return part in str(self)

    def __len__(self) -> int:
        return len(str(self))

    def __iter__(self) -> Iterator[str]:
        return iter(str(self))

    def __add__(self, other: object) -> str:
        return str(self) + str(other)

    def __radd__(self, other: object) -> str:
        return str(other) + str(self)

    def __eq__(self, other: object) -> bool:
        return str(self) == str(other) if isinstance(other, (str, DeferredText)) else NotImplemented

    def __hash__(self) -> int:
        return hash(str(self))

    def __bool__(self) -> bool:
        return bool(str(self))

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (str, (str(self),))

    def __repr__(self) -> str:
        state = "made" if self._text is not None else "not made yet"
        return f"DeferredText({state})"


@dataclass
class TestResult:
    """Result of a t-test (one-sample, paired, or of per-seed slopes).

    Attributes
    ----------
    estimate : float
        Mean (of the values, the paired differences, or the per-group slopes).
    se : float
        Standard error of ``estimate``.
    ci_low, ci_high : float
        Two-sided CI at level :func:`~kdtheory.stats.ci_level` ``(alternative, alpha)``.
    statistic : float
        t statistic against the null value.
    df : float
        Degrees of freedom (``n - 1``).
    p_value : float
        p-value for ``alternative``.
    n : int
        Number of units of replication used (after dropping NaN).
    alternative, method : str
    summary : str or DeferredText
        Optional text summary of a fitted model (``slope_test`` puts the pooled OLS here, as a
        :class:`DeferredText` fitted on first use).
    """

    __test__ = False  # not a pytest test class

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    statistic: float
    df: float
    p_value: float
    n: int
    alternative: str
    method: str
    summary: str | DeferredText = ""

    @classmethod
    def empty(
        cls, n: int, alternative: str, method: str, summary: str | DeferredText = ""
    ) -> TestResult:
        """A result with every number NaN: a test with too few usable values (``n``)."""
        return cls(NAN, NAN, NAN, NAN, NAN, NAN, NAN, n, alternative, method, summary)

    def significant(self, alpha: float = 0.05) -> bool:
        """Whether the test rejects its null at ``alpha`` (False when the p-value is NaN)."""
        return bool(self.p_value < alpha)

    @property
    def ci(self) -> tuple[float, float]:
        return (self.ci_low, self.ci_high)


@dataclass
class TostResult:
    """Result of a one-sample two one-sided tests (TOST) equivalence procedure.

    ``p_lower`` tests H0: mean <= low, ``p_upper`` tests H0: mean >= high; ``p_value`` is their
    maximum and ``equivalent`` is ``p_value < alpha``, which happens exactly when the
    ``1 - 2*alpha`` interval ``(ci_low, ci_high)`` lies inside ``(low, high)``.
    """

    p_value: float
    equivalent: bool
    p_lower: float
    p_upper: float
    ci_low: float
    ci_high: float
    low: float
    high: float
    n: int
    estimate: float = NAN
    se: float = NAN
    df: float = NAN

    @property
    def ci(self) -> tuple[float, float]:
        return (self.ci_low, self.ci_high)


@dataclass
class MetaResult:
    """Random-effects meta-analysis of one effect across experiments.

    Attributes
    ----------
    estimate, se : float
        Pooled (random-effects) estimate and its standard error.
    ci_low, ci_high : float
        Two-sided CI at level :func:`~kdtheory.stats.ci_level` ``(alternative, alpha)`` (normal,
        or t with ``k - 1`` df under the Hartung–Knapp adjustment).
    statistic, p_value : float
        z (or t) statistic against 0 and its p-value for ``alternative``.
    tau2 : float
        Between-experiment variance (truncated at 0; NaN when ``k == 1``).
    i2 : float
        I² heterogeneity in [0, 1] (NaN when ``k == 1``).
    k : int
        Number of experiments pooled.
    method : str
    """

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    statistic: float
    p_value: float
    tau2: float
    i2: float
    k: int
    method: str
    alternative: str = "two-sided"

    @classmethod
    def empty(cls, k: int, method: str, alternative: str) -> MetaResult:
        """A result with every number NaN: ``k`` experiments, too few to pool."""
        return cls(NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, k, method, alternative)

    @property
    def ci(self) -> tuple[float, float]:
        return (self.ci_low, self.ci_high)


def estimate_fields(result: TestResult | MetaResult | Any) -> dict[str, float]:
    """The numbers every test result shares, by name: ``estimate``, ``se``, ``ci_low``,
    ``ci_high``, ``statistic`` and ``p_value``.

    For building one result type (or a report row) from another without copying the fields one
    by one, e.g. ``MetaResult(**estimate_fields(t), tau2=..., ...)``.

    Parameters
    ----------
    result : TestResult or MetaResult
        Or anything with those six attributes.

    Returns
    -------
    dict of str to float
    """
    names = ("estimate", "se", "ci_low", "ci_high", "statistic", "p_value")
    return {name: getattr(result, name) for name in names}
