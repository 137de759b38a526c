"""kdtheory: test theories of why knowledge distillation works against real training runs."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import pluggy

try:
    __version__ = version("kdtheory")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"

#: Marker for hook implementations of kdtheory plugins.
hookimpl = pluggy.HookimplMarker("kdtheory")

from kdtheory.store import RunStore, open_runs  # noqa: E402

__all__ = ["__version__", "hookimpl", "open_runs", "RunStore"]
