"""Saving figures atomically as vector PDF and PNG."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from kdtheory.report.figures.style import PNG_DPI, paper_style
from kdtheory.store import accessor as _accessor  # noqa: F401 - registers ``Dataset.kd``


def save(
    fig: Figure,
    stem: str | os.PathLike[str],
    formats: Sequence[str] = ("pdf", "png"),
    dpi: int = PNG_DPI,
) -> list[Path]:
    """Write ``fig`` as ``stem.pdf`` (vector) and ``stem.png`` (``dpi``, default
    :data:`~kdtheory.report.figures.style.PNG_DPI`), atomically.

    A suffix on ``stem`` that names one of ``formats`` is dropped (``save(fig, "acc.pdf")``
    writes ``acc.pdf`` and ``acc.png``). Returns the written paths. PDFs carry no creation date,
    so the same figure gives the same bytes.
    """
    from kdtheory.store.atomic import write_atomic

    stem = Path(stem)
    if stem.suffix.lstrip(".").lower() in {f.lower() for f in formats}:
        stem = stem.with_suffix("")
    written = []
    engine = fig.get_layout_engine()
    try:
        for fmt in formats:
            fmt = fmt.lower().lstrip(".")
            path = stem.parent / f"{stem.name}.{fmt}"
            write_atomic(path, partial(_savefig, fig, fmt=fmt, dpi=dpi))
            written.append(path)
            if engine is not None and fig.get_layout_engine() is engine:
                # the layout is done: keep it for the other formats instead of redoing it
                fig.set_layout_engine("none")
    finally:
        if engine is not None and fig.get_layout_engine() is not engine:
            fig.set_layout_engine(engine)
    return written


def save_as(fig: Figure, path: str | os.PathLike[str], dpi: int = PNG_DPI) -> Path:
    """Write ``fig`` to ``path`` in the format its suffix names (pdf, png, svg, eps, ...)."""
    from kdtheory.store.atomic import write_atomic

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if not fmt:
        raise ValueError(f"{path}: give a file suffix such as .pdf or .png")
    supported = FigureCanvasAgg(Figure()).get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(
            f"{path}: cannot write .{fmt} figures; choose one of "
            f"{', '.join('.' + k for k in sorted(supported))}"
        )
    write_atomic(path, partial(_savefig, fig, fmt=fmt, dpi=dpi))
    return path


def _savefig(fig: Figure, tmp: Path, *, fmt: str, dpi: int) -> None:
    metadata: dict[str, Any] | None = None
    if fmt == "pdf":
        metadata = {"Creator": "kdtheory", "Producer": None, "CreationDate": None}
    elif fmt == "png":
        metadata = {"Software": "kdtheory"}
    elif fmt == "svg":
        metadata = {"Date": None}
    with paper_style():
        fig.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata, facecolor="white")
