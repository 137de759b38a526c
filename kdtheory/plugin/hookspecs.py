"""Hook specifications: the contract between kdtheory and its plugins.

Every plugin, built-in or third-party, is a module or object that implements some of these hooks
with the :data:`kdtheory.hookimpl` marker, and is found through the ``kdtheory`` entry-point group::

    # pyproject.toml of a third-party package
    [project.entry-points.kdtheory]
    my_plugin = "my_package.kd_plugin"

Each ``kdtheory_register_*`` hook returns a list of spec objects; every name must be unique across
all plugins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from kdtheory.plugin.specs import ArchitectureSpec, DatasetSpec, FigureSpec, ObjectiveSpec

hookspec = pluggy.HookspecMarker("kdtheory")


@hookspec
def kdtheory_register_datasets() -> list[DatasetSpec]:
    """Return the datasets this plugin provides.

    Returns
    -------
    list of kdtheory.plugin.specs.DatasetSpec
        Each spec names a dataset and knows how to load it offline.
    """


@hookspec
def kdtheory_register_architectures() -> list[ArchitectureSpec]:
    """Return the model architectures this plugin provides.

    Returns
    -------
    list of kdtheory.plugin.specs.ArchitectureSpec
        Each spec builds a ``torch.nn.Module`` whose ``forward(x, with_features=False)`` returns
        logits, or ``(logits, penultimate_features)`` with ``with_features=True``, and whose
        ``classifier`` attribute is the final ``torch.nn.Linear``.
    """


@hookspec
def kdtheory_register_objectives() -> list[ObjectiveSpec]:
    """Return the training objectives (methods) this plugin provides.

    Returns
    -------
    list of kdtheory.plugin.specs.ObjectiveSpec
        Each spec parses ``name:key=value`` options and builds an objective.
    """


@hookspec
def kdtheory_register_hypotheses() -> list[Any]:
    """Return the hypotheses this plugin provides.

    Returns
    -------
    list of kdtheory.hypothesis.base.Hypothesis
        Each hypothesis has a unique ``name``, a one-sentence ``claim``, a ``prediction``, its
        requirements and a ``test(store, alpha, ...)`` method that returns a
        :class:`kdtheory.hypothesis.verdict.Verdict`.
    """


@hookspec
def kdtheory_register_figures() -> list[FigureSpec]:
    """Return the figures this plugin provides, each drawn by ``kdtheory plot NAME``.

    Returns
    -------
    list of kdtheory.plugin.specs.FigureSpec
        Each spec has a unique ``name``, a one-line ``description`` and a
        ``draw(store, experiments=None)`` that returns a ``matplotlib.figure.Figure``. The
        built-in figures (:mod:`kdtheory.plugins.figures`) register through this hook too.
    """


@hookspec
def kdtheory_report_sections(verdict: Any, store: Any, out_dir: Any) -> list[Any] | None:
    """Contribute figures and tables for one verdict to ``kdtheory report``.

    Parameters
    ----------
    verdict : kdtheory.hypothesis.verdict.Verdict
        The verdict being reported; check ``verdict.hypothesis`` to decide whether to contribute.
    store : kdtheory.store.runs.RunStore
        The run store the verdict was computed on.
    out_dir : pathlib.Path
        The report folder; write artefacts under ``figures/`` and ``tables/``.

    Returns
    -------
    list of kdtheory.report.document.ReportSection or None
        Sections to add under the verdict's heading, or None to add nothing.
    """
