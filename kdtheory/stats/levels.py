"""Significance levels and the confidence-interval levels they imply.

Conventions, fixed once for the whole toolkit
---------------------------------------------
* ``alternative`` is ``"two-sided"``, ``"greater"`` or ``"less"``, with scipy's meaning: for
  ``"greater"`` the alternative hypothesis is *estimate > null*.
* **Confidence intervals are always reported as two-sided intervals.** For a two-sided test the
  level is ``1 - alpha``; for a one-sided test it is ``1 - 2*alpha`` (a 90% interval for
  ``alpha = 0.05``). That interval's relevant bound is exactly the one-sided ``1 - alpha`` bound, so
  the interval and the one-sided test always agree: with ``alternative="greater"`` the test
  rejects at ``alpha`` if and only if ``ci_low > null``. TOST uses the same ``1 - 2*alpha``
  interval, so "equivalent" means "the interval lies inside the margins".
  :func:`ci_level` returns the level and :func:`ci_level_note` the words every renderer prints.
"""

from __future__ import annotations

from typing import Any

from kdtheory.errors import SpecError

__all__ = ["ALTERNATIVES", "check_alpha", "check_alternative", "ci_level", "ci_level_note"]

ALTERNATIVES = ("two-sided", "greater", "less")


def check_alpha(alpha: Any, name: str = "alpha") -> float:
    """``alpha`` as a float if it is a significance level kdtheory accepts, in (0, 0.5).

    The one check every entry point uses (tests, families, reports, the CLI's ``--alpha``). A
    one-sided test reports a ``1 - 2*alpha`` interval, which is empty for ``alpha >= 0.5``.

    Parameters
    ----------
    alpha : Any
        A number (or a string of one).
    name : str
        How the message names it, e.g. ``"--alpha"``.

    Returns
    -------
    float

    Raises
    ------
    SpecError
        (a ``ValueError``) when ``alpha`` is not a number in (0, 0.5); NaN is not.
    """
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise SpecError(f"{name} must be a number in (0, 0.5); got {alpha!r}") from None
    if not 0.0 < value < 0.5:  # False for NaN too
        raise SpecError(f"{name} must lie in (0, 0.5); got {alpha!r}")
    return value


def check_alternative(alternative: str, alpha: float) -> None:
    """Raise ``ValueError`` unless ``alternative`` is one of :data:`ALTERNATIVES` and ``alpha``
    passes :func:`check_alpha`: the argument check every test in :mod:`kdtheory.stats` runs.

    Parameters
    ----------
    alternative : str
    alpha : float
    """
    if alternative not in ALTERNATIVES:
        raise ValueError(
            f"alternative must be one of {', '.join(ALTERNATIVES)}; got {alternative!r}"
        )
    check_alpha(alpha)


def ci_level(alternative: str, alpha: float) -> float:
    """Level of the two-sided CI reported with a test: ``1 - alpha``, or ``1 - 2*alpha`` when
    ``alternative`` is one-sided (see the module docstring)."""
    check_alternative(alternative, alpha)
    return 1.0 - alpha if alternative == "two-sided" else 1.0 - 2.0 * alpha


def _percent(level: float) -> str:
    return f"{round(100.0 * level, 6):g}%"


def ci_level_note(alternative: str, alpha: float) -> str:
    """Words describing the reported CI, e.g. ``"95% two-sided CI"`` or, for a one-sided test at
    alpha 0.05, ``"90% two-sided CI (one-sided test, alpha=0.05)"``."""
    level = ci_level(alternative, alpha)
    if alternative == "two-sided":
        return f"{_percent(level)} two-sided CI"
    return f"{_percent(level)} two-sided CI (one-sided test, alpha={alpha:g})"
