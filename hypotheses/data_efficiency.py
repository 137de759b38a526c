"""``data-efficiency``: KD's accuracy gain over label training grows as data shrinks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from kdtheory.hypothesis.sections import (
    CI_NOTE,
    Figure,
    accuracy_column,
    estimate_columns,
    kappa_table,
    report_section,
    table_level,
)
from kdtheory.hypothesis.template import Options, Outcome, PooledHypothesis
from kdtheory.hypothesis.toolkit import (
    NAN,
    Effect,
    Equivalence,
    ExperimentResult,
    Pooled,
    Ruling,
    accuracy_points,
    cell_records,
    data_multiplier,
    deciding,
    fmt,
    fmt_ci,
    fmt_p,
    fraction_means,
    fraction_records,
    intersection_union,
    kd_and,
    log_kappa,
    long_form,
    mean_ci_columns,
    result_text,
    seed_slope_test,
    seed_slopes,
    sorted_experiment,
)
from kdtheory.hypothesis.verdict import Verdict
from kdtheory.stats import POOLING_METHODS, ci_level_note, one_sample_t, tost

if TYPE_CHECKING:
    import xarray as xr


class DataEfficiency(PooledHypothesis):
    """KD's accuracy gain over label training grows as the training set shrinks.

    Per (fraction, seed) the paired gain is KD − label test accuracy (points). Key effect: the
    slope of the gain on log kappa, per seed, tested across seeds (one-sided, H1: slope < 0).

    Decision (each experiment alone; with several experiments the same rule on the
    pooled tests):

    - **supported**: slope < 0 (one-sided t on per-seed slopes, p < alpha) and the gain at the
      smallest fraction > 0 (one-sided paired t, p < alpha), and the slope is not shown
      equivalent to 0 (a significant but negligible trend is not support). Deciding test: the
      intersection-union p (the larger of the two) with the slope's CI;
    - **rejected**: slope > 0 (one-sided, p < alpha), or TOST shows the slope inside
      ``±slope_margin`` accuracy points per unit log kappa (default 0.5: over a 20-fold range of
      kappa, log 20 ≈ 3, the gain changes by at most 1.5 points); the deciding test is the one
      with the smaller p (their nulls are far apart: slope <= 0 and |slope| >= margin);
    - **inconclusive** otherwise (shown: the intersection-union p).

    Options: ``kd_method`` (method label; default the kd method with T=4, else the first kd),
    ``slope_margin`` (default 0.5), ``pooling`` (``"mixed"`` or ``"hksj"``).
    """

    name: ClassVar[str] = "data-efficiency"
    claim: ClassVar[str] = (
        "KD's accuracy gain over label training grows as the training set shrinks."
    )
    prediction: ClassVar[str] = (
        "The paired gain (KD − label test accuracy) has a negative slope on log(kappa) across "
        "seeds, and is positive at the smallest fraction."
    )
    required_objectives: ClassVar[tuple[str, ...]] = ("label", "kd")
    required_variables: ClassVar[tuple[str, ...]] = ("test_logits", "test_labels")
    run_hint: ClassVar[str] = "label,kd:T=4"
    options: ClassVar[dict[str, Any]] = {
        "kd_method": None,
        "slope_margin": 0.5,
        "pooling": "mixed",
    }

    effect = "slope of KD − label test accuracy on log(kappa), accuracy points per unit log kappa"
    alternative = "less"
    pooled_lines = {
        "slope (H1: < 0)": ("slope", "less"),
        "gain at smallest fraction (H1: > 0)": ("small", "greater"),
    }

    def analyse(self, name: str, ds: xr.Dataset, opts: Options) -> ExperimentResult:
        alpha = opts.alpha
        kd, label = kd_and(ds, opts, "label")
        ds = sorted_experiment(ds)
        a_label, a_kd = accuracy_points(ds, label), accuracy_points(ds, kd)
        gain = a_kd - a_label
        x = log_kappa(ds)
        fractions = np.asarray(ds["fraction"].values, dtype=float)
        margin = float(opts["slope_margin"])

        slope = seed_slope_test(*long_form(gain, x, ds["seed"].values), "less", alpha)
        slopes = seed_slopes(gain, x)
        up = one_sample_t(slopes, "greater", alpha)
        eq = tost(slopes, -margin, margin, alpha)

        # gain at the smallest fraction with >= 2 paired seeds
        small_idx = next(
            (i for i in range(len(fractions)) if np.isfinite(gain[i]).sum() >= 2), None
        )
        if small_idx is None:
            small = Effect(NAN, NAN, NAN, NAN, NAN)
            small_fraction = NAN
        else:
            small = Effect.of(one_sample_t(gain[small_idx], "greater", alpha))
            small_fraction = float(fractions[small_idx])

        comp = {
            "slope": Effect.of(slope),
            "slope_up": Effect.of(up),
            "tost": Equivalence.of(eq),
            "small": small,
        }
        per_fraction = fraction_records(
            name,
            ds,
            fraction_means(label_accuracy=a_label, kd_accuracy=a_kd),
            mean_ci_columns(gain, alpha, "gain"),
        )
        mult = data_multiplier(
            ds["n_train"].values,
            [r["label_accuracy"] for r in per_fraction],
            [r["kd_accuracy"] for r in per_fraction],
        )
        for rec, f in zip(mult, fractions, strict=True):
            rec.update({"experiment": name, "fraction": float(f)})
        cells = {"label_accuracy": a_label, "kd_accuracy": a_kd, "gain": gain}
        note = ci_level_note("less", alpha)

        def summary(_ruling: Any) -> str:  # read when shown: the slope's OLS fit is deferred
            return (
                f"Experiment {name}: KD method {kd!r} vs label method {label!r}; gain in accuracy "
                f"points.\nPer-seed OLS slopes of the gain on log(kappa), t-test across seeds "
                f"(H1: slope < 0): slope {result_text(slope, ci=note, t_df=True)}; "
                f"H1: slope > 0 {fmt_p(up.p_value)}; TOST within ±{fmt(margin)} "
                f"{fmt_p(eq.p_value)} (equivalent: {eq.equivalent}).\n"
                f"Gain at the smallest fraction ({fmt(small_fraction)}): {fmt(small.estimate, 4)} "
                f"points, one-sided paired t (H1: > 0) {fmt_p(small.p_value)}.\n\n{slope.summary}"
            )

        return ExperimentResult(
            name=name,
            components=comp,
            settings={
                "kd_method": kd,
                "label_method": label,
                "slope_margin": margin,
                "smallest_fraction": small_fraction,
            },
            tables={
                "per_fraction": per_fraction,
                "data_multiplier": mult,
                "cells": cell_records(name, ds, cells),
            },
            summary=summary,
        )

    def rule(self, tests: Mapping[str, Any], opts: Options) -> Ruling:
        slope, up, eq, small = tests["slope"], tests["slope_up"], tests["tost"], tests["small"]
        alpha = opts.alpha
        if slope.sig(alpha) and small.sig(alpha) and not eq.equivalent:
            decision = "supported"
        elif up.sig(alpha) or eq.equivalent:
            decision = "rejected"
        else:
            decision = "inconclusive"
        shown, test = _shown(tests, decision, alpha, opts["slope_margin"])
        return Ruling(decision, shown, test, _decision_numbers(tests))

    def pool(self, pooled: Pooled, opts: Options) -> dict[str, Any]:
        margin = opts["slope_margin"]
        return {
            "slope": pooled.effect("slope", "less"),
            "slope_up": pooled.effect("slope", "greater"),
            "tost": pooled.tost("slope", -margin, margin),
            "small": pooled.effect("small", "greater"),
        }

    def describe_model(self, opts: Options) -> str:
        return (
            "Per-seed OLS slope of the paired gain (KD − label, accuracy points) on "
            "log(kappa), one-sided t-test across seeds (H1: slope < 0); one-sided paired "
            "t-test of the gain at the smallest fraction; TOST of the slope within "
            f"±{fmt(opts['slope_margin'])}; pooled across experiments: "
            f"{POOLING_METHODS[opts.pooling]}."
        )

    def reason(self, outcome: Outcome, opts: Options) -> str:
        tests, decision, k = outcome.tests, outcome.ruling.decision, outcome.k
        alpha, margin = opts.alpha, opts["slope_margin"]
        slope, up, eq, small = tests["slope"], tests["slope_up"], tests["tost"], tests["small"]
        where = f"pooled over {k} experiments" if k > 1 else "across seeds"
        s = (
            f"Slope of the KD gain on log(kappa) {fmt(slope.estimate)} points per unit log kappa "
            f"({where}; CI {fmt_ci(slope.ci_low, slope.ci_high)}, H1 < 0 {fmt_p(slope.p_value)})"
        )
        g = f"gain at the smallest fraction {fmt(small.estimate)} points ({fmt_p(small.p_value)})"
        if decision == "supported":
            return f"{s} and {g}: the gain grows significantly as data shrinks."
        if decision == "rejected":
            if up.sig(alpha):
                return (
                    f"{s}; the slope is significantly positive ({fmt_p(up.p_value)}): "
                    "the gain shrinks as data shrinks."
                )
            return (
                f"{s}; TOST shows the slope within ±{fmt(margin)} ({fmt_p(eq.p_value)}): "
                "the gain does not depend on data size."
            )
        return (
            f"{s}, {g}; neither a significant negative trend with a positive small-data gain nor "
            f"equivalence within ±{fmt(margin)} (TOST {fmt_p(eq.p_value)}) at alpha={alpha:g}."
        )

    def check_factor(self, by: str) -> str:
        """``by`` if :meth:`by_factor` takes it, else a :class:`~kdtheory.errors.SpecError`
        naming the factors ("did you mean")."""
        from kdtheory.hypotheses.factors import check_factor

        return check_factor(by)

    def by_factor(self, store: Any, by: str, alpha: float = 0.05, **options: Any) -> Any:
        """Does ``by`` change data efficiency? This hypothesis's model fitted per level of a
        factor, and the interaction test (:func:`kdtheory.hypotheses.factors.factor_test`).

        Parameters
        ----------
        store : mapping of str to xarray.Dataset
        by : str
            ``temperature``, ``objective``, ``student`` or ``teacher-fraction``.
        alpha : float
        **options
            This hypothesis's options (``kd_method``, ``slope_margin``, ``pooling``), as
            strings or values.

        Returns
        -------
        kdtheory.hypotheses.factor_result.FactorResult

        Raises
        ------
        SpecError
            For an unknown factor or option.
        MissingRequirementError
            When the store has fewer than two comparable levels of the factor.
        """
        from kdtheory.hypotheses.factors import factor_test
        from kdtheory.hypothesis.toolkit.options import resolve_options

        self.check_factor(by)
        opts = resolve_options(self, options)
        return factor_test(
            store,
            by,
            alpha,
            kd_method=opts["kd_method"],
            slope_margin=float(opts["slope_margin"]),
            pooling=opts["pooling"],
        )

    def factor_figure(self, store: Any, by: str, alpha: float = 0.05) -> Any:
        """KD's gain vs kappa per level of ``by`` (``kdtheory plot factor --by``), with the
        interaction test in the caption when the store allows it."""
        from kdtheory.errors import KDTheoryError
        from kdtheory.hypotheses.factor_report import factor_figure

        self.check_factor(by)
        try:
            result = self.by_factor(store, by, alpha)
        except KDTheoryError:
            result = None
        return factor_figure(store, by, result=result)

    def report_sections(self, verdict: Verdict, store: Any, out_dir: Path) -> list[Any]:
        """The gain and data multiplier per kappa: a figure and a table."""
        from kdtheory.report import figures as plot
        from kdtheory.report.document import Column

        records = _merge(
            verdict.tables.get("per_fraction", []),
            verdict.tables.get("data_multiplier", []),
            ["multiplier", "multiplier_bound", "status"],
        )
        for rec in records:
            rec["multiplier_text"] = _multiplier_text(rec)
        columns = [
            accuracy_column("Label", "label"),
            accuracy_column("KD", "kd"),
            *estimate_columns("Gain (points)", "gain", level=table_level(verdict)),
            Column("Data multiplier", "multiplier_text", "text", align="r"),
        ]
        tables = kappa_table(out_dir, verdict, columns, _TABLE_CAPTION, records)
        figure = Figure(
            "kd-gain",
            lambda: plot.kd_gain(store, verdict),
            "One column per experiment. Top: KD − label test accuracy (percentage points), "
            "paired by seed, vs κ; the dotted line has the fitted slope on ln κ (the key "
            "effect). Bottom: the data multiplier κ*/κ, the labelled samples label training "
            "needs to match KD, from the mean curves; open triangles are bounds where KD lies "
            f"outside the label curve. {CI_NOTE}",
        )
        from kdtheory.hypotheses.factor_report import factor_sections

        main = report_section(out_dir, "KD gain and data multiplier", [figure], tables=tables)
        return [main, *factor_sections(store, out_dir, verdict.alpha)]


def _shown(comp: Mapping[str, Any], decision: str, alpha: float, margin: float) -> tuple:
    """The deciding test of ``decision`` and the numbers a row shows for it."""
    if decision == "rejected":
        up, eq = comp["slope_up"], comp["tost"]
        if eq.equivalent and not (up.sig(alpha) and up.p_value < eq.p_value):
            return eq.deciding(f"TOST slope within ±{fmt(margin)}", "rejected", alpha)
        return deciding(up, "slope > 0 (gain shrinks with less data)", "rejected", "greater", alpha)
    slope, small = comp["slope"], comp["small"]
    what = "slope < 0 and gain at the smallest fraction > 0"
    return intersection_union(slope, [slope, small], what, alpha)


def _decision_numbers(comp: Mapping[str, Any]) -> dict[str, Any]:
    """The decision's numbers in an effect row, the same for an experiment and the pool."""
    small = comp["small"]
    return {
        "slope_p_greater": comp["slope_up"].p_value,
        "tost_p": comp["tost"].p_value,
        "tost_equivalent": comp["tost"].equivalent,
        "gain_at_smallest": small.estimate,
        "gain_at_smallest_ci": (small.ci_low, small.ci_high),
        "gain_at_smallest_p": small.p_value,
    }


def _merge(
    left: Sequence[Mapping[str, Any]], right: Sequence[Mapping[str, Any]], keys: Sequence[str]
) -> list[dict[str, Any]]:
    """Left-join ``right`` onto ``left`` by (experiment, fraction); right's ``keys`` only."""
    index = {(r.get("experiment"), r.get("fraction")): r for r in right}
    out = []
    for rec in left:
        new = dict(rec)
        other = index.get((rec.get("experiment"), rec.get("fraction")), {})
        for k in keys:
            new[k] = other.get(k)
        out.append(new)
    return out


def _multiplier_text(rec: Mapping[str, Any]) -> str:
    """The data multiplier of a table row: its value, a bound (``≥``/``≤``) or ``--``."""
    multiplier = rec.get("multiplier")
    if multiplier is not None and multiplier == multiplier:
        return f"{float(multiplier):.2f}"
    bound = rec.get("multiplier_bound")
    status = str(rec.get("status") or "")
    if bound is not None and bound == bound and status.startswith(("above", "below")):
        return ("≥ " if status.startswith("above") else "≤ ") + f"{float(bound):.2f}"
    return "--"


_TABLE_CAPTION = (
    "KD's gain over label training per training-set size kappa (mean over seeds, t-interval "
    "over seeds of the seed-paired gain) and the data multiplier kappa*/kappa: how many times "
    "more labelled samples label training needs to match KD's mean accuracy."
)


def seed_gain_slopes(ds: xr.Dataset, kd_method: str, label_method: str) -> dict[int, float]:
    """This hypothesis's model on one pair of methods: per seed, the OLS slope of the gain
    (``kd_method`` − ``label_method`` test accuracy, points) on log kappa.

    Parameters
    ----------
    ds : xarray.Dataset
        One experiment.
    kd_method, label_method : str
        Method labels (e.g. ``"kd-T4"``, ``"label"``).

    Returns
    -------
    dict of int to float
        Seed → slope, for the seeds with at least two fractions of both methods.
    """
    ds = sorted_experiment(ds)
    gain = accuracy_points(ds, kd_method) - accuracy_points(ds, label_method)
    x = log_kappa(ds)
    out: dict[int, float] = {}
    for j, seed in enumerate(ds["seed"].values):
        slope = seed_slopes(gain[:, [j]], x)
        if slope.size:
            out[int(seed)] = float(slope[0])
    return out


def by_factor(store: Any, by: str, alpha: float = 0.05, **options: Any) -> Any:
    """``DataEfficiency().by_factor(store, by, alpha, **options)``: see
    :meth:`DataEfficiency.by_factor`."""
    return DataEfficiency().by_factor(store, by, alpha, **options)
