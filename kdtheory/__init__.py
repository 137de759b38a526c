"""kdtheory: test theories of why knowledge distillation works against real training runs.

Main entry points
-----------------
open_runs(path)
    Open a run store (a folder of netCDF files) as experiment id -> ``xarray.Dataset``.
test(name, store, alpha=0.05, **options)
    Test one registered hypothesis on a store and return a
    :class:`~kdtheory.hypothesis.verdict.Verdict`.
hookimpl
    Marker for plugin hook implementations (see :mod:`kdtheory.plugin.hookspecs`).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

import pluggy

try:
    __version__ = version("kdtheory")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"

#: Marker for hook implementations of kdtheory plugins.
hookimpl = pluggy.HookimplMarker("kdtheory")

from kdtheory.store.runs import RunStore, open_runs  # noqa: E402

if TYPE_CHECKING:
    from kdtheory.hypothesis.verdict import Verdict


def test(name: str, store: Any, alpha: float = 0.05, **options: Any) -> Verdict:
    """Test the hypothesis ``name`` on ``store`` (a RunStore, mapping or path).

    Parameters
    ----------
    name : str
        A registered hypothesis, e.g. ``"dark-knowledge"`` (``kdtheory list`` shows them).
    store : RunStore, mapping of str to xarray.Dataset, or path
    alpha : float
        Significance level.
    **options
        Hypothesis options (e.g. ``margin=1.0``).

    Returns
    -------
    Verdict
    """
    from kdtheory.hypothesis.base import run_test

    return run_test(name, store, alpha, **options)


test.__test__ = False  # not a pytest test

__all__ = ["__version__", "hookimpl", "open_runs", "RunStore", "test"]
