"""The pluggy plugin manager and the name registries built from it.

Built-in plugins are found through the ``kdtheory`` entry-point group, exactly as third-party
plugins are. When kdtheory runs from a source tree without installed metadata, the built-in
modules are registered directly as a fallback (still through the same hooks).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import reprlib
import warnings
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import pluggy

from kdtheory.errors import DuplicateNameError
from kdtheory.plugin import hookspecs
from kdtheory.plugin.registry import Registry

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
    """A third-party plugin failed to import or its hook returned something unusable; the
    plugin's contribution is skipped and the rest of kdtheory still works."""


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


#: kind -> the method every registered object must have
_ENTRY_METHOD = {
    "datasets": "load",
    "architectures": "build",
    "objectives": "make",
    "hypotheses": "test",
}


def _entry_problem(obj: Any, kind: str) -> str | None:
    """What is wrong with one object a ``kdtheory_register_*`` hook returned, or None."""
    shown = reprlib.repr(obj)
    if isinstance(obj, type):
        return f"{shown} is a class; return an instance"
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name.strip():
        return f"{shown} has no 'name' (a non-empty str)"
    method = _ENTRY_METHOD[kind]
    if not callable(getattr(obj, method, None)):
        return f"{name!r} has no callable {method!r}"
    options = getattr(obj, "options", {})
    if options is not None and not isinstance(options, Mapping):
        return f"{name!r} has options {reprlib.repr(options)}, not a mapping"
    return None


def _hook_entries(pm: pluggy.PluginManager, impl: Any, kind: str) -> list[Any]:
    """The objects one plugin's ``kdtheory_register_*`` hook returns, checked.

    A hook that raises, returns something other than a list (or None), or returns an entry that
    is not a usable spec gets a :class:`PluginLoadWarning` naming the plugin and what is wrong;
    that plugin then contributes nothing to this registry.
    """
    hook_name, label = _HOOKS[kind]

    def skip(problem: str) -> list[Any]:
        warnings.warn(
            f"kdtheory plugin {_source(pm, impl)}: {hook_name}() {problem}; its {label} "
            f"entries are skipped. Fix the plugin or uninstall it.",
            PluginLoadWarning,
            stacklevel=3,
        )
        return []

    try:
        result = impl.function()
    except Exception as exc:  # noqa: BLE001 - a broken plugin must not break kdtheory
        return skip(f"raised {type(exc).__name__}: {exc}")
    if result is None:
        return []
    if isinstance(result, str | bytes | Mapping) or not isinstance(result, Iterable):
        return skip(f"returned {reprlib.repr(result)}, not a list of {label} specs")
    try:
        entries = list(result)
    except Exception as exc:  # noqa: BLE001
        return skip(f"returned an iterable that failed: {type(exc).__name__}: {exc}")
    problems = [p for p in (_entry_problem(obj, kind) for obj in entries) if p is not None]
    if problems:
        return skip(f"returned entries that are not {label} specs: {'; '.join(problems)}")
    return entries


def build_registry(
    pm: pluggy.PluginManager, kind: str, problems: list[str] | None = None
) -> Registry[Any]:
    """Call one ``kdtheory_register_*`` hook on every plugin and fill a registry.

    Parameters
    ----------
    pm : pluggy.PluginManager
    kind : {"datasets", "architectures", "objectives", "hypotheses"}
    problems : list of str, optional
        When given, a name registered twice is appended here (the first registration is kept)
        instead of raised, so that a listing can show everything else.

    Raises
    ------
    DuplicateNameError
        If two plugins register the same name and ``problems`` is None.
    """
    hook_name, label = _HOOKS[kind]
    registry: Registry[Any] = Registry(label)
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        source = _source(pm, impl)
        for obj in _hook_entries(pm, impl, kind):
            try:
                registry.add(obj.name, obj, source)
            except DuplicateNameError as exc:
                if problems is None:
                    raise
                problems.append(str(exc))
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
