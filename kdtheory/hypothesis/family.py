"""Running hypotheses on a run store: one at a time, or several as one Holm family.

:func:`run_test` tests one hypothesis; :func:`run_all` tests several as one Holm family
(:func:`adjust_family`) with the store's convergence warnings on every verdict
(:func:`with_store_warnings`). ``kdtheory test`` and ``kdtheory report`` both run through here.

Family-wise correction
----------------------
Each verdict's key p-value (``Verdict.p_value``) enters one Holm family with every other
hypothesis that produced a p-value (unavailable verdicts, with NaN p-values, do not count). The
Holm-adjusted p-value is stored in ``Verdict.p_adjusted`` and the hypothesis re-decides through
:meth:`~kdtheory.hypothesis.base.Hypothesis.decide`.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from kdtheory._blas import single_blas_thread
from kdtheory.errors import MissingRequirementError, SpecError
from kdtheory.hypothesis.verdict import DECISIONS, Verdict
from kdtheory.stats import check_alpha

if TYPE_CHECKING:
    import xarray as xr

    from kdtheory.hypothesis.base import Hypothesis

__all__ = ["adjust_family", "check_verdict", "run_all", "run_test", "with_store_warnings"]


def check_verdict(hyp: Hypothesis, result: Any) -> Verdict:
    """``result`` if it is a :class:`Verdict` with a known decision; a ``TypeError`` or
    ``ValueError`` naming the hypothesis and its class otherwise (what ``test()`` must return)."""
    if not isinstance(result, Verdict):
        raise TypeError(
            f"hypothesis {hyp.name!r} ({type(hyp).__module__}.{type(hyp).__qualname__}) returned "
            f"{type(result).__name__} from test(); it must return a "
            "kdtheory.hypothesis.verdict.Verdict"
        )
    if result.decision not in DECISIONS:
        raise ValueError(
            f"hypothesis {hyp.name!r} returned decision {result.decision!r}; "
            f"expected one of {', '.join(DECISIONS)}"
        )
    return result


def run_test(
    name_or_hypothesis: str | Hypothesis,
    store: Mapping[str, xr.Dataset] | str | os.PathLike[str],
    alpha: float = 0.05,
    **options: Any,
) -> Verdict:
    """Test one hypothesis on ``store`` and return its Verdict.

    Parameters
    ----------
    name_or_hypothesis : str or Hypothesis
        A registered name (e.g. ``"dark-knowledge"``) or a Hypothesis instance.
    store : mapping of experiment id to xarray.Dataset, or a path
        What :func:`kdtheory.open_runs` returns (a path is opened with it).
    alpha : float
        Significance level, in (0, 0.5).
    **options
        Options of the hypothesis (see its ``options``); strings are converted to the type of
        the default.

    Raises
    ------
    UnknownNameError, MissingRequirementError, SpecError, StoreError
        All :class:`~kdtheory.errors.KDTheoryError` subclasses with an actionable message.
    """
    from kdtheory.hypothesis.base import get_hypothesis

    hyp = (
        get_hypothesis(name_or_hypothesis)
        if isinstance(name_or_hypothesis, str)
        else name_or_hypothesis
    )
    a = check_alpha(alpha)
    opts = hyp.validate_options(options)
    from kdtheory.store.runs import as_store  # xarray: only when a store is tested

    data = as_store(store)
    hyp.check_requirements(data)
    (verdict,) = with_store_warnings([check_verdict(hyp, hyp.test(data, alpha=a, **opts))], data)
    return verdict


def with_store_warnings(
    verdicts: Sequence[Verdict],
    store: Mapping[str, xr.Dataset],
    found: Sequence[str] | None = None,
) -> list[Verdict]:
    """``verdicts``, each carrying the store's convergence warnings (under-trained cells, weak
    teachers; see :mod:`kdtheory.store.convergence`), so that no verdict on such runs passes
    silently, and the experiments' display titles (:attr:`Verdict.titles`).
    ``found`` are those warnings when the caller has checked the store already."""
    from kdtheory.store.convergence import check_store
    from kdtheory.store.titles import experiment_titles

    found = list(check_store(store).warnings() if found is None else found)
    titles = experiment_titles(store)
    return [
        replace(v, warnings=list(v.warnings) + found, titles={**titles, **v.titles})
        for v in verdicts
    ]


def adjust_family(
    verdicts: Sequence[Verdict], hypotheses: Sequence[Hypothesis] | None = None
) -> list[Verdict]:
    """Holm-adjust the key p-values of a family of verdicts and let each hypothesis re-decide.

    Returns new Verdict objects with ``p_adjusted`` and ``family`` set (verdicts with a NaN
    p-value are left out of the family and keep ``p_adjusted=None``). ``hypotheses`` (same
    order) supply :meth:`Hypothesis.decide`; without them the default rule is applied.
    """
    from kdtheory.hypothesis.base import Hypothesis
    from kdtheory.stats import holm

    if hypotheses is not None and len(hypotheses) != len(verdicts):
        raise ValueError("adjust_family needs one hypothesis per verdict")
    p = [v.p_value if v.p_value is not None else math.nan for v in verdicts]
    adjusted = holm(p)
    family = [v.hypothesis for v, pa in zip(verdicts, adjusted, strict=True) if not math.isnan(pa)]
    out: list[Verdict] = []
    for i, (v, pa) in enumerate(zip(verdicts, adjusted, strict=True)):
        if math.isnan(pa):
            out.append(replace(v, p_adjusted=None, family=[]))
            continue
        nv = replace(v, p_adjusted=float(pa), family=list(family))
        hyp = hypotheses[i] if hypotheses is not None else Hypothesis()
        decision, reason = hyp.decide(nv, float(pa))
        if decision not in DECISIONS:
            raise ValueError(
                f"hypothesis {v.hypothesis!r}: decide() returned {decision!r}; "
                f"expected one of {', '.join(DECISIONS)}"
            )
        out.append(replace(nv, decision=decision, reason=reason))
    return out


def _test_or_unavailable(
    hyp: Hypothesis,
    store: Mapping[str, xr.Dataset],
    alpha: float,
    options: Mapping[str, Any],
    failures: type[Warning] | None,
) -> Verdict:
    """``hyp``'s verdict; :meth:`Verdict.unavailable` when the store lacks what it needs, or
    (with ``failures``, a warning class) when its test raises."""
    try:
        hyp.check_requirements(store)
        with single_blas_thread():  # plugins' own tests too (see kdtheory._blas)
            return check_verdict(hyp, hyp.test(store, alpha=alpha, **options))
    except MissingRequirementError as exc:
        return Verdict.unavailable(hyp.name, hyp.claim, hyp.prediction, alpha, str(exc))
    except Exception as exc:
        if failures is None:
            raise
        warnings.warn(
            f"hypothesis {hyp.name!r} failed on this store and is reported as not tested: "
            f"{type(exc).__name__}: {exc}",
            failures,
            stacklevel=3,
        )
        return Verdict.unavailable(
            hyp.name,
            hyp.claim,
            hyp.prediction,
            alpha,
            f"the test of {hyp.name!r} failed on this store: {type(exc).__name__}: {exc}",
        )


def run_all(
    store: Mapping[str, xr.Dataset] | str | os.PathLike[str],
    alpha: float = 0.05,
    *,
    only: Sequence[str] | None = None,
    store_warnings: Sequence[str] | None = None,
    failures: type[Warning] | None = None,
    **options: Any,
) -> list[Verdict]:
    """Test every registered hypothesis (or those named in ``only``) as one Holm family.

    Hypotheses whose requirements the store does not meet get :meth:`Verdict.unavailable`
    (inconclusive, NaN numbers, the reason names what is missing) and stay out of the family.
    Each option goes to the hypotheses that declare it; an option no hypothesis declares is an
    error. Verdicts come back in the order of ``only`` (registry order without it) with
    ``p_adjusted`` set and re-decided by each hypothesis.

    Parameters
    ----------
    store : mapping of experiment id to xarray.Dataset, or a path
    alpha : float
        Significance level, in (0, 0.5).
    only : sequence of str, optional
        Names of the hypotheses to test.
    store_warnings : sequence of str, optional
        The store's convergence warnings when the caller has checked it already.
    failures : warning class, optional
        Without it a test that raises stops the run; with it (the report passes its
        ``ReportHookWarning``) the hypothesis gets an unavailable verdict saying why, and a
        warning of this class is issued.
    **options
        Options of the hypotheses, each routed to those that declare it.
    """
    from kdtheory.plugin import manager as plugin_manager

    a = check_alpha(alpha)
    from kdtheory.store.runs import as_store  # xarray: only when a store is tested

    data = as_store(store)
    registry = plugin_manager.get_registries().hypotheses
    names = list(only) if only is not None else registry.names()
    hyps = [registry.get(n) for n in names]
    if options:
        declared = {k for h in hyps for k in h.options}
        unknown = sorted(set(options) - declared)
        if unknown:
            from kdtheory.hypothesis.base import _quoted

            accepted = ", ".join(sorted(declared)) or "none"
            raise SpecError(
                f"no hypothesis accepts option(s) {_quoted(unknown)}. Options accepted by the "
                f"hypotheses tested: {accepted}."
            )
    per_hyp = [
        h.validate_options({k: v for k, v in options.items() if k in h.options}) for h in hyps
    ]
    verdicts = [
        _test_or_unavailable(hyp, data, a, opts, failures)
        for hyp, opts in zip(hyps, per_hyp, strict=True)
    ]
    return adjust_family(with_store_warnings(verdicts, data, store_warnings), hyps)
