"""The plugin machinery: hooks that fail loudly, figures as a hook, and which way imports point.

Third-party plugins here are modules made in-process and found through a ``kdtheory`` entry
point added to what ``importlib.metadata`` reports, exactly the path an installed package takes.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import types
from functools import partial
from pathlib import Path

import pytest
from helpers import SMALL, cli_app, stderr_of
from typer.testing import CliRunner

import kdtheory
from kdtheory.cli import hypotheses as cli_hypotheses
from kdtheory.cli import plugins as cli_plugins
from kdtheory.cli import report as cli_report
from kdtheory.errors import DuplicateNameError, KDTheoryError, UnknownNameError
from kdtheory.plugin import manager as plugin_manager
from kdtheory.plugin.specs import FigureSpec
from kdtheory.testing.synthetic import make_store

ROOT = Path(__file__).parents[1]
runner = CliRunner()


def _register_all(app) -> None:
    for group in (cli_plugins, cli_hypotheses, cli_report):
        group.register(app)


make_app = partial(cli_app, _register_all)


@pytest.fixture
def third_party(monkeypatch):
    """``add(ep_name, module_name, *hooks)``: a module made in-process holding the functions
    ``hooks`` (under their names) and a ``kdtheory`` entry point naming it, seen by a fresh
    plugin manager."""
    real = importlib.metadata.entry_points
    extra: list[importlib.metadata.EntryPoint] = []

    def entry_points(**params):
        found = real(**params)
        if params.get("group") == "kdtheory":
            return importlib.metadata.EntryPoints([*found, *extra])
        return found

    def add(ep_name: str, module_name: str, *hooks) -> types.ModuleType:
        module = types.ModuleType(module_name)
        for hook in hooks:
            setattr(module, hook.__name__, hook)
        monkeypatch.setitem(sys.modules, module_name, module)
        extra.append(importlib.metadata.EntryPoint(ep_name, module_name, "kdtheory"))
        plugin_manager.reset()
        return module

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    plugin_manager.reset()
    yield add
    plugin_manager.reset()


# ----------------------------------------------------------------------------- unknown hooks


def test_a_misspelt_hook_names_the_plugin_its_module_and_the_closest_hook(third_party):
    @kdtheory.hookimpl
    def kdtheory_register_hypothesis():  # the 's' is missing
        return []

    third_party("typo", "kdtheory_typo_plugin", kdtheory_register_hypothesis)
    with pytest.raises(KDTheoryError) as caught:
        plugin_manager.make_plugin_manager()
    message = str(caught.value)
    assert "'typo'" in message and "kdtheory_typo_plugin" in message
    assert "'kdtheory_register_hypothesis'" in message
    assert "Did you mean 'kdtheory_register_hypotheses'?" in message


def test_a_misspelt_hook_fails_every_command_with_exit_2(third_party):
    @kdtheory.hookimpl
    def kdtheory_register_figure():
        return []

    third_party("typo", "kdtheory_typo_plugin", kdtheory_register_figure)
    for args in (["list"], ["plugins"], ["plot", "accuracy", "--runs", ".", "-o", "x.png"]):
        result = runner.invoke(make_app(), args)
        assert result.exit_code == 2, (args, result.output)
        err = stderr_of(result)
        assert "kdtheory_register_figure" in err and "'kdtheory_register_figures'" in err


def test_plugins_lists_everything_before_naming_a_misspelt_hook(third_party):
    """The diagnostic command still shows what is registered, then the error (exit 2)."""

    @kdtheory.hookimpl
    def kdtheory_register_figure():
        return []

    third_party("typo", "kdtheory_typo_plugin", kdtheory_register_figure)
    result = runner.invoke(make_app(), ["plugins"])
    assert result.exit_code == 2, result.output
    assert "dark-knowledge" in result.stdout and "accuracy" in result.stdout
    assert "'typo'" in stderr_of(result) and "kdtheory_register_figure" in stderr_of(result)


def test_an_optional_unknown_hook_is_allowed(third_party):
    @kdtheory.hookimpl(optionalhook=True)
    def kdtheory_register_widgets():
        return []

    third_party("future", "kdtheory_future_plugin", kdtheory_register_widgets)
    pm = plugin_manager.make_plugin_manager()
    assert pm.get_plugin("future") is not None


def test_a_hook_with_unknown_arguments_is_an_error_naming_the_plugin(third_party):
    @kdtheory.hookimpl
    def kdtheory_register_figures(store):  # the hookspec takes no arguments
        return []

    third_party("wrongargs", "kdtheory_wrongargs_plugin", kdtheory_register_figures)
    with pytest.raises(KDTheoryError, match="'wrongargs'.*kdtheory_wrongargs_plugin"):
        plugin_manager.make_plugin_manager()


def test_check_hooks_on_an_object_registered_in_process():
    pm = plugin_manager.make_plugin_manager(entry_points=False)

    class Plugin:
        @kdtheory.hookimpl
        def kdtheory_register_dataset(self):
            return []

    pm.register(Plugin(), name="objplugin")
    with pytest.raises(
        KDTheoryError, match="'objplugin'.*Did you mean 'kdtheory_register_datasets'"
    ):
        plugin_manager.check_hooks(pm)


def test_the_builtin_plugins_pass_the_check():
    pm = plugin_manager.make_plugin_manager(entry_points=False)
    plugin_manager.check_hooks(pm)  # no error
    assert set(plugin_manager.hookspec_names()) >= {
        "kdtheory_register_figures",
        "kdtheory_register_hypotheses",
    }


# ----------------------------------------------------------------------------- figures


def _kappa_figure(calls: list):
    def draw(store, experiments=None):
        from matplotlib.figure import Figure

        calls.append(experiments)
        fig = Figure(figsize=(3.3, 2.0))
        ax = fig.add_subplot()
        for name in experiments or list(store):
            ds = store[name]
            ax.plot(ds.fraction.values, ds.n_train.values, marker="o", label=name)
        return fig

    return draw


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("runs")
    for name, ds in make_store(1, seed=3, **SMALL).items():
        ds.to_netcdf(folder / f"{name}.nc")
    return folder


def test_a_third_party_figure_is_plottable_by_name(third_party, runs, tmp_path):
    calls: list = []

    @kdtheory.hookimpl
    def kdtheory_register_figures():
        return [FigureSpec("kappa-count", "kappa per fraction", _kappa_figure(calls))]

    third_party("kappa", "kdtheory_kappa_plugin", kdtheory_register_figures)
    registry = plugin_manager.get_registries().figures
    assert "kappa-count" in registry and "accuracy" in registry
    assert registry.source("kappa-count").startswith("kappa")
    out = tmp_path / "kappa.png"
    result = runner.invoke(make_app(), ["plot", "kappa-count", "--runs", str(runs), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert calls == [None]
    listed = runner.invoke(make_app(), ["plugins"])
    assert listed.exit_code == 0, listed.output
    assert "kappa-count" in listed.output and "kappa per fraction" in listed.output


def test_a_misspelt_figure_name_says_did_you_mean(third_party, runs, tmp_path):
    @kdtheory.hookimpl
    def kdtheory_register_figures():
        return [FigureSpec("kappa-count", "kappa per fraction", _kappa_figure([]))]

    third_party("kappa", "kdtheory_kappa_plugin", kdtheory_register_figures)
    with pytest.raises(UnknownNameError, match="Did you mean 'kappa-count'"):
        plugin_manager.get_registries().figures.get("kappa-cont")
    out = tmp_path / "k.png"
    result = runner.invoke(make_app(), ["plot", "kappa-cont", "--runs", str(runs), "-o", str(out)])
    assert result.exit_code == 2
    err = stderr_of(result)
    assert "unknown figure 'kappa-cont'" in err and "Did you mean 'kappa-count'?" in err
    assert not out.exists()


def test_two_plugins_registering_one_figure_name_is_an_error_naming_both(third_party):
    @kdtheory.hookimpl
    def kdtheory_register_figures():
        return [FigureSpec("accuracy", "a copy", _kappa_figure([]))]

    third_party("copycat", "kdtheory_copycat_figures", kdtheory_register_figures)
    with pytest.raises(DuplicateNameError, match="'accuracy' is registered twice.*copycat"):
        plugin_manager.get_registries().figures  # noqa: B018


def test_builtin_figures_register_through_the_entry_point_group():
    values = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="kdtheory")}
    assert values.get("figures") == "kdtheory.plugins.figures"
    registry = plugin_manager.build_registries(plugin_manager.make_plugin_manager()).figures
    assert {"accuracy", "kd-gain", "gaps", "fidelity", "collapse", "rank-correlation"} <= set(
        registry
    )
    assert registry.source("accuracy").startswith("figures")


# ----------------------------------------------------------------------------- start-up


def _modules_after(command: str) -> set[str]:
    """The modules imported (and executed) by ``kdtheory COMMAND`` in a fresh interpreter."""
    code = (
        "import sys\n"
        f"sys.argv = ['kdtheory', *{command.split()!r}]\n"
        "from kdtheory.cli.app import app\n"
        "try:\n"
        "    app(prog_name='kdtheory')\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = [n for n, m in sys.modules.items() if type(m).__name__ != '_LazyModule']\n"
        "sys.stderr.write('MODULES ' + ' '.join(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    line = next(x for x in done.stderr.splitlines() if x.startswith("MODULES "))
    return set(line.split()[1:])


def test_list_does_not_import_torch():
    modules = _modules_after("list")
    assert "kdtheory.hypotheses.dark_knowledge" in modules  # the hypotheses were registered
    assert not {m for m in modules if m == "torch" or m.startswith("torch.")}


def test_list_and_usage_errors_do_not_load_xarray_or_scipy_stats():
    """What keeps ``kdtheory list`` and a mistyped name under a second: the hypothesis and plugin
    modules import xarray, scipy.stats and matplotlib lazily."""
    heavy = ("xarray", "pandas", "scipy.stats", "statsmodels", "matplotlib", "netCDF4", "torch")
    for command in ("list", "test dark-knowlege --runs data/"):
        modules = _modules_after(command)
        loaded = sorted(h for h in heavy if h in modules)
        assert not loaded, f"kdtheory {command} imported {loaded}"


# ----------------------------------------------------------------------------- dependencies

PLUGIN_PACKAGES = re.compile(r"^kdtheory\.(plugins|hypotheses)(\.|$)")


def _imported_names(path: Path, module: str) -> set[str]:
    """Absolute names of the modules ``path`` imports (anywhere in it), and string constants
    that are such names (``importlib.import_module("...")``, lazy-export tables)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = node.module or ""
            if node.level:
                target = f"{base}.{target}" if target else base
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if PLUGIN_PACKAGES.match(node.value) and " " not in node.value:
                names.add(node.value)
    return names


def test_the_core_never_imports_the_builtin_plugins():
    """Dependencies point from plugins to the core: no module under kdtheory/ imports
    kdtheory.plugins or kdtheory.hypotheses, except the plugin manager's table of built-ins."""
    core = ROOT / "kdtheory"
    offenders = {}
    for path in sorted(core.rglob("*.py")):
        module = ".".join(("kdtheory", *path.relative_to(core).with_suffix("").parts))
        module = module.removesuffix(".__init__")
        if module == "kdtheory.plugin.manager":
            continue
        bad = sorted(n for n in _imported_names(path, module) if PLUGIN_PACKAGES.match(n))
        if bad:
            offenders[module] = bad
    assert not offenders, f"core modules importing built-in plugins: {offenders}"


def test_the_dependency_check_sees_each_kind_of_import(tmp_path):
    source = (
        "import kdtheory.plugins.objectives\n"
        "def f():\n"
        "    from kdtheory.hypotheses import data_efficiency\n"
        "    from ..plugins import datasets\n"
        "    importlib.import_module('kdtheory.plugins.figures')\n"
    )
    path = tmp_path / "mod.py"
    path.write_text(source)
    found = {n for n in _imported_names(path, "kdtheory.x.mod") if PLUGIN_PACKAGES.match(n)}
    assert {
        "kdtheory.plugins.objectives",
        "kdtheory.hypotheses.data_efficiency",
        "kdtheory.plugins.datasets",
        "kdtheory.plugins.figures",
    } <= found


def test_a_plain_test_run_fits_no_statsmodels_summary():
    """``kdtheory test all`` shows no fitted-model summaries, so it neither fits them nor pays
    for importing statsmodels or scipy.stats (DeferredText); torch is never needed to test."""
    modules = _modules_after("test all --runs data/")
    assert "kdtheory.hypotheses.data_efficiency" in modules  # the tests did run
    heavy = ("statsmodels", "scipy.stats", "torch", "matplotlib")
    loaded = sorted(h for h in heavy if h in modules)
    assert not loaded, f"kdtheory test all imported {loaded}"
