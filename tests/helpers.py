"""Helpers shared by several test modules: the small synthetic-store sizes and CLI test tools."""

from __future__ import annotations

from collections.abc import Callable

import typer

SMALL = {
    "n_seeds": 3,
    "n_train": 200,
    "n_test": 100,
    "n_classes": 5,
    "fractions": (0.1, 0.3, 1.0),
    "n_feature_sample": 60,
    "n_features": 8,
    "n_teacher_features": 8,
}


def cli_app(register: Callable[[typer.Typer], None]) -> typer.Typer:
    """A bare typer app with the commands that ``register`` adds."""
    app = typer.Typer(add_completion=False)
    register(app)
    return app


def stderr_of(result) -> str:
    """stderr where the runner keeps it apart, else the mixed output."""
    try:
        return result.stderr or ""
    except ValueError:
        return result.output
