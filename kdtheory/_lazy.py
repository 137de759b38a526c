"""Lazy imports, so that ``import kdtheory`` and the CLI's start-up stay fast.

- :func:`lazy_exports`: a stage package (``kdtheory.store``, ``kdtheory.hypothesis``, ...) names
  its public API in its ``__init__`` without importing the modules behind it (PEP 562).
- :func:`lazy_module`: a module-level alias (``_sps = lazy_module("scipy.stats")``) whose module
  is imported when one of its attributes is first used, for modules that need a heavy library
  (xarray, scipy) in their functions but not to define their classes and constants.

Together they keep ``kdtheory --help``, ``kdtheory list`` and usage errors from paying for
xarray, scipy or torch.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` that import ``exports[name]`` (a module
    path relative to ``package``, e.g. ``".runs"``) on first access of ``name``.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    exports : mapping of str to str
        Public name -> module (absolute, or relative to ``package``) that defines it.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        return value

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__


def lazy_module(name: str) -> ModuleType:
    """The module ``name``, executed when one of its attributes is first used.

    Uses the standard library's :class:`importlib.util.LazyLoader`: the module is found now (so a
    missing one fails here, not later) and placed in ``sys.modules``, but its code runs on the
    first attribute access, after which it is the ordinary module. A module imported already is
    returned as it is.

    Parameters
    ----------
    name : str
        Absolute module name, e.g. ``"scipy.stats"``.

    Returns
    -------
    types.ModuleType

    Raises
    ------
    ModuleNotFoundError
        If no module ``name`` is installed.
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent:  # what a real import does: the submodule is an attribute of its package
        setattr(sys.modules[parent], child, module)
    return module
