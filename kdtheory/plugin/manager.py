"""The pluggy plugin manager and the name registries built from it.

Built-in plugins are found through the ``kdtheory`` entry-point group, exactly as third-party
plugins are. When kdtheory runs from a source tree without installed metadata, the built-in
modules are registered directly as a fallback (still through the same hooks).

After loading, every hook implementation must match a hook specification
(:mod:`kdtheory.plugin.hookspecs`): a misspelt hook name, which pluggy would otherwise ignore, is a
:class:`~kdtheory.errors.KDTheoryError` naming the plugin and the closest hook.

This is the only core module that names the built-in plugin packages (``kdtheory.plugins``,
``kdtheory.hypotheses``): the rest of the core reaches them through the registries.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import reprlib
import types
import warnings
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import pluggy

from kdtheory.errors import DuplicateNameError, KDTheoryError
from kdtheory.plugin import hookspecs
from kdtheory.plugin.registry import Registry, did_you_mean

PROJECT = "kdtheory"
BUILTIN_MODULES = {
    "datasets": "kdtheory.plugins.datasets",
    "vision_datasets": "kdtheory.plugins.vision_datasets",
    "architectures": "kdtheory.plugins.architectures",
    "objectives": "kdtheory.plugins.objectives",
    "hypotheses": "kdtheory.hypotheses",
    "report_figures": "kdtheory.hypotheses.figures",
    "figures": "kdtheory.plugins.figures",
}


#: plugin name -> "distribution version" of plugins loaded from entry points
_DISTS: dict[str, str] = {}
#: plugin name -> the entry point's value (the module) of plugins loaded from entry points
_ENTRY_VALUES: dict[str, str] = {}


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
        _DISTS[ep.name] = f"{dist} {getattr(ep.dist, 'version', '')}".strip()
        _ENTRY_VALUES[ep.name] = ep.value
        _register(pm, plugin, ep.name)
        loaded.add(ep.value)
    return loaded


def make_plugin_manager(entry_points: bool = True, strict: bool = True) -> pluggy.PluginManager:
    """Build a fresh plugin manager with the built-ins and (optionally) entry-point plugins.

    Parameters
    ----------
    entry_points : bool, default True
        Load the plugins installed under the ``kdtheory`` entry-point group.
    strict : bool, default True
        Fail on a hook implementation that no hookspec declares (:func:`check_hooks`). ``kdtheory
        plugins`` passes False so that it can list everything before naming the problem
        (:func:`unknown_hook_problems`).

    Raises
    ------
    KDTheoryError
        If a plugin implements a hook that no hookspec declares (e.g. a misspelt name; only when
        ``strict``) or a hook with arguments its hookspec does not have; the message names the
        plugin and the hook.
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    loaded = _load_entry_points(pm) if entry_points else set()
    for name, module in BUILTIN_MODULES.items():
        if module not in loaded and pm.get_plugin(name) is None:
            _register(pm, importlib.import_module(module), name)
    if strict:
        check_hooks(pm)
    return pm


def _register(pm: pluggy.PluginManager, plugin: Any, name: str) -> None:
    """``pm.register``, with pluggy's error for a hook of wrong arguments as a KDTheoryError."""
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise KDTheoryError(f"kdtheory plugin {describe_plugin(pm, plugin, name)}: {exc}") from None


def describe_plugin(pm: pluggy.PluginManager, plugin: Any, name: str | None = None) -> str:
    """``'name' (module m, from dist 1.0)``: a plugin as error messages name it.

    Parameters
    ----------
    pm : pluggy.PluginManager
    plugin : module or object
        The registered plugin.
    name : str, optional
        Its registered (entry-point) name; looked up in ``pm`` when not given.
    """
    name = name if name is not None else pm.get_name(plugin)
    if isinstance(plugin, types.ModuleType):
        module = plugin.__name__
    else:  # an object: the entry point's "module:attr", else its class
        module = _ENTRY_VALUES.get(name) or (
            f"{type(plugin).__module__}.{type(plugin).__qualname__}"
        )
    where = [f"module {module}"]
    if name in _DISTS:
        where.append(f"from {_DISTS[name]}")
    return f"{name!r} ({', '.join(where)})"


def hookspec_names() -> list[str]:
    """The names of the hooks kdtheory declares (:mod:`kdtheory.plugin.hookspecs`)."""
    return sorted(n for n in vars(hookspecs) if n.startswith(f"{PROJECT}_"))


def check_hooks(pm: pluggy.PluginManager) -> None:
    """Fail loudly on a hook implementation that matches no hookspec.

    pluggy registers a ``@kdtheory.hookimpl`` function whatever its name and never calls one
    whose name no hookspec declares, so a misspelt hook (``kdtheory_register_hypothesis``) would
    silently contribute nothing. This runs pluggy's ``check_pending()`` and turns its error into
    one that names the plugin, the unknown hook and the closest hookspec.

    Raises
    ------
    KDTheoryError
        Naming every plugin and hook that matches no hookspec.
    """
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        problems = unknown_hook_problems(pm) or [f"kdtheory plugin {exc}"]
        raise KDTheoryError(" ".join(problems)) from None


def unknown_hook_problems(pm: pluggy.PluginManager) -> list[str]:
    """One sentence per (plugin, hook) pair whose hook no hookspec declares (empty if none)."""
    known = hookspec_names()
    problems = []
    for hook_name, caller in sorted(vars(pm.hook).items()):
        if not isinstance(caller, pluggy.HookCaller) or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.optionalhook:
                continue
            hint = did_you_mean(hook_name, known, n=1)
            problems.append(
                f"kdtheory plugin {describe_plugin(pm, impl.plugin, impl.plugin_name)} "
                f"implements {hook_name!r}, which is not a kdtheory hook.{hint} "
                f"kdtheory hooks: {', '.join(known)}. Fix the hook's name in the plugin (or mark "
                "it @kdtheory.hookimpl(optionalhook=True) if it is meant for a later version)."
            )
    return problems


#: the kinds of plugin objects, one registry each
KINDS = ("datasets", "architectures", "objectives", "hypotheses", "figures")
#: registry kind -> (the hook that fills it, the noun of one entry)
_HOOKS = {
    "datasets": ("kdtheory_register_datasets", "dataset"),
    "architectures": ("kdtheory_register_architectures", "architecture"),
    "objectives": ("kdtheory_register_objectives", "objective"),
    "hypotheses": ("kdtheory_register_hypotheses", "hypothesis"),
    "figures": ("kdtheory_register_figures", "figure"),
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
    "figures": "draw",
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
    kind : {"datasets", "architectures", "objectives", "hypotheses", "figures"}
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

    @property
    def figures(self) -> Registry[Any]:
        return self._get("figures")


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
