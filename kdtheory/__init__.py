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

from typing import TYPE_CHECKING, Any

import pluggy

from kdtheory._lazy import lazy_exports

#: Marker for hook implementations of kdtheory plugins.
hookimpl = pluggy.HookimplMarker("kdtheory")

# open_runs and RunStore come from kdtheory.store.runs, which imports xarray (and pandas): loaded
# on first use (PEP 562) so that ``import kdtheory`` and the CLI's start-up stay fast.
_exports_getattr, _exports_dir = lazy_exports(
    __name__, {"open_runs": ".store.runs", "RunStore": ".store.runs"}
)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kdtheory")
    except PackageNotFoundError:  # running from a source tree
        return "0.0.0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value = globals()["__version__"] = _version()
        return value
    return _exports_getattr(name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_exports_dir(), "__version__"})


if TYPE_CHECKING:
    from kdtheory.hypothesis.verdict import Verdict
    from kdtheory.store.runs import RunStore, open_runs  # noqa: F401


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
    from kdtheory.hypothesis.family import run_test

    return run_test(name, store, alpha, **options)


test.__test__ = False  # not a pytest test

__all__ = ["__version__", "hookimpl", "open_runs", "RunStore", "test"]
