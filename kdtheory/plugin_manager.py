"""The pluggy plugin manager and the name registries built from it.

Built-in plugins are found through the ``kdtheory`` entry-point group, exactly as third-party
plugins are. When kdtheory runs from a source tree without installed metadata, the built-in
modules are registered directly as a fallback (still through the same hooks).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import warnings
from functools import lru_cache
from typing import Any

import pluggy

from kdtheory import hookspecs
from kdtheory.registry import Registry

PROJECT = "kdtheory"
BUILTIN_MODULES = {
    "datasets": "kdtheory.plugins.datasets",
    "architectures": "kdtheory.plugins.architectures",
    "objectives": "kdtheory.plugins.objectives",
    "hypotheses": "kdtheory.hypotheses",
    "report_figures": "kdtheory.hypotheses.figures",
}


#: plugin name -> "distribution version" of plugins loaded from entry points
_DISTS: dict[str, str] = {}


class PluginLoadWarning(UserWarning):
    """A third-party plugin failed to import; the rest of kdtheory still works."""


def _load_entry_points(pm: pluggy.PluginManager) -> set[str]:
    """Register every plugin of the ``kdtheory`` entry-point group; return the module names."""
    loaded: set[str] = set()
    for ep in importlib.metadata.entry_points(group=PROJECT):
        if pm.get_plugin(ep.name) is not None or ep.value in loaded:
            continue
        dist = getattr(ep.dist, "name", None) or "unknown distribution"
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken third-party plugin must not break kdtheory
            warnings.warn(
                f"kdtheory plugin {ep.name!r} ({ep.value}, from {dist}) failed to import and is "
                f"skipped: {type(exc).__name__}: {exc}",
                PluginLoadWarning,
                stacklevel=2,
            )
            continue
        pm.register(plugin, name=ep.name)
        _DISTS[ep.name] = f"{dist} {getattr(ep.dist, 'version', '')}".strip()
        loaded.add(ep.value)
    return loaded


def make_plugin_manager(entry_points: bool = True) -> pluggy.PluginManager:
    """Build a fresh plugin manager with the built-ins and (optionally) entry-point plugins."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    loaded = _load_entry_points(pm) if entry_points else set()
    for name, module in BUILTIN_MODULES.items():
        if module not in loaded and pm.get_plugin(name) is None:
            pm.register(importlib.import_module(module), name=name)
    return pm


_HOOKS = {
    "datasets": ("kdtheory_register_datasets", "dataset"),
    "architectures": ("kdtheory_register_architectures", "architecture"),
    "objectives": ("kdtheory_register_objectives", "objective"),
    "hypotheses": ("kdtheory_register_hypotheses", "hypothesis"),
}


def _source(pm: pluggy.PluginManager, impl: Any) -> str:
    plugin_name = impl.plugin_name
    if plugin_name in _DISTS:
        return f"{plugin_name} ({_DISTS[plugin_name]})"
    plugin = pm.get_plugin(plugin_name)
    if getattr(plugin, "__name__", None) in BUILTIN_MODULES.values():
        return f"{plugin_name} (kdtheory built-in)"
    return plugin_name


def build_registry(pm: pluggy.PluginManager, kind: str) -> Registry[Any]:
    """Call one ``kdtheory_register_*`` hook on every plugin and fill a registry."""
    hook_name, label = _HOOKS[kind]
    registry: Registry[Any] = Registry(label)
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        source = _source(pm, impl)
        for obj in impl.function() or []:
            registry.add(obj.name, obj, source)
    return registry


class Registries:
    """The registries of one plugin manager, each built on first use.

    Building them lazily means that, say, a training run never imports the hypothesis plugins.
    """

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self._built: dict[str, Registry[Any]] = {}

    def _get(self, kind: str) -> Registry[Any]:
        if kind not in self._built:
            self._built[kind] = build_registry(self.pm, kind)
        return self._built[kind]

    @property
    def datasets(self) -> Registry[Any]:
        return self._get("datasets")

    @property
    def architectures(self) -> Registry[Any]:
        return self._get("architectures")

    @property
    def objectives(self) -> Registry[Any]:
        return self._get("objectives")

    @property
    def hypotheses(self) -> Registry[Any]:
        return self._get("hypotheses")


def build_registries(pm: pluggy.PluginManager) -> Registries:
    """Registries backed by ``pm`` (each filled when first used)."""
    return Registries(pm)


@lru_cache(maxsize=1)
def get_registries() -> Registries:
    """The process-wide registries (built once, on first use)."""
    return build_registries(make_plugin_manager())


def reset() -> None:
    """Forget the cached registries (tests, or after installing a plugin at run time)."""
    get_registries.cache_clear()
