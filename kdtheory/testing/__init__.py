"""Tools for testing hypotheses: planted-truth synthetic stores, the calibration harness, and
:func:`check_hypothesis`, which checks a (third-party) hypothesis keeps kdtheory's contract.

Public API: :func:`check_hypothesis`, :class:`HypothesisCheckError` (:mod:`.check`);
:func:`make_store`, :class:`Truth` (:mod:`.synthetic`); :func:`count_decisions`
(:mod:`.calibration`).
"""

from kdtheory._lazy import lazy_exports

_EXPORTS = {
    "CheckReport": ".check",
    "HypothesisCheckError": ".check",
    "check_hypothesis": ".check",
    "Truth": ".synthetic",
    "make_store": ".synthetic",
    "count_decisions": ".calibration",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
