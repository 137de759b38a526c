"""What every command group of the CLI shares: the usage error, the consoles, the run store
and plugin registries as a command sees them, and the ``--alpha`` check.

Nothing here imports xarray, scipy or torch at module level: ``kdtheory --help``, ``kdtheory
list`` and usage errors must start fast.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

from kdtheory.errors import KDTheoryError

#: exit status of a usage error (bad option, unknown name, unusable store, ...)
EXIT_USAGE = 2

# rich wraps at 80 columns when not writing to a terminal; tables of a sweep need more
out_console = Console() if sys.stdout.isatty() else Console(width=160)
err_console = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=160)


def usage_error(message: str) -> NoReturn:
    """Print ``error: message`` on stderr and exit with the usage status (2)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def open_store(runs: Path) -> Any:
    """The run store at ``runs``; a usage error naming what is wrong with it otherwise."""
    from kdtheory.store.runs import open_runs

    try:
        return open_runs(runs)
    except (KDTheoryError, OSError) as exc:
        usage_error(str(exc))


def plugin_registry(kind: str = "hypotheses") -> Any:
    """The registry of one kind of plugin object (``"hypotheses"``, ``"figures"``, ...).

    Plugin import warnings go to stderr as ``warning: ...``; a registry that cannot be built (a
    name registered twice, a plugin implementing an unknown hook) is an error (exit 2).
    """
    from kdtheory.plugin import manager as plugin_manager

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", plugin_manager.PluginLoadWarning)
        try:
            registry = getattr(plugin_manager.get_registries(), kind)
        except KDTheoryError as exc:
            usage_error(str(exc))
    for w in caught:
        if issubclass(w.category, plugin_manager.PluginLoadWarning):
            typer.echo(f"warning: {w.message}", err=True)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return registry


def check_alpha_option(alpha: float) -> None:
    """A usage error (exit 2) unless ``--alpha`` lies in (0, 0.5)."""
    from kdtheory.stats import check_alpha

    try:
        check_alpha(alpha, "--alpha")
    except KDTheoryError as exc:
        usage_error(str(exc))
