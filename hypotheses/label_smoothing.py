"""``label-smoothing``: KD works because it is a form of label smoothing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import xarray as xr

from kdtheory.hypotheses import (
    NAN,
    Effect,
    ExperimentResult,
    accuracy_points,
    build_verdict,
    effect_row,
    fmt,
    fmt_ci,
    fmt_p,
    fraction_label,
    log_kappa,
    long_form,
    mean_ci,
    meta_summary,
    missing_method,
    nanmean,
    pick_method,
    pool,
    pool_meta,
    resolve_options,
    run_experiments,
    seed_means,
    seed_slope_test,
    sorted_experiment,
)
from kdtheory.hypothesis import Hypothesis
from kdtheory.stats import ci_level_note, holm, one_sample_t, tost
from kdtheory.verdict import Verdict


class LabelSmoothing(Hypothesis):
    """KD is label smoothing in disguise: an LS student with matched epsilon matches KD.

    Per (fraction, seed) the paired difference is KD − LS test accuracy (points). Key effect: the
    mean difference — each seed's mean over fractions, one-sided t-test across seeds
    (H1: KD > LS). The trend (per-seed slope of the difference on log kappa, H1: < 0, i.e. the
    gap is larger at small data) is reported. At every fraction a TOST tests the difference
    against ``±margin`` points (default 1); the TOST p-values are Holm-adjusted across fractions
    (across every experiment's fractions when pooling).

    Decision:

    - **rejected**: KD beats LS (one-sided p < alpha; pooled by random-effects meta-analysis with
      several experiments);
    - **supported**: not rejected and equivalence within ``±margin`` at *every* fraction (each
      Holm-adjusted TOST p < alpha; a fraction with fewer than 2 seeds cannot show equivalence);
    - **inconclusive** otherwise.

    Options: ``kd_method``, ``ls_method`` (method labels; defaults: the kd method with T=4 else
    the first, the first ls method), ``margin`` (accuracy points, default 1.0).
    """

    name: ClassVar[str] = "label-smoothing"
    claim: ClassVar[str] = (
        "KD works because it is a form of label smoothing, so a label-smoothing student with "
        "matched epsilon matches the KD student at every data size."
    )
    prediction: ClassVar[str] = (
        "KD − LS test accuracy is equivalent to 0 (within the margin) at every fraction, and KD "
        "does not beat LS on average."
    )
    required_objectives: ClassVar[tuple[str, ...]] = ("kd", "ls")
    required_variables: ClassVar[tuple[str, ...]] = ("test_logits", "test_labels")
    run_hint: ClassVar[str] = "kd:T=4,ls:eps=matched"
    options: ClassVar[dict[str, Any]] = {"kd_method": None, "ls_method": None, "margin": 1.0}

    effect = "mean KD − LS test accuracy over fractions, accuracy points"

    def _analyse(self, name: str, ds: xr.Dataset, alpha: float, opts: dict) -> Any:
        kd = pick_method(ds, "kd", opts["kd_method"], prefer_temperature=4.0)
        ls = pick_method(ds, "ls", opts["ls_method"])
        if kd is None or ls is None:
            return missing_method(ds, "a kd method and an ls method", opts)
        ds = sorted_experiment(ds)
        a_kd, a_ls = accuracy_points(ds, kd), accuracy_points(ds, ls)
        diff = a_kd - a_ls
        x = log_kappa(ds)
        fractions = np.asarray(ds["fraction"].values, dtype=float)
        kappa = np.asarray(ds["n_train"].values)
        seeds = np.asarray(ds["seed"].values)
        margin = float(opts["margin"])

        key = one_sample_t(seed_means(diff), "greater", alpha)
        trend = seed_slope_test(*long_form(diff, x, seeds), "less", alpha)
        tosts = [tost(diff[i], -margin, margin, alpha) for i in range(len(fractions))]
        comp = {"key": Effect.of(key), "trend": Effect.of(trend)}
        per_fraction = []
        for i, f in enumerate(fractions):
            mc = mean_ci(diff[i], alpha)
            per_fraction.append(
                {
                    "experiment": name,
                    "fraction": float(f),
                    "n_train": int(kappa[i]),
                    "kd_accuracy": nanmean(a_kd[i]),
                    "ls_accuracy": nanmean(a_ls[i]),
                    "difference": mc["mean"],
                    "ci_low": mc["ci_low"],
                    "ci_high": mc["ci_high"],
                    "n": mc["n"],
                    "tost_p": tosts[i].p_value,
                    "tost_ci_low": tosts[i].ci_low,
                    "tost_ci_high": tosts[i].ci_high,
                }
            )
        all_equiv = _holm_fill(per_fraction, alpha)
        decision = self._decide(comp["key"], all_equiv, alpha)
        extra = {
            "kd_method": kd,
            "ls_method": ls,
            "margin": margin,
            "trend_slope": trend.estimate,
            "trend_ci": (trend.ci_low, trend.ci_high),
            "trend_p": trend.p_value,
            "equivalent_at_every_fraction": all_equiv,
            "max_holm_tost_p": _max_p(per_fraction),
        }
        lines = [
            f"Experiment {name}: KD method {kd!r} vs LS method {ls!r}; accuracy points.",
            f"Mean KD − LS over fractions per seed, one-sided t (H1: > 0): "
            f"{fmt(key.estimate, 4)}, {ci_level_note('greater', alpha)} "
            f"{fmt_ci(key.ci_low, key.ci_high, 4)}, t={fmt(key.statistic)}, df={fmt(key.df)}, "
            f"{fmt_p(key.p_value)}, n={key.n} seeds.",
            f"Trend: per-seed slope of KD − LS on log(kappa) (H1: < 0) {fmt(trend.estimate, 4)}, "
            f"CI {fmt_ci(trend.ci_low, trend.ci_high, 4)}, {fmt_p(trend.p_value)}.",
            f"TOST per fraction within ±{fmt(margin)} points (Holm-adjusted across fractions):",
        ]
        for r in per_fraction:
            lines.append(
                f"  {fraction_label(r['fraction'])} (kappa={r['n_train']}): diff "
                f"{fmt(r['difference'], 3)} [{fmt(r['tost_ci_low'], 3)}, "
                f"{fmt(r['tost_ci_high'], 3)}] (1-2alpha CI), TOST {fmt_p(r['tost_p'])}, "
                f"Holm {fmt_p(r['tost_p_holm'])}, n={r['n']}"
            )
        cell_records = [
            {
                "experiment": name,
                "fraction": float(fractions[i]),
                "n_train": int(kappa[i]),
                "seed": int(seeds[j]),
                "kd_accuracy": float(a_kd[i, j]),
                "ls_accuracy": float(a_ls[i, j]),
                "difference": float(diff[i, j]),
            }
            for i in range(len(fractions))
            for j in range(len(seeds))
        ]
        return ExperimentResult(
            name=name,
            components=comp,
            row=effect_row(name, comp["key"], decision, extra),
            tables={"per_fraction": per_fraction, "cells": cell_records},
            summary="\n".join(lines) + "\n\n" + trend.summary,
        )

    @staticmethod
    def _decide(key: Effect, all_equivalent: bool, alpha: float) -> str:
        if key.sig(alpha):
            return "rejected"
        if all_equivalent:
            return "supported"
        return "inconclusive"

    def decide(self, verdict: Verdict, p_adjusted: float) -> tuple[str, str]:
        """After a Holm correction across hypotheses: "rejected" rests on the key p-value (KD
        beats LS), so it becomes "inconclusive" when the adjusted p-value exceeds alpha;
        "supported" rests on the per-fraction TOSTs (already Holm-adjusted) and stands."""
        if verdict.decision == "rejected" and not (p_adjusted <= verdict.alpha):
            note = (
                f"Downgraded from 'rejected' after Holm correction across "
                f"{len(verdict.family) or 'several'} hypotheses: adjusted p = {p_adjusted:.4g} > "
                f"alpha = {verdict.alpha:g}."
            )
            return "inconclusive", f"{verdict.reason} {note}"
        return verdict.decision, verdict.reason

    def test(self, store: Mapping[str, xr.Dataset], alpha: float = 0.05, **options: Any) -> Verdict:
        opts = resolve_options(self.name, self.options, options)
        margin = float(opts["margin"])
        results, skipped = run_experiments(
            self, store, lambda n, ds: self._analyse(n, ds, alpha, opts)
        )
        pooled_row = None
        pooled_summary = None
        extra_tables: dict[str, list[dict[str, Any]]] = {}
        if len(results) > 1:
            keys = [r.components["key"] for r in results]
            trends = [r.components["trend"] for r in results]
            key = pool(keys, "greater", alpha)
            trend = pool(trends, "less", alpha)
            # one family: every experiment's fractions
            family = [
                dict(r, tost_p_holm=NAN) for res in results for r in res.tables["per_fraction"]
            ]
            all_equiv = _holm_fill(family, alpha)
            extra_tables["tost_family"] = [
                {k: r[k] for k in ("experiment", "fraction", "n_train", "difference", "tost_p")}
                | {"tost_p_holm_family": r["tost_p_holm"]}
                for r in family
            ]
            decision = self._decide(key, all_equiv, alpha)
            pooled_row = effect_row(
                "pooled",
                key,
                decision,
                {
                    "k": key.n,
                    "trend_slope": trend.estimate,
                    "trend_ci": (trend.ci_low, trend.ci_high),
                    "trend_p": trend.p_value,
                    "equivalent_at_every_fraction": all_equiv,
                    "max_holm_tost_p": _max_p(family),
                },
            )
            pooled_summary = meta_summary(
                self.name,
                {
                    "mean KD − LS (H1: > 0)": pool_meta(keys, "greater", alpha),
                    "trend of KD − LS on log kappa (H1: < 0)": pool_meta(trends, "less", alpha),
                },
                [r.name for r in results],
            )
            worst = family
        else:
            key, trend = results[0].components["key"], results[0].components["trend"]
            decision = results[0].row.decision
            all_equiv = bool(results[0].row.extra["equivalent_at_every_fraction"])
            worst = results[0].tables["per_fraction"]
        reason = self._reason(decision, key, trend, worst, all_equiv, alpha, margin, len(results))
        return build_verdict(
            self,
            alpha=alpha,
            effect=self.effect,
            model=(
                "Paired KD − LS accuracy difference per (fraction, seed): per-seed mean over "
                "fractions, one-sided t-test across seeds (H1: KD > LS); per-seed slope on "
                f"log(kappa) (H1: < 0, reported); TOST within ±{fmt(margin)} points at every "
                "fraction, Holm-adjusted; DerSimonian-Laird random-effects pooling across "
                "experiments."
            ),
            alternative="greater",
            results=results,
            skipped=skipped,
            top=key,
            decision=decision,
            reason=reason,
            pooled=pooled_row,
            extra_tables=extra_tables,
            pooled_summary=pooled_summary,
        )

    @staticmethod
    def _reason(
        decision: str,
        key: Effect,
        trend: Effect,
        family: Sequence[Mapping[str, Any]],
        all_equiv: bool,
        alpha: float,
        margin: float,
        k: int,
    ) -> str:
        where = f", pooled over {k} experiments" if k > 1 else ""
        s = (
            f"KD − LS accuracy {fmt(key.estimate)} points{where} "
            f"(CI {fmt_ci(key.ci_low, key.ci_high)}, H1 KD > LS {fmt_p(key.p_value)}); "
            f"trend on log(kappa) {fmt(trend.estimate)} ({fmt_p(trend.p_value)})"
        )
        if decision == "rejected":
            return f"{s}: KD significantly beats label smoothing."
        if decision == "supported":
            return (
                f"{s}; TOST within ±{fmt(margin)} points holds at every fraction (largest "
                f"Holm-adjusted p {fmt(_max_p(family))}): LS matches KD."
            )
        failing = [
            fraction_label(r["fraction"])
            + (f" ({r['experiment']})" if k > 1 else "")
            + f" Holm {fmt_p(r['tost_p_holm'])}"
            for r in family
            if not (r["tost_p_holm"] < alpha)
        ]
        return (
            f"{s}; KD does not significantly beat LS, but equivalence within ±{fmt(margin)} "
            f"points is not shown at {len(failing)} fraction(s): {', '.join(failing[:6])}"
            f"{' …' if len(failing) > 6 else ''}."
        )


def _holm_fill(records: list[dict[str, Any]], alpha: float) -> bool:
    """Holm-adjust the records' ``tost_p`` in place (``tost_p_holm``, ``equivalent``).

    Returns whether every record is equivalent; a NaN p-value (fewer than 2 seeds) counts as not
    equivalent and stays out of the Holm family size.
    """
    adj = holm([r["tost_p"] for r in records]) if records else np.array([])
    ok = True
    for r, p in zip(records, adj, strict=True):
        r["tost_p_holm"] = float(p)
        r["equivalent"] = bool(p < alpha)
        ok = ok and r["equivalent"]
    return ok and bool(records)


def _max_p(records: Sequence[Mapping[str, Any]]) -> float:
    ps = [r["tost_p_holm"] for r in records]
    return float(np.max(ps)) if ps and not np.any(np.isnan(ps)) else NAN
