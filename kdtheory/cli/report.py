"""`kdtheory report` and `kdtheory plot`: paper-ready reports and single figures.

Exit status: 0 on success; 2 with a message on stderr for a usage error, an unknown hypothesis or
plot (with "did you mean"), a run store that cannot be used, an output that cannot be written, or
a figure the store lacks the data for.
"""

from __future__ import annotations

import shlex
import sys
import warnings
from pathlib import Path
from typing import Any

import typer

from kdtheory.cli.common import (
    LAZY_OPTION,
    check_alpha_option,
    open_store,
    plugin_registry,
    usage_error,
)
from kdtheory.errors import KDTheoryError


def _command(canonical: list[str]) -> str:
    """The exact command line when this process is ``kdtheory report ...``; else (kdtheory called
    from Python, e.g. a test runner) the equivalent ``kdtheory`` command built from the options."""
    argv = list(sys.argv)
    if len(argv) > 1 and argv[1] == canonical[0]:
        prog = Path(argv[0]).name
        if prog in ("__main__.py", "-m", "-c") or prog.startswith("python") or not prog:
            prog = "kdtheory"
        return shlex.join([prog, *argv[1:]])
    return shlex.join(["kdtheory", *canonical])


def _echo_warnings(caught: list[warnings.WarningMessage]) -> None:
    """Show kdtheory's own warnings (a plugin or figure that failed, convergence) on stderr."""
    from kdtheory.plugin.manager import PluginLoadWarning
    from kdtheory.report.document import ReportHookWarning
    from kdtheory.store.convergence import ConvergenceWarning

    for w in caught:
        if issubclass(w.category, (ReportHookWarning, PluginLoadWarning, ConvergenceWarning)):
            typer.echo(f"warning: {w.message}", err=True)


def report_command(
    runs: Path = typer.Option(..., "--runs", "-r", help="Run store folder or combined .nc file."),
    out: Path = typer.Option(Path("report"), "--out", "-o", help="Report folder to write."),
    hypotheses: str | None = typer.Option(
        None,
        "--hypotheses",
        "-H",
        help="Comma-separated hypotheses (default: every registered one), one Holm family.",
    ),
    alpha: float = typer.Option(0.05, "--alpha", "-a", help="Significance level, in (0, 0.5)."),
    latex_only: bool = typer.Option(
        False,
        "--latex-only",
        help="Write a paper bundle instead: results.tex (captioned, labelled floats and a "
        "paragraph per hypothesis, for \\input{results}), results-standalone.tex, figures/*.pdf, "
        "tables/*.tex and verdicts.json; no HTML, Markdown or CSV.",
    ),
    lazy: bool | None = LAZY_OPTION,
) -> None:
    """Write a paper-ready report: index.html, report.md, figures, LaTeX/CSV tables, verdicts.json.

    Every hypothesis (or those named) is tested on every experiment of the store as one
    Holm-corrected family. A hypothesis the store cannot test is reported as such. With
    --latex-only the folder is a LaTeX bundle a paper can \\input.
    """
    from kdtheory.report.document import build_report, resolve_hypotheses

    check_alpha_option(alpha)
    try:
        names = resolve_hypotheses(hypotheses)  # unknown names fail before the store is read
    except KDTheoryError as exc:
        usage_error(str(exc))
    store = open_store(runs, lazy)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            canonical = ["report", "--runs", str(runs), "--out", str(out)]
            if hypotheses:
                canonical += ["--hypotheses", hypotheses]
            canonical += ["--alpha", f"{alpha:g}"]
            if latex_only:
                canonical.append("--latex-only")
            path = build_report(
                store,
                out,
                hypotheses=names,
                alpha=alpha,
                command=_command(canonical),
                latex_only=latex_only,
            )
        except (KDTheoryError, OSError) as exc:
            _echo_warnings(caught)
            usage_error(str(exc))
    _echo_warnings(caught)
    n_fig = len(list((path / "figures").glob("*.pdf")))
    n_tab = len(list((path / "tables").glob("*.tex")))
    pages = "results.tex, results-standalone.tex" if latex_only else "index.html, report.md"
    typer.echo(
        f"wrote {path}/{pages} and verdicts.json ({len(names)} hypotheses, "
        f"{n_fig} figures, {n_tab} LaTeX tables)",
        err=True,
    )


def plot_command(
    name: str = typer.Argument(
        ..., help="Figure: accuracy, kd-gain, gaps, fidelity, collapse, ... (`kdtheory plugins`)."
    ),
    runs: Path = typer.Option(..., "--runs", "-r", help="Run store folder or combined .nc file."),
    output: Path = typer.Option(
        ..., "--output", "-o", help="File to write; its suffix picks the format (.pdf, .png, .svg)."
    ),
    experiment: list[str] | None = typer.Option(
        None, "--experiment", "-e", help="Only this experiment (repeatable)."
    ),
    dpi: int = typer.Option(200, "--dpi", help="Resolution of raster formats."),
    by: str | None = typer.Option(
        None,
        "--by",
        help="With `plot factor`: KD's gain vs kappa per level of temperature, objective, "
        "student or teacher-fraction.",
    ),
    lazy: bool | None = LAZY_OPTION,
) -> None:
    """Draw one registered figure of a run store (the built-ins: `kdtheory.report.figures`),
    or `factor --by FACTOR`: KD's gain per level of a modelling factor."""
    spec = hyp = None
    if name == "factor" or by is not None:
        hyp = _factor_hypothesis(name, by)
    else:
        try:
            spec = plugin_registry("figures").get(name)
        except KDTheoryError as exc:
            usage_error(str(exc))
    if not output.suffix:
        usage_error(f"--output {output}: give a file suffix such as .pdf, .png or .svg")
    store = open_store(runs, lazy)
    try:
        if spec is None:
            fig = _factor_figure(hyp, store, str(by), experiment)
        else:
            fig = spec.draw(store, experiments=experiment or None)
        from kdtheory.report.figures import save_as

        path = save_as(fig, output, dpi=dpi)
    except (KDTheoryError, ValueError, OSError) as exc:
        usage_error(str(exc))
    typer.echo(f"wrote {path}", err=True)


def _factor_hypothesis(name: str, by: str | None) -> Any:
    """The hypothesis that draws ``plot factor --by`` (data-efficiency, through the registry:
    the core never imports the built-in plugins), with ``--by`` checked."""
    if name != "factor":
        usage_error(f"--by: only `kdtheory plot factor --by ...` takes --by (got {name!r})")
    try:
        hyp = plugin_registry("hypotheses").get("data-efficiency")
    except KDTheoryError as exc:
        usage_error(str(exc))
    if by is None:
        usage_error(
            "plot factor: give --by, one of temperature, objective, student, teacher-fraction"
        )
    try:
        hyp.check_factor(by)
    except KDTheoryError as exc:
        usage_error(str(exc))
    return hyp


def _factor_figure(hyp: Any, store: Any, by: str, experiments: list[str] | None) -> Any:
    """The factor figure of ``store`` (only ``experiments`` when given)."""
    if experiments:
        missing = [e for e in experiments if e not in store]
        if missing:
            raise KDTheoryError(f"--experiment: not in the store: {', '.join(missing)}")
        store = {e: store[e] for e in experiments}
    return hyp.factor_figure(store, by)


def register(app: typer.Typer) -> None:
    """Add the report commands (``report``, ``plot``) to ``app``."""
    app.command("report")(report_command)
    app.command("plot")(plot_command)
