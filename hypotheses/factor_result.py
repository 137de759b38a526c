"""The result of ``kdtheory test data-efficiency --by FACTOR`` and its renderings."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kdtheory.errors import SpecError
from kdtheory.stats.factors import InteractionTest

__all__ = ["FactorResult", "factor_name", "interaction_text"]


@dataclass
class FactorResult:
    """Whether a factor changes data efficiency: the interaction test and the slopes per level.

    Attributes
    ----------
    factor : str
    alpha, slope_margin : float
    design : str
        ``"within"`` (levels are methods of an experiment) or ``"between"`` (experiments).
    units : str
        What the interaction test replicates over: ``"seeds"`` or ``"experiments"``.
    decision : {"supported", "rejected", "inconclusive"}
    test : InteractionTest
    levels : list of dict
        Per level: the slope of the gain on log kappa (pooled over experiments where the level
        spans several), its CI, p (H0: slope 0) and how many seeds/experiments.
    contrasts : list of dict
        Per level but the reference: slope difference, CI, TOST p within ``±slope_margin``.
    experiments : list of dict
        Per experiment and level: the method, the mean per-seed slope, its CI, seeds.
    experiment_tests : list of dict
        Within-experiment interaction tests, one per experiment (``within`` design).
    reason, model : str
    notes : list of str
        Experiments left out and why.
    titles : dict of str to str
        Display titles of the experiments.
    warnings : list of str
        The store's convergence warnings (:mod:`kdtheory.store.convergence`), shown with every
        rendering.
    """

    factor: str
    alpha: float
    slope_margin: float
    design: str
    units: str
    decision: str
    test: InteractionTest
    levels: list[dict[str, Any]]
    contrasts: list[dict[str, Any]]
    experiments: list[dict[str, Any]]
    experiment_tests: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""
    model: str = ""
    notes: list[str] = field(default_factory=list)
    titles: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ data
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (NaN -> None)."""
        return _jsonable(
            {
                "hypothesis": "data-efficiency",
                "by": self.factor,
                "claim": f"{factor_name(self.factor)} changes data efficiency: the slope of KD's "
                "gain on log(kappa) differs between its levels.",
                "decision": self.decision,
                "alpha": self.alpha,
                "slope_margin": self.slope_margin,
                "design": self.design,
                "units": self.units,
                "test": {
                    "method": self.test.method,
                    "F": self.test.statistic,
                    "df_num": self.test.df_num,
                    "df_den": self.test.df_den,
                    "p_value": self.test.p_value,
                    "epsilon": self.test.epsilon,
                    "n_units": self.test.n_units,
                    "n_levels": self.test.n_levels,
                },
                "reason": self.reason,
                "model": self.model,
                "levels": self.levels,
                "contrasts": self.contrasts,
                "experiments": self.experiments,
                "experiment_tests": self.experiment_tests,
                "notes": self.notes,
                "warnings": self.warnings,
            }
        )

    def as_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON."""
        return json.dumps(self.to_dict(), indent=indent)

    # ------------------------------------------------------------------ tables
    def table_specs(self) -> dict[str, tuple[list[dict[str, Any]], list[Any], str, str | None]]:
        """Per table: its records, columns (:class:`kdtheory.report.table.Column`), caption and
        grouping key: ``levels``, ``contrasts``, ``experiments`` and ``experiment_tests``
        (the latter per experiment or stratum)."""
        from kdtheory.report.format import ci_header, interval_level
        from kdtheory.report.table import Column

        level = ci_header(interval_level(self.alpha))
        block = "Experiment" if self.design == "within" else "Stratum"
        specs: dict[str, tuple[list[dict[str, Any]], list[Any], str, str | None]] = {
            "levels": (
                self.levels,
                [
                    Column("Level", "level", "text"),
                    Column("Slope", "slope", "+.3f"),
                    Column(level, ("ci_low", "ci_high"), ".3f"),
                    Column("p (slope = 0)", "p_value", "p"),
                    Column("Experiments", "experiments", "int"),
                    Column("Seeds", "seeds", "int"),
                ],
                f"Slope of KD − label test accuracy (points) on ln κ per level of {self.factor}; "
                "negative: the gain grows as data shrinks.",
                None,
            ),
            "contrasts": (
                self.contrasts,
                [
                    Column("Level", "level", "text"),
                    Column("− reference", "reference", "text"),
                    Column("Difference", "estimate", "+.3f"),
                    Column(level, ("ci_low", "ci_high"), ".3f"),
                    Column(f"TOST p (±{self.slope_margin:g})", "tost_p", "p"),
                    Column("n", "n", "int"),
                ],
                "Each level's slope minus the reference level's, with an equivalence test "
                f"(TOST) of |difference| < {self.slope_margin:g} points per unit ln κ (the "
                f"{level} lies inside ±{self.slope_margin:g} exactly when TOST p < "
                f"{self.alpha:g}).",
                None,
            ),
            "experiments": (
                self.experiments,
                [
                    Column("Level", "level", "text"),
                    Column("Method", "method", "text"),
                    Column("Slope", "slope", "+.3f"),
                    Column(level, ("ci_low", "ci_high"), ".3f"),
                    Column("Seeds", "seeds", "int"),
                ],
                "Mean per-seed slope per experiment and level.",
                "experiment",
            ),
        }
        if self.experiment_tests:
            specs["experiment_tests"] = (
                self.experiment_tests,
                [
                    Column(block, "title", "text", wrap=True),
                    Column("F", "F", ".2f"),
                    Column("df", "df", "text"),
                    Column("p", "p_value", "p"),
                    Column("Seeds", "seeds", "int"),
                ],
                f"Within each experiment: does {self.factor} change the slope "
                "(repeated-measures ANOVA over seeds, Greenhouse–Geisser corrected)?"
                if self.design == "within"
                else f"Within each stratum (experiments alike but for {self.factor}): "
                "does the slope differ (one-way ANOVA over seeds)?",
                None,
            )
        return specs

    def tables(self) -> dict[str, Any]:
        """The result's tables (:class:`kdtheory.report.table.Table`), as
        :meth:`table_specs` describes them."""
        from kdtheory.report.table import Table

        return {
            name: Table.from_records(
                records, columns, group=group, caption=caption, titles=self.titles
            )
            for name, (records, columns, caption, group) in self.table_specs().items()
        }

    # ------------------------------------------------------------------ renderings
    def headline(self) -> str:
        """One line: the factor, the decision and the test."""
        test = interaction_text(self.test)
        return f"data-efficiency by {self.factor}: {self.decision.upper()} ({test})"

    def as_text(self, details: bool = False) -> str:
        """Plain text: headline, reason, the levels table (and the others with ``details``)."""
        parts = [self.headline(), self.reason, f"Model: {self.model}"]
        tables = self.tables()
        keys = list(tables) if details else ["levels", "contrasts"]
        for key in keys:
            parts.append(f"{tables[key].caption}\n{tables[key].to_text()}")
        parts += [f"note: {n}" for n in self.notes]
        parts += [f"Warning: {w}" for w in self.warnings]
        return "\n\n".join(p for p in parts if p)

    def __str__(self) -> str:
        return self.as_text()

    def as_markdown(self, details: bool = False) -> str:
        """Markdown: heading, decision, reason and tables."""
        from kdtheory.report.format import md_inert

        parts = [
            f"### data-efficiency by {self.factor}: **{self.decision}**",
            md_inert(self.reason),
            f"*Model:* {md_inert(self.model)}",
        ]
        tables = self.tables()
        for key in list(tables) if details else ["levels", "contrasts"]:
            parts.append(tables[key].to_markdown())
        parts += [f"*Note:* {md_inert(n)}" for n in self.notes]
        parts += [f"*Warning:* {md_inert(w)}" for w in self.warnings]
        return "\n\n".join(p for p in parts if p) + "\n"

    def as_latex(self) -> str:
        """A LaTeX fragment: the decision sentence and the levels and contrasts tabulars."""
        from kdtheory.report.format import latex_escape

        tables = self.tables()
        return (
            "\n\n\\medskip\n".join(
                [
                    f"\\paragraph{{Data efficiency by {latex_escape(self.factor)}: "
                    f"{latex_escape(self.decision)}.}} {latex_escape(self.reason)}",
                    tables["levels"].to_latex(),
                    tables["contrasts"].to_latex(),
                    *(f"\\emph{{Warning:}} {latex_escape(w)}" for w in self.warnings),
                ]
            )
            + "\n"
        )

    def as_html(self, details: bool = True) -> str:
        """An HTML fragment: heading, reason and tables."""
        from kdtheory.report.format import html_escape

        tables = self.tables()
        parts = [
            f"<h3>data-efficiency by {html_escape(self.factor)}: "
            f"<b>{html_escape(self.decision)}</b></h3>",
            f"<p>{html_escape(self.reason)}</p>",
            f"<p><i>Model:</i> {html_escape(self.model)}</p>",
        ]
        for key in list(tables) if details else ["levels", "contrasts"]:
            parts.append(f"<p>{html_escape(tables[key].caption)}</p>{tables[key].to_html()}")
        parts += [f"<p><i>Note:</i> {html_escape(n)}</p>" for n in self.notes]
        parts += [f"<p><b>Warning:</b> {html_escape(w)}</p>" for w in self.warnings]
        return "\n".join(parts) + "\n"

    def as_csv(self) -> str:
        """The per-experiment, per-level slopes as CSV (one row each, experiment ids kept)."""
        from kdtheory.report.tables import records_to_csv

        return records_to_csv(self.experiments)

    def render(self, fmt: str, details: bool = False) -> str:
        """``text``, ``json``, ``markdown``, ``latex``, ``csv`` or ``html``."""
        if fmt == "json":
            return self.as_json()
        if fmt == "markdown":
            return self.as_markdown(details)
        if fmt == "latex":
            return self.as_latex()
        if fmt == "csv":
            return self.as_csv()
        if fmt == "html":
            return self.as_html(details)
        if fmt == "text":
            return self.as_text(details)
        raise SpecError(
            f"--format {fmt}: not available with --by; use text, json, markdown, latex, csv or html"
        )


def factor_name(by: str) -> str:
    """The factor as the subject of a sentence (``"The temperature"``)."""
    return {
        "temperature": "The temperature",
        "objective": "The objective",
        "student": "The student",
        "teacher-fraction": "The teacher's share of the data",
    }[by]


def interaction_text(test: InteractionTest) -> str:
    """``"F(2, 6) = 3.1, p = 0.12"``, or that the interaction could not be tested."""
    if not np.isfinite(test.p_value):
        return "interaction not testable"
    return f"F({test.df_num:.3g}, {test.df_den:.3g}) = {test.statistic:.3g}, p = {test.p_value:.3g}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
