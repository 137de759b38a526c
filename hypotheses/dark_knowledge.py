"""``dark-knowledge``: the student learns from the teacher's relative wrong-class probabilities."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from kdtheory.hypothesis.sections import (
    CI_NOTE,
    Figure,
    accuracy_column,
    estimate_columns,
    gaps_figure,
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
    Ruling,
    accuracy_points,
    bare,
    cell_records,
    cells,
    deciding,
    fmt,
    fmt_ci,
    fmt_p,
    fraction_means,
    fraction_records,
    intersection_union,
    intersection_union_p,
    mean_ci_columns,
    method_array,
    method_coord,
    pick_kd,
    pick_method,
    require,
    result_text,
    seed_means,
    sorted_experiment,
)
from kdtheory.hypothesis.verdict import Verdict
from kdtheory.metrics import wrong_class_rank_correlation
from kdtheory.stats import POOLING_METHODS, ci_level_note, one_sample_t, tost

if TYPE_CHECKING:
    import xarray as xr

_COMPONENTS = ("key", "corr_label", "corr_shuffled")


class DarkKnowledge(PooledHypothesis):
    """The student learns from the teacher's relative probabilities on the wrong classes.

    Two predictions, each tested on per-seed means over fractions of paired (seed, fraction)
    differences, one-sided t-tests across seeds:

    (a) KD beats shuffled KD (the teacher's wrong-class probabilities permuted per sample) in test
        accuracy (points) — the key effect;
    (b) the KD student's ranking of the wrong classes agrees with the teacher's (mean per-sample
        Spearman correlation over the wrong classes, test samples) more than the label-trained
        student's **and** more than the shuffled student's.

    Decision (the same rule on the pooled tests with several experiments, see
    :func:`kdtheory.stats.pool_experiments`):

    - **supported**: (a) and both parts of (b) significant — an intersection-union test, so the
      combined p-value is the largest of the three and no multiplicity correction is needed —
      and KD − shuffled not shown equivalent to 0 (a negligible gain is not support). Deciding
      test: the intersection-union p with the CI of (a);
    - **rejected**: TOST shows KD ≈ shuffled within ``±margin`` points (default 1; deciding
      test: the TOST, its ``1 - 2*alpha`` CI inside the margins), or KD is significantly
      *worse* than shuffled (deciding test: one-sided H1 < 0);
    - **inconclusive** otherwise (shown: the intersection-union p, above alpha).

    When a store has no label method, (b) uses the shuffled student only (noted in the reason).

    Options: ``kd_method``, ``shuffled_method`` (default: the kd-shuffled method with the KD
    method's temperature, else the first), ``margin`` (accuracy points, default 1.0),
    ``pooling`` (``"mixed"`` or ``"hksj"``).
    """

    name: ClassVar[str] = "dark-knowledge"
    claim: ClassVar[str] = (
        "The student learns from the teacher's relative probabilities on the wrong classes "
        "(dark knowledge)."
    )
    prediction: ClassVar[str] = (
        "KD beats KD with the teacher's wrong-class probabilities shuffled, and the KD student "
        "ranks the wrong classes more like the teacher than label-trained and shuffled students."
    )
    required_objectives: ClassVar[tuple[str, ...]] = ("label", "kd", "kd-shuffled")
    required_variables: ClassVar[tuple[str, ...]] = (
        "test_logits",
        "test_labels",
        "teacher_test_logits",
    )
    run_hint: ClassVar[str] = "label,kd:T=4,kd-shuffled:T=4"
    options: ClassVar[dict[str, Any]] = {
        "kd_method": None,
        "shuffled_method": None,
        "margin": 1.0,
        "pooling": "mixed",
    }

    effect = "mean KD − shuffled-KD test accuracy over fractions, accuracy points"
    pooled_lines = {
        "KD − shuffled accuracy (H1: > 0)": ("key", "greater"),
        "rank corr KD − shuffled (H1: > 0)": ("corr_shuffled", "greater"),
        "rank corr KD − label (H1: > 0)": ("corr_label", "greater"),
    }

    def analyse(self, name: str, ds: xr.Dataset, opts: Options) -> ExperimentResult:
        alpha = opts.alpha
        kd = require(pick_kd(ds, opts), ds, "a kd method", opts)
        t_kd = float(method_coord(ds, "temperature", kd))
        sh = pick_method(
            ds,
            "kd-shuffled",
            opts["shuffled_method"],
            prefer_temperature=t_kd if np.isfinite(t_kd) else None,
        )
        sh = require(sh, ds, "a kd-shuffled method", opts)
        label = pick_method(ds, "label")
        ds = sorted_experiment(ds)
        labels = bare(ds["test_labels"])
        teacher = bare(ds["teacher_test_logits"])

        def corr(method: str) -> np.ndarray:
            logits = method_array(ds, "test_logits", method)
            return cells(wrong_class_rank_correlation(logits, teacher, labels, "test_sample"))

        a_kd, a_sh = accuracy_points(ds, kd), accuracy_points(ds, sh)
        r_kd, r_sh = corr(kd), corr(sh)
        a_lab = accuracy_points(ds, label) if label else None
        r_lab = corr(label) if label else None
        margin = float(opts["margin"])

        diff = a_kd - a_sh
        d_means = seed_means(diff)
        key = one_sample_t(d_means, "greater", alpha)
        worse = one_sample_t(d_means, "less", alpha)
        eq = tost(d_means, -margin, margin, alpha)
        c_sh = one_sample_t(seed_means(r_kd - r_sh), "greater", alpha)
        c_lab = (
            one_sample_t(seed_means(r_kd - r_lab), "greater", alpha) if r_lab is not None else None
        )
        comp: dict[str, Any] = {
            "key": Effect.of(key),
            "worse": Effect.of(worse),
            "tost": Equivalence.of(eq),
            "corr_shuffled": Effect.of(c_sh),
            "corr_label": Effect.of(c_lab) if c_lab is not None else None,
        }
        p_iut = _p_iut(comp)

        per_fraction = fraction_records(
            name,
            ds,
            fraction_means(kd_accuracy=a_kd, shuffled_accuracy=a_sh, label_accuracy=a_lab),
            mean_ci_columns(diff, alpha, "difference"),
            *(
                mean_ci_columns(r, alpha, f"{who}_rank_corr", prefix_ci=True, n_key=None)
                for who, r in (("kd", r_kd), ("shuffled", r_sh), ("label", r_lab))
                if r is not None
            ),
        )
        cells_of = {
            "kd_accuracy": a_kd,
            "shuffled_accuracy": a_sh,
            "kd_rank_corr": r_kd,
            "shuffled_rank_corr": r_sh,
            "label_accuracy": a_lab,
            "label_rank_corr": r_lab,
        }
        lines = [
            f"Experiment {name}: KD {kd!r}, shuffled {sh!r}, label {label!r}. Per-seed means over "
            "fractions of paired differences; one-sided t-tests across seeds.",
            f"(a) KD − shuffled accuracy (points, H1: > 0): "
            f"{result_text(key, ci=ci_level_note('greater', alpha), t_df=True)}; "
            f"H1 < 0 {fmt_p(worse.p_value)}; TOST within ±{fmt(margin)} "
            f"{fmt_p(eq.p_value)} (equivalent: {eq.equivalent}).",
            f"(b) wrong-class rank correlation with the teacher, KD − shuffled: "
            f"{result_text(c_sh)}",
            f"    KD − label: {result_text(c_lab)}"
            if c_lab is not None
            else "    KD − label: not tested (no label method in this experiment)",
            f"Intersection-union p (max of the three): {fmt_p(p_iut)}.",
        ]
        return ExperimentResult(
            name=name,
            components=comp,
            settings={
                "kd_method": kd,
                "shuffled_method": sh,
                "label_method": label,
                "margin": margin,
            },
            tables={"per_fraction": per_fraction, "cells": cell_records(name, ds, cells_of)},
            summary="\n".join(lines),
        )

    def rule(self, tests: Mapping[str, Any], opts: Options) -> Ruling:
        alpha, eq = opts.alpha, tests["tost"]
        if (
            tests["key"].sig(alpha)
            and tests["corr_shuffled"].sig(alpha)
            and (tests["corr_label"] is None or tests["corr_label"].sig(alpha))
            and not eq.equivalent
        ):
            decision = "supported"
        elif eq.equivalent or tests["worse"].sig(alpha):
            decision = "rejected"
        else:
            decision = "inconclusive"
        shown = _shown(tests, decision, alpha, opts["margin"])
        return Ruling(decision, *shown, _decision_numbers(tests))

    def describe_model(self, opts: Options) -> str:
        return (
            "Paired (seed, fraction) differences reduced to per-seed means over fractions; "
            "one-sided t-tests across seeds of KD − shuffled accuracy and of KD − label and "
            "KD − shuffled wrong-class Spearman correlation with the teacher, combined by "
            f"intersection-union; TOST of KD − shuffled within ±{fmt(opts['margin'])} points; "
            f"pooled across experiments: {POOLING_METHODS[opts.pooling]}."
        )

    def reason(self, outcome: Outcome, opts: Options) -> str:
        comp, decision, k = outcome.tests, outcome.ruling.decision, outcome.k
        alpha, margin = opts.alpha, opts["margin"]
        key, c_sh, c_lab = comp["key"], comp["corr_shuffled"], comp["corr_label"]
        where = f", pooled over {k} experiments" if k > 1 else ""
        s = (
            f"KD − shuffled accuracy {fmt(key.estimate)} points{where} "
            f"(CI {fmt_ci(key.ci_low, key.ci_high)}, {fmt_p(key.p_value)}); wrong-class rank "
            f"correlation KD − shuffled {fmt(c_sh.estimate)} ({fmt_p(c_sh.p_value)})"
        )
        s += (
            f", KD − label {fmt(c_lab.estimate)} ({fmt_p(c_lab.p_value)})"
            if c_lab is not None
            else ", KD − label not tested (no label method)"
        )
        if decision == "supported":
            return f"{s}: KD beats shuffled KD and follows the teacher's wrong-class ranking."
        if decision == "rejected":
            if comp["tost"].equivalent:
                return (
                    f"{s}; TOST shows KD ≈ shuffled within ±{fmt(margin)} points "
                    f"({fmt_p(comp['tost'].p_value)}): the wrong-class structure does not matter."
                )
            return (
                f"{s}; KD is significantly worse than shuffled KD ({fmt_p(comp['worse'].p_value)})."
            )
        return (
            f"{s}; not every prediction is significant at alpha={alpha:g} (intersection-union "
            f"{fmt_p(_p_iut(comp))}) and equivalence of KD and shuffled is not shown."
        )

    def report_sections(self, verdict: Verdict, store: Any, out_dir: Path) -> list[Any]:
        """KD vs shuffled KD per kappa: the gaps and rank-correlation figures and a table."""
        from kdtheory.report import figures as plot
        from kdtheory.report.document import Column

        level = table_level(verdict)
        columns = [
            accuracy_column("KD", "kd"),
            accuracy_column("Shuffled", "shuffled"),
            *estimate_columns(
                "KD − shuffled", "difference", header_tex="KD $-$ shuffled", level=level
            ),
            *(
                Column(
                    f"ρ {who}",
                    f"{key}_rank_corr",
                    ".3f",
                    header_tex=f"$\\rho_{{\\mathrm{{{who}}}}}$",
                )
                for who, key in (("KD", "kd"), ("shuffled", "shuffled"), ("label", "label"))
            ),
        ]
        tables = kappa_table(out_dir, verdict, columns, _TABLE_CAPTION)
        rank = Figure(
            "rank-correlation",
            lambda: plot.rank_correlation(store),
            "Wrong-class rank correlation (Spearman, over the classes other than the true one, "
            "averaged over test samples) between each student and the teacher, vs κ. "
            f"{CI_NOTE}",
        )
        figures = [gaps_figure(store), rank]
        return [report_section(out_dir, "Dark knowledge", figures, tables=tables)]


def _shown(comp: Mapping[str, Any], decision: str, alpha: float, margin: float) -> tuple:
    """The deciding test of ``decision`` and the numbers a row shows for it."""
    if decision == "rejected":
        eq = comp["tost"]
        if eq.equivalent:
            return eq.deciding(f"TOST KD − shuffled within ±{fmt(margin)}", "rejected", alpha)
        return deciding(comp["worse"], "KD − shuffled (KD worse)", "rejected", "less", alpha)
    what = "KD − shuffled accuracy and rank correlations"
    return intersection_union(comp["key"], [comp.get(c) for c in _COMPONENTS], what, alpha)


def _p_iut(comp: Mapping[str, Any]) -> float:
    """The intersection-union p of (a) and both parts of (b) (those tested)."""
    return intersection_union_p(*(comp.get(c) for c in _COMPONENTS))


def _decision_numbers(comp: Mapping[str, Any]) -> dict[str, Any]:
    """The decision's numbers in an effect row, the same for an experiment and the pool."""
    c_sh, c_lab = comp["corr_shuffled"], comp["corr_label"]
    return {
        "p_worse": comp["worse"].p_value,
        "tost_p": comp["tost"].p_value,
        "tost_equivalent": comp["tost"].equivalent,
        "rank_corr_kd_minus_shuffled": c_sh.estimate,
        "rank_corr_kd_minus_shuffled_p": c_sh.p_value,
        "rank_corr_kd_minus_label": c_lab.estimate if c_lab is not None else NAN,
        "rank_corr_kd_minus_label_p": c_lab.p_value if c_lab is not None else NAN,
        "p_intersection_union": _p_iut(comp),
    }


_TABLE_CAPTION = (
    "KD vs KD with shuffled wrong-class probabilities per kappa: accuracies, the seed-paired "
    "difference (t-interval over seeds), and each student's wrong-class rank correlation rho "
    "with the teacher on the test set."
)
