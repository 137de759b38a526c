"""The pluggy plugin manager and the name registries built from it.

Built-in plugins are found through the ``kdtheory`` entry-point group, exactly as third-party
plugins are. When kdtheory runs from a source tree without installed metadata, the built-in
modules are registered directly as a fallback (still through the same hooks).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import warnings
from dataclasses import dataclass
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
}


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


@dataclass
class Registries:
    """Every registry built from one plugin manager."""

    pm: pluggy.PluginManager
    datasets: Registry[Any]
    architectures: Registry[Any]
    objectives: Registry[Any]
    hypotheses: Registry[Any]


def _source(pm: pluggy.PluginManager, impl: Any) -> str:
    plugin_name = impl.plugin_name
    for name, dist in pm.list_plugin_distinfo():
        if pm.get_name(name) == plugin_name:
            return f"{plugin_name} ({dist.project_name} {dist.version})"
    return plugin_name


def build_registries(pm: pluggy.PluginManager) -> Registries:
    """Call every ``kdtheory_register_*`` hook and fill the registries."""
    regs = Registries(
        pm=pm,
        datasets=Registry("dataset"),
        architectures=Registry("architecture"),
        objectives=Registry("objective"),
        hypotheses=Registry("hypothesis"),
    )
    hooks = {
        "datasets": pm.hook.kdtheory_register_datasets,
        "architectures": pm.hook.kdtheory_register_architectures,
        "objectives": pm.hook.kdtheory_register_objectives,
        "hypotheses": pm.hook.kdtheory_register_hypotheses,
    }
    for attr, hook in hooks.items():
        registry: Registry[Any] = getattr(regs, attr)
        for impl in hook.get_hookimpls():
            source = _source(pm, impl)
            for obj in impl.function() or []:
                registry.add(obj.name, obj, source)
    return regs


@lru_cache(maxsize=1)
def get_registries() -> Registries:
    """The process-wide registries (built once, on first use)."""
    return build_registries(make_plugin_manager())


def reset() -> None:
    """Forget the cached registries (tests, or after installing a plugin at run time)."""
    get_registries.cache_clear()
