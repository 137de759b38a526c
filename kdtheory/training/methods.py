"""The ``--methods`` language: method spec strings -> configured objectives.

A sweep's methods are written ``name:key=value,...`` (one per objective) and joined with commas,
e.g. ``"label,kd:T=4,alpha=0.5,ls:eps=matched"``. This module splits such a list and turns each
entry into an objective through the objective registry, so that the sweep and the CLI depend on
the core only; the objective plugins (built-in or third-party) only provide the objectives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kdtheory.errors import SpecError
from kdtheory.plugin.specs import ObjectiveSpec, parse_spec, resolve_options

__all__ = ["parse_method", "parse_methods", "split_methods"]


def parse_method(text: str, registry: Any = None) -> Any:
    """Parse one method spec ``name:key=value,...`` into a configured objective.

    Parameters
    ----------
    text : str
        E.g. ``"kd:T=4,alpha=0.5"`` or ``"ls:eps=matched"``.
    registry : kdtheory.plugin.registry.Registry, optional
        Objective registry; default ``kdtheory.plugin.manager.get_registries().objectives``.

    Returns
    -------
    Objective

    Raises
    ------
    UnknownNameError
        For an unregistered objective (with "did you mean" suggestions).
    SpecError
        For malformed specs, unknown options or bad values.
    """
    if registry is None:
        from kdtheory.plugin.manager import get_registries

        registry = get_registries().objectives
    name, raw = parse_spec(text)
    spec: ObjectiveSpec = registry.get(name)
    options = resolve_options("objective", name, spec.options, raw)
    return spec.make(**options)


def split_methods(text: str | Sequence[str]) -> list[str]:
    """Split a ``--methods`` list into one spec string per method.

    Commas separate both methods and options: an entry containing ``=`` but no ``:`` continues
    the options of the previous method, so ``"kd:T=4,alpha=0.5,label"`` gives
    ``["kd:T=4,alpha=0.5", "label"]``.

    Parameters
    ----------
    text : str or sequence of str
        A sequence is joined with commas first (repeated ``--methods`` flags).

    Returns
    -------
    list of str
    """
    if not isinstance(text, str):
        text = ",".join(text)
    groups: list[str] = []
    for part in text.split(","):
        entry = part.strip()
        if not entry:
            raise SpecError(f"empty entry in method list {text!r}")
        if "=" in entry and ":" not in entry:
            if not groups:
                raise SpecError(
                    f"in method list {text!r}: option {entry!r} comes before any method name"
                )
            groups[-1] += ("," if ":" in groups[-1] else ":") + entry
        else:
            groups.append(entry)
    if not groups:
        raise SpecError("empty method list")
    return groups


def parse_methods(text: str | Sequence[str], registry: Any = None) -> list[Any]:
    """Parse a comma-separated method list, e.g. ``"label,kd:T=4,ls:eps=matched"``.

    Parameters
    ----------
    text : str or sequence of str
        See :func:`split_methods`.
    registry : kdtheory.plugin.registry.Registry, optional
        Objective registry (default: the process-wide one).

    Returns
    -------
    list of Objective
        In the given order.

    Raises
    ------
    SpecError
        For an empty list, malformed entries, or two methods with the same label.
    UnknownNameError
        For an unregistered objective.
    """
    objectives: list[Any] = []
    seen: dict[str, str] = {}
    for spec in split_methods(text):
        obj = parse_method(spec, registry)
        if obj.label in seen:
            raise SpecError(
                f"methods {seen[obj.label]!r} and {spec!r} both give the label {obj.label!r} "
                "(a method given twice); each method may appear once"
            )
        seen[obj.label] = spec
        objectives.append(obj)
    return objectives
