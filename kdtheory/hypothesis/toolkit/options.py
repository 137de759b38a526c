"""Resolving a hypothesis's options; the toolkit's shared constants."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from kdtheory.errors import SpecError
from kdtheory.stats import (
    POOLING_METHODS,
)

NAN = float("nan")

#: Default way of pooling an effect across experiments (see
#: :func:`kdtheory.stats.pool_experiments`); every built-in hypothesis takes a ``pooling`` option.
POOLING = "mixed"


def resolve_options(hypothesis: Any, given: Mapping[str, Any]) -> dict:
    """A hypothesis's options: its defaults overridden by ``given``.

    Names and string values are checked by the framework
    (:meth:`kdtheory.hypothesis.base.Hypothesis.validate_options`); on top of that, every option
    whose default is a float must be a finite number, and a margin (an option whose name ends in
    ``margin``) must be > 0.

    Raises
    ------
    SpecError
        For an unknown option or a value that cannot be used.
    """
    name = hypothesis.name
    out = {**hypothesis.options, **hypothesis.validate_options(given)}
    if "pooling" in out:
        out["pooling"] = str(out["pooling"] or POOLING).lower()
        if out["pooling"] not in POOLING_METHODS:
            raise SpecError(
                f"hypothesis {name!r}: option 'pooling' must be one of "
                f"{', '.join(POOLING_METHODS)}, got {out['pooling']!r}"
            )
    for key, default in hypothesis.options.items():
        value = out[key]
        if not isinstance(default, float) or value is None:
            continue
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise SpecError(
                f"hypothesis {name!r}: option {key!r} needs a number, got {value!r}"
            ) from None
        if not math.isfinite(value) or (key.endswith("margin") and value <= 0):
            need = "> 0" if key.endswith("margin") else "a finite number"
            raise SpecError(f"hypothesis {name!r}: option {key!r} must be {need}, got {value!r}")
        out[key] = value
    return out
