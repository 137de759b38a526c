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


#: a store whose run files hold more bytes than this is read lazily unless --in-memory
LAZY_STORE_BYTES = 1 << 30

LAZY_OPTION = typer.Option(
    None,
    "--lazy/--in-memory",
    help=(
        "Read the store one cell at a time with Dask (--lazy), or load it whole (--in-memory). "
        "Default: lazily when its run files hold more than 1 GiB and Dask is installed."
    ),
    show_default=False,
)


def open_store(runs: Path, lazy: bool | None = False) -> Any:
    """The run store at ``runs``; a usage error naming what is wrong with it otherwise.

    Parameters
    ----------
    runs : Path
        The store folder or combined file.
    lazy : bool or None, default False
        True: open with one Dask chunk per cell (``open_runs(chunks="cell")``); False: load
        into memory; None: lazily when the run files hold more than ``LAZY_STORE_BYTES`` and
        Dask is installed (said on stderr).
    """
    from kdtheory.store.blocks import dask_installed
    from kdtheory.store.runs import open_runs, store_bytes

    try:
        if lazy is None and runs.exists():
            size = store_bytes(runs)
            lazy = size > LAZY_STORE_BYTES and dask_installed()
            if lazy:
                typer.echo(
                    f"note: {runs} holds {size / 2**30:.1f} GiB of run files; reading it one "
                    "cell at a time (--in-memory loads it whole)",
                    err=True,
                )
        return open_runs(runs, chunks="cell" if lazy else None)
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
