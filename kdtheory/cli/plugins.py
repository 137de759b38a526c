"""`kdtheory plugins`: every registered plugin object, by kind, and where it comes from."""

from __future__ import annotations

import typer
from rich.table import Table

from kdtheory.cli.common import out_console, usage_error
from kdtheory.errors import KDTheoryError


def plugins_command() -> None:
    """List every registered plugin: datasets, architectures, objectives, hypotheses, figures.

    A plugin that fails to import or whose hook returns something unusable is named in a
    warning and left out; names registered twice are listed once and reported as an error
    (exit 2), since commands that use them refuse to guess which one is meant. A plugin that
    implements a hook kdtheory does not declare (a misspelt name) is an error (exit 2), named
    after the listing (every other command refuses to start).
    """
    import warnings

    from kdtheory.plugin.manager import (
        KINDS,
        PluginLoadWarning,
        build_registry,
        get_registries,
        make_plugin_manager,
        unknown_hook_problems,
    )

    problems: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PluginLoadWarning)
        try:
            pm = get_registries().pm
        except KDTheoryError:
            # e.g. a misspelt hook: list everything, then name the problem (not instead of it)
            try:
                pm = make_plugin_manager(strict=False)
            except KDTheoryError as exc:
                usage_error(str(exc))
            problems.extend(unknown_hook_problems(pm))
        registries = {kind: build_registry(pm, kind, problems) for kind in KINDS}
    for kind, registry in registries.items():
        table = Table(title=kind)
        table.add_column("name")
        table.add_column("description")
        table.add_column("options")
        table.add_column("source")
        for entry in registry.entries():
            obj = entry.obj
            desc = getattr(obj, "description", None) or getattr(obj, "claim", "")
            opts = getattr(obj, "options", {}) or {}
            opt_text = ", ".join(f"{k}={getattr(v, 'default', v)!r}" for k, v in opts.items())
            table.add_row(entry.name, str(desc), opt_text, entry.source)
        out_console.print(table)
    for w in caught:
        if issubclass(w.category, PluginLoadWarning):
            typer.echo(f"warning: {w.message}", err=True)
    if problems:
        for problem in problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    """Add the ``plugins`` command to ``app``."""
    app.command("plugins")(plugins_command)
