"""Rendering: the ``kdtheory report`` document, its figures and provenance.

Public API: :func:`build_report` and :class:`ReportSection` (:mod:`kdtheory.report.document`);
the figures live in :mod:`kdtheory.report.figures`.
"""

from kdtheory._lazy import lazy_exports

__all__ = ["ReportSection", "build_report"]
__getattr__, __dir__ = lazy_exports(__name__, dict.fromkeys(__all__, ".document"))
