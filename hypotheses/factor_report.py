"""The figure and the report sections of ``kdtheory test data-efficiency --by FACTOR``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from kdtheory.errors import MissingRequirementError
from kdtheory.hypotheses.factor_result import FactorResult, interaction_text
from kdtheory.hypotheses.factors import (
    FACTORS,
    FIX_HINTS,
    WITHIN,
    check_factor,
    experiment_levels,
    factor_test,
    level_order,
    natural_key,
    stratum_of,
)

__all__ = ["factor_figure", "factor_panels", "factor_sections"]


def factor_panels(
    store: Mapping[str, Any], by: str, kd_method: str | None = None
) -> list[tuple[str, list[tuple[str, np.ndarray, np.ndarray]]]]:
    """The curves of :func:`kdtheory.report.figures.factors.level_gains` for a factor.

    One panel per experiment (``temperature``, ``objective``) or per stratum of experiments
    alike but for the factor (``student``, ``teacher-fraction``); in each, per level, kappa and
    the seed-paired gain KD − label (fraction × seed, accuracy points).
    """
    from kdtheory.hypothesis.toolkit import accuracy_points, sorted_experiment
    from kdtheory.store.titles import experiment_titles

    check_factor(by)
    titles = experiment_titles(store)
    strata: dict[str, str] = {}
    found: dict[str, list[tuple[str, Any, np.ndarray, np.ndarray]]] = {}
    for name, ds in store.items():
        label = ds.kd.pick("label", None)
        levels = experiment_levels(ds, by, kd_method)
        if label is None or not levels:
            continue
        ds = sorted_experiment(ds)
        kappa = np.asarray(ds["n_train"].values, dtype=float)
        block = titles.get(name, name) if by in WITHIN else stratum_of(ds, by, strata)
        base = accuracy_points(ds, label)
        for level, key, arm in levels:
            found.setdefault(block, []).append((level, key, kappa, accuracy_points(ds, arm) - base))
    order = level_order([{"level": c[0], "key": c[1]} for cs in found.values() for c in cs])
    return [
        (block, [(lv, k, g) for lv, _, k, g in sorted(cs, key=lambda c: order.index(c[0]))])
        for block, cs in sorted(found.items(), key=lambda item: natural_key(item[0]))
        if len({c[0] for c in cs}) >= 2  # a panel compares levels
    ]


def factor_figure(
    store: Mapping[str, Any],
    by: str,
    kd_method: str | None = None,
    result: FactorResult | None = None,
) -> Any:
    """``kdtheory plot factor --by BY``: KD's gain vs kappa per level of ``by`` (a matplotlib
    ``Figure``), with the interaction test's result in the caption when ``result`` is given."""
    from kdtheory.report.figures.factors import level_gains

    note = f"Interaction: {interaction_text(result.test)} ({result.decision})." if result else ""
    panels = factor_panels(store, by, kd_method)
    if not panels:
        raise MissingRequirementError(
            f"--by {by}: no experiment (or group of experiments alike but for {by}) has two "
            f"levels of {by} to compare; to fix it, {FIX_HINTS[by]}."
        )
    return level_gains(panels, by, note=note)


def factor_sections(store: Mapping[str, Any], out_dir: Any, alpha: float) -> list[Any]:
    """Report sections ``Data efficiency by <factor>``: one per factor the store has two or
    more comparable levels of (figure, levels and contrasts tables, the interaction test).

    Parameters
    ----------
    store : mapping of str to xarray.Dataset
    out_dir : Path
        The report folder.
    alpha : float
    """
    from pathlib import Path

    from kdtheory.hypothesis.sections import Figure, report_section
    from kdtheory.report.tables import TablePaths, write_table

    out = []
    for by in FACTORS:
        try:
            result = factor_test(store, by, alpha)
        except MissingRequirementError:
            continue
        specs = result.table_specs()
        tables = TablePaths()
        for name in ("levels", "contrasts"):
            records, columns, caption, _ = specs[name]
            tables += write_table(
                Path(out_dir), f"data-efficiency-by-{by}-{name}", records, columns, caption, None
            )
        figure = Figure(
            f"data-efficiency-by-{by}",
            lambda by=by, result=result: factor_figure(store, by, result=result),
            f"KD − label test accuracy (percentage points, paired by seed) vs κ per level of "
            f"{by}, one panel per experiment"
            + ("" if by in WITHIN else " group (experiments alike but for the factor)")
            + f". Interaction test: {interaction_text(result.test)}; decision: {result.decision}.",
        )
        text = f"**{result.decision}**: {result.reason}\n\n*Model:* {result.model}"
        out.append(
            report_section(
                Path(out_dir),
                f"Data efficiency by {by}",
                [figure],
                text=text,
                tables=tables,
            )
        )
    return out
