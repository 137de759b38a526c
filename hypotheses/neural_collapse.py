"""``neural-collapse``: KD students collapse less and align more with the teacher's features."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from kdtheory.hypothesis.sections import (
    CI_NOTE,
    Figure,
    estimate_columns,
    kappa_table,
    report_section,
    table_level,
)
from kdtheory.hypothesis.template import Options, Outcome, PooledHypothesis
from kdtheory.hypothesis.toolkit import (
    Effect,
    ExperimentResult,
    Ruling,
    cell_records,
    deciding,
    fmt,
    fmt_ci,
    fmt_p,
    fraction_label,
    fraction_records,
    intersection_union,
    kd_and,
    log_kappa,
    long_form,
    mean_ci_columns,
    pct,
    result_text,
    seed_means,
    seed_slope_test,
    sorted_experiment,
)
from kdtheory.hypothesis.verdict import Verdict
from kdtheory.metrics import NC_KEYS, collapse_table
from kdtheory.stats import POOLING_METHODS, ci_level_note, one_sample_t

if TYPE_CHECKING:
    import xarray as xr

_METRICS = (*NC_KEYS, "cka")


class NeuralCollapse(PooledHypothesis):
    """KD students collapse less than label students and align more with the teacher.

    From :func:`kdtheory.metrics.collapse_table` (penultimate features of each cell on the feature
    rows it trained on, ``subset="trained"``, and the rest, ``"unseen"``). The model is
    log NC1 ~ method × log kappa with seeds as replication:

    - key effect: the paired (seed, fraction) difference in log NC1, KD − label, on trained-on
      rows; per-seed mean over fractions, one-sided t-test across seeds (H1: > 0, KD's
      within-class variability is *not* driven as far to zero);
    - secondary: linear CKA with the teacher's features, KD − label, trained-on rows (H1: > 0);
    - interaction: per-seed slope of the log NC1 difference on log kappa (two-sided, reported).

    Decision (the same rule on the pooled tests with several experiments):
    **supported** when both the NC1 and the CKA differences are significant in the predicted
    direction; **rejected** when the NC1 difference is significantly negative (KD collapses
    *more*); **inconclusive** otherwise. Cells whose NC1 is not positive cannot enter a log and
    are counted in the reason and ``tables["excluded"]``.

    Deciding test: for "supported" (and "inconclusive") the intersection-union p of the NC1 and
    CKA tests (the larger) with the NC1 difference's CI; for "rejected" the one-sided NC1 test
    H1 < 0.

    Options: ``kd_method`` (default the kd method with T=4, else the first), ``pooling``
    (``"mixed"`` or ``"hksj"``).
    """

    name: ClassVar[str] = "neural-collapse"
    claim: ClassVar[str] = (
        "KD students collapse less than label-trained students (within-class variability is not "
        "driven to zero) and their features align more with the teacher's."
    )
    prediction: ClassVar[str] = (
        "On the samples they trained on, KD students have larger NC1 (log NC1, KD − label > 0) "
        "and larger linear CKA with the teacher's features than label students."
    )
    required_objectives: ClassVar[tuple[str, ...]] = ("label", "kd")
    required_variables: ClassVar[tuple[str, ...]] = (
        "features",
        "classifier_weight",
        "teacher_features",
    )
    run_hint: ClassVar[str] = "label,kd:T=4"
    options: ClassVar[dict[str, Any]] = {"kd_method": None, "pooling": "mixed"}

    effect = "mean log NC1 difference (KD − label) on trained-on samples, log ratio"
    pooled_lines = {
        "log NC1 KD − label (H1: > 0)": ("key", "greater"),
        "CKA KD − label (H1: > 0)": ("cka", "greater"),
        "interaction slope (two-sided)": ("interaction", "two-sided"),
    }

    def analyse(self, name: str, ds: xr.Dataset, opts: Options) -> ExperimentResult | str:
        alpha = opts.alpha
        kd, label = kd_and(ds, opts, "label")
        missing = [v for v in self.required_variables if v not in ds.variables]
        if missing:
            return f"lacks {', '.join(missing)} (store features with the run)"
        ds = sorted_experiment(ds)
        needed = [
            v
            for v in (*self.required_variables, "classifier_bias", "train_labels", "in_train")
            if v in ds.variables
        ]
        table = collapse_table(ds[needed].sel(arm=[label, kd]))

        arms = [str(a) for a in table["arm"].values]
        subsets = [str(x) for x in table["subset"].values]
        arrays = {  # (arm, subset, fraction, seed) per variable: one transpose, then indexing
            var: np.asarray(
                table[var].transpose("arm", "subset", "fraction", "seed").values, dtype=float
            )
            for var in (*_METRICS, "n_samples")
        }

        def get(var: str, method: str, subset: str) -> np.ndarray:
            return arrays[var][arms.index(method), subsets.index(subset)]

        cell_table = []
        logs: dict[tuple[str, str], np.ndarray] = {}
        for m in (label, kd):
            for subset in ("trained", "unseen"):
                vals = {v: get(v, m, subset) for v in _METRICS}
                vals["n_samples"] = np.nan_to_num(get("n_samples", m, subset)).astype(int)
                cell_table += cell_records(name, ds, vals, method=m, subset=subset)
                with np.errstate(divide="ignore", invalid="ignore"):
                    logs[(m, subset)] = np.where(vals["nc1"] > 0, np.log(vals["nc1"]), np.nan)
        excluded = [
            {k: rec[k] for k in ("experiment", "method", "subset", "fraction", "seed", "nc1")}
            | {"reason": "NC1 <= 0 cannot enter a log"}
            for rec in cell_table
            if np.isfinite(rec["nc1"]) and rec["nc1"] <= 0
        ]
        d_nc1 = logs[(kd, "trained")] - logs[(label, "trained")]
        d_cka = get("cka", kd, "trained") - get("cka", label, "trained")
        d_nc1_u = logs[(kd, "unseen")] - logs[(label, "unseen")]
        d_cka_u = get("cka", kd, "unseen") - get("cka", label, "unseen")

        nc1_means = seed_means(d_nc1)
        key = one_sample_t(nc1_means, "greater", alpha)
        opposite = one_sample_t(nc1_means, "less", alpha)
        cka = one_sample_t(seed_means(d_cka), "greater", alpha)
        inter = seed_slope_test(
            *long_form(d_nc1, log_kappa(ds), ds["seed"].values), "two-sided", alpha
        )
        nc1_u = one_sample_t(seed_means(d_nc1_u), "greater", alpha)
        cka_u = one_sample_t(seed_means(d_cka_u), "greater", alpha)
        comp = {
            "key": Effect.of(key),
            "opposite": Effect.of(opposite),
            "cka": Effect.of(cka),
            "interaction": Effect.of(inter),
        }
        per_fraction = fraction_records(
            name,
            ds,
            *(
                mean_ci_columns(d, alpha, column, prefix_ci=True, n_key=f"{column}_n")
                for column, d in (
                    ("log_nc1_diff_trained", d_nc1),
                    ("cka_diff_trained", d_cka),
                    ("log_nc1_diff_unseen", d_nc1_u),
                    ("cka_diff_unseen", d_cka_u),
                )
            ),
        )

        note = ci_level_note("greater", alpha)

        def summary(_ruling: Any) -> str:  # read when shown: the slope's OLS fit is deferred
            return "\n".join(
                [
                    f"Experiment {name}: KD {kd!r} vs label {label!r}; per-seed means over "
                    "fractions of paired differences, one-sided t-tests across seeds.",
                    f"log NC1 KD − label, trained rows (H1: > 0): "
                    f"{result_text(key, ci=note, t_df=True)}; H1 < 0 {fmt_p(opposite.p_value)}.",
                    f"CKA with teacher KD − label, trained rows (H1: > 0): {result_text(cka)}.",
                    f"Unseen rows: log NC1 diff {fmt(nc1_u.estimate, 4)} ({fmt_p(nc1_u.p_value)}), "
                    f"CKA diff {fmt(cka_u.estimate, 4)} ({fmt_p(cka_u.p_value)}).",
                    f"Interaction (method × log kappa): per-seed slope of the log NC1 difference "
                    f"{result_text(inter, ci=f'{pct(1 - alpha)} CI')} (two-sided).",
                    f"Cells with NC1 <= 0 excluded from logs: {len(excluded)}.",
                    "",
                    str(inter.summary),
                ]
            )

        return ExperimentResult(
            name=name,
            components=comp,
            settings={"kd_method": kd, "label_method": label},
            numbers={
                "log_nc1_diff_unseen": nc1_u.estimate,
                "log_nc1_diff_unseen_p": nc1_u.p_value,
                "cka_diff_unseen": cka_u.estimate,
                "cka_diff_unseen_p": cka_u.p_value,
                "excluded_cells": len(excluded),
            },
            tables={"per_fraction": per_fraction, "cells": cell_table, "excluded": excluded},
            summary=summary,
        )

    def rule(self, tests: Mapping[str, Any], opts: Options) -> Ruling:
        alpha = opts.alpha
        if tests["key"].sig(alpha) and tests["cka"].sig(alpha):
            decision = "supported"
        elif tests["opposite"].sig(alpha):
            decision = "rejected"
        else:
            decision = "inconclusive"
        return Ruling(decision, *_shown(tests, decision, alpha), _decision_numbers(tests))

    def describe_model(self, opts: Options) -> str:
        return (
            "log NC1 ~ method × log(kappa) with seeds as replication: paired (seed, fraction) "
            "differences KD − label on trained-on rows, per-seed means over fractions, "
            "one-sided t-tests across seeds for log NC1 and for linear CKA with the teacher; "
            "interaction = per-seed slope of the log NC1 difference on log kappa (t-test); "
            f"pooled across experiments: {POOLING_METHODS[opts.pooling]}."
        )

    def reason(self, outcome: Outcome, opts: Options) -> str:
        reason = _reason(outcome.ruling.decision, outcome.tests, opts.alpha, outcome.k)
        excluded = [e for r in outcome.results for e in r.tables["excluded"]]
        if excluded:
            names = [
                f"{e['method']} {e['subset']} {fraction_label(e['fraction'], e['seed'])}"
                for e in excluded
            ]
            reason += (
                f" {len(excluded)} cell(s) with NC1 <= 0 were left out of the log model: "
                f"{', '.join(names[:5])}{' …' if len(excluded) > 5 else ''}."
            )
        return reason

    def report_sections(self, verdict: Verdict, store: Any, out_dir: Path) -> list[Any]:
        """NC1 and CKA differences per kappa: two figures and a table."""
        from kdtheory.report import figures as plot

        level = table_level(verdict)
        columns = [
            *estimate_columns(
                "Δ log NC1",
                "log_nc1_diff_trained",
                ".3f",
                header_tex="$\\Delta\\log$ NC1",
                prefix_ci=True,
                level=level,
                ci_suffix="(NC1)",
            ),
            *estimate_columns(
                "Δ CKA",
                "cka_diff_trained",
                ".3f",
                header_tex="$\\Delta$ CKA",
                prefix_ci=True,
                level=level,
                ci_suffix="(CKA)",
            ),
        ]
        tables = kappa_table(out_dir, verdict, columns, _TABLE_CAPTION)
        figures = [
            Figure(
                "collapse",
                lambda: plot.collapse(store),
                "NC1 (within- over between-class variability; log axis, geometric means, "
                "bands ± 1 s.e. of the log) and linear CKA with the teacher's features, on the "
                "feature rows each student trained on, vs κ, per method; one column per "
                f"experiment. {CI_NOTE}",
            ),
            Figure("collapse-all", lambda: plot.collapse(store, metrics="all"), _COLLAPSE_ALL),
        ]
        title = "Neural collapse and alignment with the teacher"
        return [report_section(out_dir, title, figures, tables=tables)]


def _reason(decision: str, comp: Mapping[str, Any], alpha: float, k: int) -> str:
    """The decision in words."""
    key, cka, inter = comp["key"], comp["cka"], comp["interaction"]
    where = f", pooled over {k} experiments" if k > 1 else ""
    s = (
        f"log NC1 KD − label on trained samples {fmt(key.estimate)}{where} "
        f"(ratio {fmt(float(np.exp(key.estimate)))}, CI {fmt_ci(key.ci_low, key.ci_high)}, "
        f"H1 > 0 {fmt_p(key.p_value)}); CKA with the teacher KD − label {fmt(cka.estimate)} "
        f"({fmt_p(cka.p_value)}); interaction with log kappa {fmt(inter.estimate)} "
        f"({fmt_p(inter.p_value)})"
    )
    if decision == "supported":
        return f"{s}: KD students collapse less and align more with the teacher."
    if decision == "rejected":
        return (
            f"{s}: KD students collapse significantly more than label students "
            f"({fmt_p(comp['opposite'].p_value)})."
        )
    return f"{s}: the NC1 and CKA predictions are not both significant at alpha={alpha:g}."


def _shown(comp: Mapping[str, Any], decision: str, alpha: float) -> tuple:
    """The deciding test of ``decision`` and the numbers a row shows for it."""
    if decision == "rejected":
        return deciding(comp["opposite"], "log NC1 KD − label < 0", "rejected", "less", alpha)
    key, cka = comp["key"], comp["cka"]
    return intersection_union(key, [key, cka], "log NC1 and CKA, KD − label > 0", alpha)


def _decision_numbers(comp: Mapping[str, Any]) -> dict[str, Any]:
    """The decision's numbers in an effect row, the same for an experiment and the pool."""
    cka, inter = comp["cka"], comp["interaction"]
    return {
        "p_opposite": comp["opposite"].p_value,
        "cka_diff": cka.estimate,
        "cka_diff_ci": (cka.ci_low, cka.ci_high),
        "cka_diff_p": cka.p_value,
        "interaction_slope": inter.estimate,
        "interaction_ci": (inter.ci_low, inter.ci_high),
        "interaction_p": inter.p_value,
    }


_COLLAPSE_ALL = (
    "Every neural-collapse statistic vs κ, per method, on the feature rows each student "
    "trained on; rows are statistics, columns experiments. NC1 = tr(Σ_W Σ_B⁺)/K (log axis, "
    "geometric means, bands ± 1 s.e. of the log); NC2 equinorm, the "
    "coefficient of variation of the centred class-mean norms; NC2 equiangularity, the sd of "
    "their pairwise cosines; NC2 max-angle, the mean |cos + 1/(K−1)|; NC3, the distance between "
    "the normalised classifier and class means; NC4, the share of samples whose prediction "
    "differs from the nearest class mean; and linear CKA with the teacher's features. The NC "
    f"statistics are 0 at perfect collapse; CKA is 1 for identical features. {CI_NOTE}"
)


_TABLE_CAPTION = (
    "KD minus label student on the feature rows each trained on, per kappa: the difference in "
    "log NC1 and in linear CKA with the teacher's features (mean over seeds, t-intervals over "
    "seeds)."
)
