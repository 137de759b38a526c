"""The built-in report plugin: each hypothesis's figures and tables in ``kdtheory report``.

It implements the ``kdtheory_report_sections`` hook a third-party plugin would, and dispatches:
a verdict's sections come from its hypothesis's own ``report_sections(verdict, store, out_dir)``
(:meth:`kdtheory.hypothesis.template.PooledHypothesis.report_sections`), next to the hypothesis
in its module — for the five built-ins and for any registered hypothesis that offers them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdtheory import hookimpl

__all__ = ["kdtheory_report_sections"]


@hookimpl
def kdtheory_report_sections(verdict: Any, store: Any, out_dir: Any) -> list[Any] | None:
    """The sections of ``verdict``'s hypothesis; None when it offers none, is not registered,
    or the store could not test it."""
    from kdtheory.plugin.manager import get_registries

    hypotheses = get_registries().hypotheses
    name = getattr(verdict, "hypothesis", "")
    if name not in hypotheses or not verdict.available:
        return None
    sections = getattr(hypotheses.get(name), "report_sections", None)
    if sections is None:
        return None
    return list(sections(verdict, store, Path(out_dir))) or None
