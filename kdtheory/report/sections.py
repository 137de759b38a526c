"""Report sections: what plugins add under a verdict's heading, and collecting them.

The figures and tables under each hypothesis come from the ``kdtheory_report_sections`` hook
(:mod:`kdtheory.plugin.hookspecs`): every plugin returns :class:`ReportSection` objects for the
verdicts it knows. A plugin that raises gives a section saying so and a
:class:`ReportHookWarning`, instead of sinking the whole report.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdtheory.errors import MissingRequirementError

if TYPE_CHECKING:
    import xarray as xr

    from kdtheory.hypothesis.verdict import Verdict

__all__ = [
    "FIGURES_DIR",
    "TABLES_DIR",
    "ReportHookWarning",
    "ReportSection",
    "check_section_files",
    "collect_sections",
    "figure_groups",
    "inline_path",
    "overview_sections",
    "save_figure",
    "slug",
]

FIGURES_DIR = "figures"
TABLES_DIR = "tables"


class ReportHookWarning(UserWarning):
    """A hypothesis test or a ``kdtheory_report_sections`` plugin failed; the report says so."""


def slug(text: str) -> str:
    """A file-name-safe version of ``text``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "item"


def stem(path: str) -> str:
    """``path`` without its suffix (``figures/a.png`` -> ``figures/a``)."""
    p = Path(path)
    return (p.parent / p.stem).as_posix()


@dataclass
class ReportSection:
    """Figures, tables and text a plugin adds under one verdict's heading in a report.

    Attributes
    ----------
    title : str
        Heading of the section.
    text : str
        Markdown shown above the figures (rendered to HTML in ``index.html``; raw HTML, images
        and links are shown as text there, so the page stays self-contained).
    figures : list of str
        Paths relative to the report folder, e.g. ``"figures/accuracy.png"``. Files that
        differ only in their suffix are one figure: a PNG (or SVG) is shown inline, every
        format is linked.
    tables : list of str
        Paths relative to the report folder (``.tex``, ``.csv``, ``.md``, ...); all are linked,
        ``.md`` tables are shown inline, small CSV tables too in ``index.html``.
    captions : dict of str to str
        Optional caption per figure (keyed by any of its paths or by its stem).
    """

    title: str
    text: str = ""
    figures: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    captions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReportSection:
        return cls(
            title=str(data.get("title", "")),
            text=str(data.get("text", "")),
            figures=[str(f) for f in data.get("figures") or []],
            tables=[str(t) for t in data.get("tables") or []],
            captions={str(k): str(v) for k, v in (data.get("captions") or {}).items()},
        )

    def caption(self, name: str) -> str:
        """The caption of the figure ``name`` (a path or a stem); empty without one."""
        for key, text in self.captions.items():
            if name in (key, stem(key)) or Path(name).name in (key, Path(stem(key)).name):
                return text
        return ""


def save_figure(fig: Any, out_dir: str | os.PathLike[str], name: str) -> list[str]:
    """Save ``fig`` as ``figures/<name>.pdf`` and ``.png`` under ``out_dir``; return the paths
    relative to ``out_dir``."""
    from kdtheory.report.figures import save

    written = save(fig, Path(out_dir) / FIGURES_DIR / slug(name))
    return [p.relative_to(out_dir).as_posix() for p in written]


def figure_groups(paths: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``paths`` grouped by stem: the files of one figure in several formats."""
    groups: dict[str, list[str]] = {}
    for p in paths:
        groups.setdefault(stem(p), []).append(p)
    return list(groups.items())


def inline_path(paths: Sequence[str]) -> str | None:
    """The file of a figure a page shows inline (PNG first, then SVG, ...); None without one."""
    for suffix in (".png", ".svg", ".jpg", ".jpeg", ".gif", ".webp"):
        for p in paths:
            if p.lower().endswith(suffix):
                return p
    return None


def collect_sections(
    verdict: Verdict, store: Mapping[str, xr.Dataset], out_dir: Path, pm: Any = None
) -> list[ReportSection]:
    """Call every ``kdtheory_report_sections`` implementation for ``verdict``.

    Each plugin is called on its own: one that raises gives a section saying so (and a
    :class:`ReportHookWarning`) while the others still contribute.
    """
    if pm is None:
        from kdtheory.plugin.manager import get_registries

        pm = get_registries().pm
    kwargs = {"verdict": verdict, "store": store, "out_dir": Path(out_dir)}
    sections: list[ReportSection] = []
    impls = pm.hook.kdtheory_report_sections.get_hookimpls()
    for impl in reversed(impls):  # pluggy's call order
        if getattr(impl, "hookwrapper", False) or getattr(impl, "wrapper", False):
            continue
        try:
            result = impl.function(**{k: kwargs[k] for k in impl.argnames if k in kwargs})
        except Exception as exc:  # noqa: BLE001 - one plugin must not sink the report
            warnings.warn(
                f"report plugin {impl.plugin_name!r} failed for {verdict.hypothesis!r}: "
                f"{type(exc).__name__}: {exc}",
                ReportHookWarning,
                stacklevel=2,
            )
            sections.append(
                ReportSection(
                    title=f"Figures of {impl.plugin_name} unavailable",
                    text=f"The report plugin `{impl.plugin_name}` failed: "
                    f"`{type(exc).__name__}: {exc}`",
                )
            )
            continue
        for item in result or []:
            if isinstance(item, ReportSection):
                sections.append(item)
            elif isinstance(item, Mapping) and "title" in item:
                sections.append(ReportSection.from_dict(item))
            else:
                warnings.warn(
                    f"report plugin {impl.plugin_name!r} returned {type(item).__name__}, not a "
                    "kdtheory.report.document.ReportSection; ignored",
                    ReportHookWarning,
                    stacklevel=2,
                )
    return sections


def overview_sections(store: Mapping[str, xr.Dataset], out_dir: Path) -> list[ReportSection]:
    """Figures about the store as a whole: accuracy curves, and temperatures when several."""
    from kdtheory.report import figures as plot

    figures: list[str] = []
    captions: dict[str, str] = {}
    notes: list[str] = []
    for name, fn, caption in (
        (
            "accuracy",
            plot.accuracy_curves,
            "Test accuracy vs the number of student training samples κ (log axis), one colour "
            "per method, one panel per experiment; lines are means over seeds (the number of "
            "seeds is stated on the figure), bands ± 1 standard error of the mean; the dashed "
            "grey line is the teacher.",
        ),
        (
            "temperature",
            plot.temperature_effects,
            "KD at several temperatures, one column per experiment. Top: test accuracy vs κ. "
            "Bottom: KD − label accuracy (percentage points) vs the temperature T, one line per "
            "training-set fraction; bands and bars are ± 1 standard error of the mean.",
        ),
    ):
        try:
            fig = fn(store)
        except MissingRequirementError as exc:
            if name != "temperature":
                notes.append(f"No {name} figure: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001
            warnings.warn(
                f"figure {name!r} failed: {type(exc).__name__}: {exc}",
                ReportHookWarning,
                stacklevel=2,
            )
            notes.append(f"The {name} figure failed: `{type(exc).__name__}: {exc}`")
            continue
        paths = save_figure(fig, out_dir, name)
        figures += paths
        captions[name] = caption
    return [
        ReportSection(
            title="Test accuracy", text="\n\n".join(notes), figures=figures, captions=captions
        )
    ]


def check_section_files(section: ReportSection, root: Path) -> None:
    """Drop the files ``section`` lists but nobody wrote, and say so in its text."""
    missing = [p for p in [*section.figures, *section.tables] if not (root / p).is_file()]
    if missing:
        section.figures = [p for p in section.figures if p not in missing]
        section.tables = [p for p in section.tables if p not in missing]
        note = f"(Files listed by the plugin but not written: {', '.join(missing)}.)"
        section.text = f"{section.text}\n\n{note}".strip()
