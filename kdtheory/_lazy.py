"""Lazy re-exports for package ``__init__`` modules (PEP 562).

A stage package (``kdtheory.store``, ``kdtheory.hypothesis``, ...) names its public API in its
``__init__`` without importing the modules behind it, so ``import kdtheory`` and the CLI's start-up
do not pay for xarray, scipy or torch until a name is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
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
