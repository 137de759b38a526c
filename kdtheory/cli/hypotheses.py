"""`kdtheory list` and `kdtheory test`: list the registered hypotheses and test them on a store.

Exit status of ``kdtheory test``: 0 whenever verdicts were reached, whatever they are
(supported, rejected or inconclusive); 2 with a message on stderr for a usage error, an unknown
hypothesis, a run store that cannot be used, or missing requirements.
"""

from __future__ import annotations

import json
import os
import tempfile
import textwrap
import warnings
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn

import typer

from kdtheory.errors import KDTheoryError

EXIT_USAGE = 2


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


def _hypothesis_registry() -> Any:
    """The hypothesis registry; plugin import warnings go to stderr as ``warning: ...`` and a
    registry that cannot be built (a name registered twice) is an error (exit 2)."""
    from kdtheory.plugin import manager as plugin_manager

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", plugin_manager.PluginLoadWarning)
        try:
            registry = plugin_manager.get_registries().hypotheses
        except KDTheoryError as exc:
            usage_error(str(exc))
    for w in caught:
        if issubclass(w.category, plugin_manager.PluginLoadWarning):
            typer.echo(f"warning: {w.message}", err=True)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return registry


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


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder + os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def list_command(
    fmt: ListFormat = typer.Option(
        ListFormat.text, "--format", "-f", help="Output format.", case_sensitive=False
    ),
) -> None:
    """List every registered hypothesis: name, claim, what it needs, and where it comes from."""
    from kdtheory.hypothesis.base import describe_all

    _hypothesis_registry()
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
) -> None:
    """Test one hypothesis, or 'all' of them as a Holm-corrected family, on a run store."""
    from kdtheory.hypothesis.base import run_all, run_test
    from kdtheory.hypothesis.verdict import render

    if not (0.0 < alpha < 0.5):
        usage_error(f"--alpha must lie in (0, 0.5); got {alpha}")
    try:
        opts = parse_options(option)
    except ValueError as exc:
        usage_error(str(exc))
    registry = _hypothesis_registry()
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
    store = open_store(runs)
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
        try:
            write_atomic(output, text if text.endswith("\n") else text + "\n")
        except OSError as exc:
            usage_error(f"cannot write {output}: {exc}")
        n = len(result) if isinstance(result, list) else 1
        typer.echo(f"wrote {n} verdict(s) as {fmt.value} to {output}", err=True)
        return
    typer.echo(text.rstrip("\n"))


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
