"""The ``kdtheory`` command line (typer): one module per group of commands.

- ``run`` (:mod:`kdtheory.cli.run`): train a sweep into a run store;
- ``inspect``, ``export`` (:mod:`kdtheory.cli.store`): what a store holds, one combined netCDF
  file per experiment;
- ``plugins`` (:mod:`kdtheory.cli.plugins`): every registered plugin;
- ``list``, ``test`` (:mod:`kdtheory.cli.hypotheses`): the hypotheses, and testing them;
- ``report``, ``plot`` (:mod:`kdtheory.cli.report`): paper-ready reports and single figures.

Start-up is kept fast (``kdtheory --help``, ``list`` and usage errors well under a second): the
command modules import numpy, xarray, scipy and torch inside the commands that need them.
"""

from __future__ import annotations

import sys

import typer

from kdtheory.cli import hypotheses as cli_hypotheses
from kdtheory.cli import plugins as cli_plugins
from kdtheory.cli import report as cli_report
from kdtheory.cli import run as cli_run
from kdtheory.cli import store as cli_store

app = typer.Typer(
    name="kdtheory",
    help="Test theories of why knowledge distillation works against real training runs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for group in (cli_run, cli_store, cli_plugins, cli_hypotheses, cli_report):
    group.register(app)


def main() -> None:  # pragma: no cover
    app(prog_name="kdtheory")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
