"""The hypothesis framework: the base class, verdicts, and running hypotheses on a store.

Public API: :class:`Hypothesis`, :func:`get_hypothesis` (:mod:`kdtheory.hypothesis.base`);
:func:`run_test`, :func:`run_all` (:mod:`kdtheory.hypothesis.family`); :class:`PooledHypothesis`,
the template most hypotheses are written on (:mod:`kdtheory.hypothesis.template`);
:class:`Verdict`, :class:`EffectRow`,
:class:`DecidingTest` (:mod:`kdtheory.hypothesis.verdict`). Helpers:
:mod:`kdtheory.hypothesis.toolkit`, :mod:`kdtheory.hypothesis.sections`.
"""

from kdtheory._lazy import lazy_exports

_EXPORTS = {
    "Hypothesis": ".base",
    "adjust_family": ".family",
    "describe_all": ".base",
    "get_hypothesis": ".base",
    "run_all": ".family",
    "run_test": ".family",
    "with_store_warnings": ".family",
    "PooledHypothesis": ".template",
    "DecidingTest": ".verdict",
    "EffectRow": ".verdict",
    "Verdict": ".verdict",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
