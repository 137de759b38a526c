"""`kdtheory list` and `kdtheory test`: list the registered hypotheses and test them on a store.

Exit status of ``kdtheory test``: 0 whenever verdicts were reached, whatever they are
(supported, rejected or inconclusive); 2 with a message on stderr for a usage error, an unknown
hypothesis, a run store that cannot be used, or missing requirements.
"""

from __future__ import annotations

import json
import textwrap
from enum import Enum
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


class OutputFormat(str, Enum):
    text = "text"
    json = "json"
    markdown = "markdown"
    latex = "latex"
    latex_document = "latex-document"
    csv = "csv"
    html = "html"


class ListFormat(str, Enum):
    text = "text"
    json = "json"


def parse_options(items: list[str] | None) -> dict[str, str]:
    """``["key=value", ...]`` -> ``{"key": "value"}``; raises ValueError on a malformed item."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"--option expects key=value, got {item!r}")
        if key in out:
            raise ValueError(f"--option {key!r} given twice")
        out[key] = value
    return out


def list_command(
    fmt: ListFormat = typer.Option(
        ListFormat.text, "--format", "-f", help="Output format.", case_sensitive=False
    ),
) -> None:
    """List every registered hypothesis: name, claim, what it needs, and where it comes from."""
    from kdtheory.hypothesis.base import describe_all

    plugin_registry("hypotheses")
    try:
        infos = describe_all()
    except KDTheoryError as exc:
        usage_error(str(exc))
    if fmt == ListFormat.json:
        typer.echo(json.dumps(infos, indent=2))
        return
    if not infos:
        typer.echo("no hypotheses registered")
        return
    blocks = []
    for info in infos:
        needs = info["needs"]
        objectives = ", ".join(needs["objectives"]) or "(none)"
        variables = ", ".join(needs["variables"]) or "(none)"
        lines = [info["name"]]
        lines += textwrap.wrap(
            f"claim:    {info['claim']}", width=100, initial_indent="  ", subsequent_indent=" " * 12
        )
        lines += textwrap.wrap(
            f"needs:    objectives {objectives}; variables {variables}",
            width=100,
            initial_indent="  ",
            subsequent_indent=" " * 12,
        )
        if info.get("options"):
            opts = ", ".join(f"{k}={v!r}" for k, v in info["options"].items())
            lines.append(f"  options:  {opts}")
        lines.append(f"  source:   {info['source']}")
        blocks.append("\n".join(lines))
    typer.echo("\n\n".join(blocks))


def test_command(
    name: str = typer.Argument(..., help="Hypothesis name (see `kdtheory list`), or 'all'."),
    runs: Path = typer.Option(..., "--runs", "-r", help="Run store folder or combined .nc file."),
    alpha: float = typer.Option(0.05, "--alpha", "-a", help="Significance level, in (0, 0.5)."),
    fmt: OutputFormat = typer.Option(
        OutputFormat.text, "--format", "-f", help="Output format.", case_sensitive=False
    ),
    option: list[str] | None = typer.Option(
        None, "--option", "-o", help="Hypothesis option key=value (repeatable)."
    ),
    output: Path | None = typer.Option(
        None, "--output", help="Write to this file (atomically) instead of stdout."
    ),
    details: bool = typer.Option(
        False, "--details", help="Text/Markdown/HTML: add tables and fitted models' summaries."
    ),
    by: str | None = typer.Option(
        None,
        "--by",
        help="data-efficiency only: does this factor change data efficiency? temperature, "
        "objective, student or teacher-fraction (the slope per level and an interaction test).",
    ),
    lazy: bool | None = LAZY_OPTION,
) -> None:
    """Test one hypothesis, or 'all' of them as a Holm-corrected family, on a run store."""
    from kdtheory.hypothesis.family import run_all, run_test
    from kdtheory.hypothesis.verdict import render

    check_alpha_option(alpha)
    try:
        opts = parse_options(option)
    except ValueError as exc:
        usage_error(str(exc))
    if by is not None:
        _test_by_factor(name, by, runs, alpha, fmt, opts, output, details, lazy)
        return
    registry = plugin_registry("hypotheses")
    try:
        if name == "all":
            hyp = None
            if not len(registry):
                usage_error("no hypotheses are registered")
        else:
            hyp = registry.get(name)
            hyp.validate_options(opts)  # fail fast, before loading the store
    except KDTheoryError as exc:
        usage_error(str(exc))
    store = open_store(runs, lazy)
    try:
        if hyp is None:
            result: Any = run_all(store, alpha=alpha, **opts)
        else:
            result = run_test(hyp, store, alpha=alpha, **opts)
    except KDTheoryError as exc:
        usage_error(str(exc))
    text = render(result, fmt.value, details=details)
    warn_convergence(result if isinstance(result, list) else [result])
    if output is not None:
        from kdtheory.store.atomic import write_text_atomic

        try:
            write_text_atomic(output, text if text.endswith("\n") else text + "\n")
        except OSError as exc:
            usage_error(f"cannot write {output}: {exc}")
        n = len(result) if isinstance(result, list) else 1
        typer.echo(f"wrote {n} verdict(s) as {fmt.value} to {output}", err=True)
        return
    typer.echo(text.rstrip("\n"))


def _test_by_factor(
    name: str,
    by: str,
    runs: Path,
    alpha: float,
    fmt: OutputFormat,
    opts: dict[str, str],
    output: Path | None,
    details: bool,
    lazy: bool | None = False,
) -> None:
    """``kdtheory test data-efficiency --by FACTOR``: the factor's interaction test.

    The hypothesis does the work (its ``by_factor``): the core never imports the built-in
    plugins."""
    if fmt == OutputFormat.latex_document:
        usage_error("--by: --format latex-document is not available; use latex for a fragment")
    registry = plugin_registry("hypotheses")
    try:
        hyp = None if name == "all" else registry.get(name)
    except KDTheoryError as exc:
        usage_error(str(exc))
    if hyp is None or not callable(getattr(hyp, "by_factor", None)):
        usage_error(
            f"--by: {name!r} is not tested by factor; run `kdtheory test data-efficiency --by "
            f"{by} --runs {runs}`"
        )
    try:
        hyp.check_factor(by)
        hyp.validate_options(opts)  # fail fast, before loading the store
    except KDTheoryError as exc:
        usage_error(str(exc))
    store = open_store(runs, lazy)
    try:
        result = hyp.by_factor(store, by, alpha, **opts)
        text = result.render(fmt.value, details=details)
    except KDTheoryError as exc:
        usage_error(str(exc))
    if result.warnings:
        from kdtheory.store.convergence import problem_note

        typer.echo(f"warning: {problem_note(len(result.warnings))}", err=True)
    _emit(text, output, f"wrote the data-efficiency by {by} result as {fmt.value}")


def _emit(text: str, output: Path | None, written: str) -> None:
    """Write ``text`` to ``output`` atomically (saying so on stderr), else to stdout."""
    if output is None:
        typer.echo(text.rstrip("\n"))
        return
    from kdtheory.store.atomic import write_text_atomic

    try:
        write_text_atomic(output, text if text.endswith("\n") else text + "\n")
    except OSError as exc:
        usage_error(f"cannot write {output}: {exc}")
    typer.echo(f"{written} to {output}", err=True)


def warn_convergence(verdicts: list[Any]) -> None:
    """One line on stderr when the verdicts rest on under-trained cells or a weak teacher."""
    from kdtheory.store.convergence import problem_note

    lines = list(dict.fromkeys(w for v in verdicts for w in v.warnings))
    if lines:
        typer.echo(f"warning: {problem_note(len(lines))}", err=True)


def register(app: typer.Typer) -> None:
    """Add the hypothesis commands (``list``, ``test``) to ``app``."""
    app.command("list")(list_command)
    app.command("test")(test_command)
