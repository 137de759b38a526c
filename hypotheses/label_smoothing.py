"""``label-smoothing``: KD works because it is a form of label smoothing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from kdtheory.hypothesis.sections import (
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
    ExperimentResult,
    Pooled,
    Ruling,
    accuracy_points,
    cell_records,
    deciding,
    fmt,
    fmt_ci,
    fmt_p,
    fraction_label,
    fraction_means,
    fraction_records,
    kd_and,
    log_kappa,
    long_form,
    mean_ci_columns,
    result_text,
    seed_means,
    seed_slope_test,
    sorted_experiment,
)
from kdtheory.hypothesis.verdict import Verdict
from kdtheory.stats import POOLING_METHODS, ci_level_note, holm, one_sample_t, tost

if TYPE_CHECKING:
    import xarray as xr

#: ``test`` value of the mean-over-fractions member of a rejection family.
MEAN_TEST = "mean over fractions"


class LabelSmoothing(PooledHypothesis):
    """KD is label smoothing in disguise: an LS student with matched epsilon matches KD.

    Per (fraction, seed) the paired difference is KD − LS test accuracy (points). The claim is
    that LS matches KD *at every data size*, so it is at risk wherever KD beats LS — on average
    or at a single fraction (typically the smallest). Tests:

    - **rejection family** (Holm-adjusted): the mean difference — each seed's mean over
      fractions, one-sided t-test across seeds (H1: KD > LS) — plus, at every fraction, a
      one-sided paired t-test of KD − LS across seeds (H1: KD > LS). A fraction with fewer than
      2 seeds has no p-value and stays out of the family size. With several experiments the
      family is every experiment's mean and per-fraction tests together (fractions are not
      matched across experiments: a fraction of one data set is not the same data size as in
      another, and the claim covers each). The pooled mean (experiment as a random effect, t on
      k - 1 df) is reported but is not a member, so the family does not depend on how the
      experiments are pooled;
    - **equivalence**: at every fraction a TOST of the difference against ``±margin`` points
      (default 1), Holm-adjusted across fractions (across every experiment's fractions when
      pooling);
    - **trend** (reported only): per-seed slope of the difference on log kappa (H1: < 0, i.e. the
      gap is larger at small data).

    Decision:

    - **rejected**: some member of the rejection family has Holm-adjusted p ≤ alpha (KD
      significantly beats LS on average or at some fraction; the family-wise error rate of this
      "rejected" is at most alpha);
    - **supported**: not rejected and equivalence within ``±margin`` at *every* fraction (each
      Holm-adjusted TOST p < alpha; a fraction with fewer than 2 seeds cannot show equivalence);
    - **inconclusive** otherwise.

    Deciding test (the numbers every row shows): for "rejected" and "inconclusive" the member of
    the rejection family with the smallest Holm-adjusted p (its estimate, that p and its CI at
    the Holm-adjusted level, so the CI clears 0 exactly when the p is ≤ alpha); for
    "supported" the intersection-union of the per-fraction TOSTs: the largest Holm-adjusted TOST
    p, with that fraction's CI at the matching level. The mean difference (pooled across
    experiments with several) is in the further numbers. Tables: ``per_fraction``
    (per experiment and fraction: accuracies, difference, one-sided ``t``/``p`` of KD > LS,
    ``p_holm`` within the experiment's rejection family, ``kd_beats_ls``, TOST p and Holm p),
    ``rejection_family`` (every member of every family, ``family`` naming the experiment or
    ``"pooled"``), ``cells``, and with several experiments ``tost_family``.

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
        "beats LS neither on average nor at any fraction."
    )
    required_objectives: ClassVar[tuple[str, ...]] = ("kd", "ls")
    required_variables: ClassVar[tuple[str, ...]] = ("test_logits", "test_labels")
    run_hint: ClassVar[str] = "kd:T=4,ls:eps=matched"
    options: ClassVar[dict[str, Any]] = {
        "kd_method": None,
        "ls_method": None,
        "margin": 1.0,
        "pooling": "mixed",
    }

    effect = (
        "KD − LS test accuracy, accuracy points, of the deciding test: the member of the "
        "rejection family (mean over fractions, or one fraction) with the smallest Holm-adjusted "
        "p, or for 'supported' the fraction whose Holm-adjusted TOST p is largest"
    )

    pooled_lines = {
        "mean KD − LS (H1: > 0)": ("key", "greater"),
        "trend of KD − LS on log kappa (H1: < 0)": ("trend", "less"),
    }

    def analyse(self, name: str, ds: xr.Dataset, opts: Options) -> ExperimentResult:
        alpha = opts.alpha
        kd, ls = kd_and(ds, opts, "ls", option="ls_method", needs="a kd method and an ls method")
        ds = sorted_experiment(ds)
        a_kd, a_ls = accuracy_points(ds, kd), accuracy_points(ds, ls)
        diff = a_kd - a_ls
        margin = float(opts["margin"])

        key = one_sample_t(seed_means(diff), "greater", alpha)
        trend = seed_slope_test(*long_form(diff, log_kappa(ds), ds["seed"].values), "less", alpha)
        tosts = [tost(d, -margin, margin, alpha) for d in diff]
        gt = [one_sample_t(d, "greater", alpha) for d in diff]
        comp = {"key": Effect.of(key), "trend": Effect.of(trend)}
        per_fraction = fraction_records(
            name,
            ds,
            fraction_means(kd_accuracy=a_kd, ls_accuracy=a_ls),
            mean_ci_columns(diff, alpha, "difference"),
            {
                "t": [r.statistic for r in gt],
                "se": [r.se for r in gt],
                "p": [r.p_value for r in gt],
                "tost_p": [r.p_value for r in tosts],
                "tost_ci_low": [r.ci_low for r in tosts],
                "tost_ci_high": [r.ci_high for r in tosts],
            },
        )
        all_equiv = _holm_fill(per_fraction, alpha)
        family = _rejection_family(name, comp["key"], per_fraction, alpha)
        for r, m in zip(per_fraction, family[1:], strict=True):
            r["p_holm"] = m["p_holm"]
            r["kd_beats_ls"] = m["significant"]
        p_decision = _min_p(family)
        lines = [
            f"Experiment {name}: KD method {kd!r} vs LS method {ls!r}; accuracy points.",
            f"Mean KD − LS over fractions per seed, one-sided t (H1: > 0): "
            f"{result_text(key, ci=ci_level_note('greater', alpha), t_df=True)}, "
            f"Holm {fmt_p(family[0]['p_holm'])}, n={key.n} seeds.",
            f"Trend: per-seed slope of KD − LS on log(kappa) (H1: < 0) "
            f"{result_text(trend, ci='CI')}.",
            f"Per fraction: one-sided paired t (H1: KD > LS), Holm-adjusted together with the "
            f"mean test (rejection family of {_family_size(family)}); TOST within "
            f"±{fmt(margin)} points, Holm-adjusted across fractions:",
        ]
        for r in per_fraction:
            lines.append(
                f"  {fraction_label(r['fraction'])} (kappa={r['n_train']}): diff "
                f"{fmt(r['difference'], 3)}, t={fmt(r['t'])} {fmt_p(r['p'])} Holm "
                f"{fmt_p(r['p_holm'])}{' *' if r['kd_beats_ls'] else ''}; "
                f"[{fmt(r['tost_ci_low'], 3)}, {fmt(r['tost_ci_high'], 3)}] (1-2alpha CI), "
                f"TOST {fmt_p(r['tost_p'])}, Holm {fmt_p(r['tost_p_holm'])}, n={r['n']}"
            )
        comp.update({"family": family, "tosts": per_fraction, "all_equivalent": all_equiv})

        def summary(ruling: Ruling) -> str:
            decided = (
                f"Decision p (smallest Holm-adjusted p of the rejection family): "
                f"{fmt_p(p_decision)} -> {ruling.decision}."
            )
            return "\n".join([*lines, decided]) + "\n\n" + str(trend.summary)

        return ExperimentResult(
            name=name,
            components=comp,
            settings={"kd_method": kd, "ls_method": ls, "margin": margin},
            tables={
                "per_fraction": per_fraction,
                "rejection_family": family,
                "cells": cell_records(
                    name, ds, {"kd_accuracy": a_kd, "ls_accuracy": a_ls, "difference": diff}
                ),
            },
            summary=summary,
        )

    def rule(self, tests: Mapping[str, Any], opts: Options) -> Ruling:
        alpha, family, tosts = opts.alpha, tests["family"], tests["tosts"]
        if _min_p(family) <= alpha:  # False when NaN
            decision = "rejected"
        elif tests["all_equivalent"]:
            decision = "supported"
        else:
            decision = "inconclusive"
        shown, test = _shown(family, tosts, decision, alpha, opts["margin"])
        if "experiments" in tests:  # the pooled row counts experiments
            shown = replace(shown, n=tests["experiments"])
        key, trend, all_equiv = tests["key"], tests["trend"], tests["all_equivalent"]
        numbers = {
            **_decision_numbers(key, trend, family, all_equiv, tosts, alpha),
            **_mean_numbers(key),
        }
        return Ruling(decision, shown, test, numbers)

    def pool(self, pooled: Pooled, opts: Options) -> dict[str, Any]:
        """The pooled mean and trend (reported), and one rejection family and one TOST family
        over every experiment's tests (see the class docstring)."""
        results = pooled.results
        # one TOST family: every experiment's fractions
        tost_family = [
            dict(r, tost_p_holm=NAN) for res in results for r in res.tables["per_fraction"]
        ]
        all_equiv = _holm_fill(tost_family, opts.alpha)
        # one rejection family: every experiment's mean and per-fraction tests
        members = [m for res in results for m in res.tables["rejection_family"]]
        return {
            "key": pooled.effect("key", "greater"),
            "trend": pooled.effect("trend", "less"),
            "family": _holm_family(members, "pooled", opts.alpha),
            "tosts": tost_family,
            "all_equivalent": all_equiv,
            "experiments": len(results),
        }

    def pooled_tables(self, tests: Mapping[str, Any], opts: Options) -> dict[str, list[dict]]:
        keys = ("experiment", "fraction", "n_train", "difference", "tost_p")
        return {
            "tost_family": [
                {k: r[k] for k in keys} | {"tost_p_holm_family": r["tost_p_holm"]}
                for r in tests["tosts"]
            ],
            "rejection_family": tests["family"],
        }

    def describe_model(self, opts: Options) -> str:
        return (
            "Paired KD − LS accuracy difference per (fraction, seed). Rejection family, "
            "Holm-adjusted: in every experiment the per-seed mean over fractions, one-sided "
            "t-test across seeds (H1: KD > LS), and at every fraction a one-sided paired "
            "t-test across seeds (H1: KD > LS); rejected when any Holm-adjusted p <= alpha. "
            "Shown: the deciding test's estimate, Holm-adjusted p and CI at the matching level "
            "(see the docstring); the mean difference, pooled across experiments "
            f"({POOLING_METHODS[opts.pooling]}), is reported, not part of the decision. "
            f"Equivalence: TOST within ±{fmt(opts['margin'])} points at every fraction, "
            "Holm-adjusted. Per-seed slope on log(kappa) (H1: < 0) reported."
        )

    def reason(self, outcome: Outcome, opts: Options) -> str:
        t = outcome.tests
        return self._reason(
            outcome.ruling.decision,
            t["key"],
            t["trend"],
            t["family"],
            t["tosts"],
            t["all_equivalent"],
            opts.alpha,
            opts["margin"],
            outcome.k,
        )

    @staticmethod
    def _reason(
        decision: str,
        key: Effect,
        trend: Effect,
        family: Sequence[Mapping[str, Any]],
        tosts: Sequence[Mapping[str, Any]],
        all_equiv: bool,
        alpha: float,
        margin: float,
        k: int,
    ) -> str:
        if k > 1:
            mean_p = (
                f"random-effects H1 KD > LS {fmt_p(key.p_value)}, reported only: the family "
                f"holds each experiment's mean test"
            )
            where = f", pooled over {k} experiments"
        else:
            mean_p = f"H1 KD > LS {fmt_p(key.p_value)}, Holm {fmt_p(family[0]['p_holm'])}"
            where = ""
        s = (
            f"Mean KD − LS accuracy over fractions {fmt(key.estimate)} points{where} "
            f"(CI {fmt_ci(key.ci_low, key.ci_high)}, {mean_p}); trend on log(kappa) "
            f"{fmt(trend.estimate)} ({fmt_p(trend.p_value)})"
        )
        if decision == "rejected":
            drivers = sorted(
                (r for r in family if r["significant"]), key=lambda r: (r["p_holm"], r["p"])
            )
            whose = "each experiment's" if k > 1 else "the"
            return (
                f"KD significantly beats label smoothing in {len(drivers)} of "
                f"{_family_size(family)} one-sided tests (Holm across {whose} mean over fractions "
                f"and per-fraction tests, alpha {alpha:g}; every test is in the rejection-family "
                f"table), the deciding one at {_member_text(drivers[0], k)}. {s}."
            )
        p_min = _min_p(family)
        if decision == "supported":
            return (
                f"{s}; KD beats LS neither on average nor at any fraction (smallest Holm-adjusted "
                f"p {fmt(p_min)}); TOST within ±{fmt(margin)} points holds at every fraction "
                f"(largest Holm-adjusted p {fmt(_max_p(tosts))}): LS matches KD."
            )
        failing = [r for r in tosts if not (r["tost_p_holm"] < alpha)]
        if len(failing) <= 3:  # few: name them; many: count them (the table lists each)
            where = ", ".join(
                fraction_label(r["fraction"])
                + (f" ({r['experiment']})" if k > 1 else "")
                + f" (Holm {fmt_p(r['tost_p_holm'])})"
                for r in failing
            )
        else:
            where = f"{len(failing)} of {len(tosts)} fractions (see the per-kappa table)"
        return (
            f"{s}; KD significantly beats LS neither on average nor at any fraction (smallest "
            f"Holm-adjusted p {fmt(p_min)}), but equivalence within ±{fmt(margin)} points is not "
            f"shown at {where}."
        )

    def report_sections(self, verdict: Verdict, store: Any, out_dir: Path) -> list[Any]:
        """KD vs LS per kappa: the gaps figure and a table with the TOST p-values."""
        from kdtheory.report.document import Column

        columns = [
            accuracy_column("KD", "kd"),
            accuracy_column("LS", "ls"),
            *estimate_columns(
                "KD − LS", "difference", header_tex="KD $-$ LS", level=table_level(verdict)
            ),
            Column("TOST p (Holm)", "tost_p_holm", "p", header_tex="TOST $p$ (Holm)"),
        ]
        tables = kappa_table(out_dir, verdict, columns, _TABLE_CAPTION)
        tables += kappa_table(
            out_dir,
            verdict,
            _family_columns(),
            _FAMILY_CAPTION,
            _family_records(verdict),
            name="rejection-family",
        )
        title = "KD vs label smoothing"
        return [report_section(out_dir, title, [gaps_figure(store)], tables=tables)]


def _family_columns() -> list[Any]:
    """The rejection-family table's columns: every one-sided KD > LS test, its Holm p."""
    from kdtheory.report.table import Column

    return [
        Column("Test", "member", "text"),
        Column("KD − LS (points)", "estimate", ".2f", header_tex="KD $-$ LS (points)"),
        Column("t", "statistic", ".2f", header_tex="$t$"),
        Column("p", "p", "p", header_tex="$p$"),
        Column("Holm p", "p_holm", "p", header_tex="Holm $p$"),
        Column("KD > LS", "significant", "bool", header_tex="KD $>$ LS"),
    ]


def _family_records(verdict: Verdict) -> list[dict[str, Any]]:
    """The members of the rejection family the verdict decided on (the pooled one with several
    experiments), each named ``mean over fractions`` or by its fraction."""
    members = verdict.tables.get("rejection_family", [])
    pooled = [m for m in members if m.get("family") == "pooled"]
    return [
        {
            **m,
            "member": "mean over fractions"
            if m.get("test") == MEAN_TEST
            else fraction_label(float(m["fraction"])),
        }
        for m in (pooled or members)
    ]


def _mean_numbers(key: Effect) -> dict[str, Any]:
    """The mean KD − LS difference over fractions (pooled with several experiments): reported,
    not the deciding test."""
    return {
        "mean_difference": key.estimate,
        "mean_difference_ci": (key.ci_low, key.ci_high),
        "mean_difference_p": key.p_value,
    }


def _shown(
    family: Sequence[Mapping[str, Any]],
    tosts: Sequence[Mapping[str, Any]],
    decision: str,
    alpha: float,
    margin: float,
) -> tuple[Effect, Any]:
    """The deciding test of ``decision`` and the numbers a row shows for it (see the class
    docstring): the rejection family's smallest Holm p, or for "supported" the per-fraction
    TOSTs' largest Holm p."""
    if decision == "supported":
        worst = max(tosts, key=lambda r: r["tost_p_holm"])
        n = int(worst["n"])
        e = Effect(
            worst["difference"], worst["se"], NAN, NAN, worst["tost_p"], NAN, n, float(n - 1)
        )
        where = fraction_label(worst["fraction"])
        if len({r["experiment"] for r in tosts}) > 1:
            where += f" ({worst['experiment']})"
        return deciding(
            e,
            f"intersection-union of per-fraction TOSTs within ±{fmt(margin)}, largest Holm p "
            f"at {where}",
            "supported",
            "inside",
            alpha,
            p=worst["tost_p_holm"],
            p_raw=worst["tost_p"],
            low=-margin,
            high=margin,
        )
    finite = [m for m in family if np.isfinite(m["p_holm"])]
    if not finite:
        return deciding(None, "rejection family (no p-value)", "rejected", "greater", alpha)
    best = min(finite, key=lambda m: (m["p_holm"], m["p"]))
    n = int(best["n"])
    e = Effect(best["estimate"], best["se"], NAN, NAN, best["p"], best["statistic"], n, n - 1.0)
    k = len({m["experiment"] for m in family})
    return deciding(
        e,
        f"KD > LS, smallest Holm p of the rejection family: {_member_label(best, k)}",
        "rejected",
        "greater",
        alpha,
        p=best["p_holm"],
        p_raw=best["p"],
    )


def _rejection_family(
    label: str, mean: Effect, per_fraction: Sequence[Mapping[str, Any]], alpha: float
) -> list[dict[str, Any]]:
    """One experiment's Holm family of one-sided KD > LS tests: ``mean`` first, then one member
    per ``per_fraction`` record."""
    members: list[dict[str, Any]] = [
        {
            "experiment": label,
            "test": MEAN_TEST,
            "fraction": NAN,
            "n_train": None,
            "estimate": float(mean.estimate),
            "se": float(mean.se),
            "statistic": float(mean.statistic),
            "p": float(mean.p_value),
            "n": int(mean.n),
        }
    ]
    members += [
        {
            "experiment": label,
            "test": "fraction",
            "fraction": float(r["fraction"]),
            "n_train": int(r["n_train"]),
            "estimate": float(r["difference"]),
            "se": float(r["se"]),
            "statistic": float(r["t"]),
            "p": float(r["p"]),
            "n": int(r["n"]),
        }
        for r in per_fraction
    ]
    return _holm_family(members, label, alpha)


def _holm_family(
    members: Sequence[Mapping[str, Any]], label: str, alpha: float
) -> list[dict[str, Any]]:
    """Copies of ``members`` with ``family=label``, ``p_holm`` (Holm across all of them) and
    ``significant`` (``p_holm <= alpha``). NaN p-values (fewer than 2 seeds) stay NaN and out of
    the family size."""
    adj = holm([m["p"] for m in members]) if members else np.array([])
    return [
        {"family": label, **{k: v for k, v in m.items() if k not in ("family", "p_holm")}}
        | {"p_holm": float(p), "significant": bool(p <= alpha)}
        for m, p in zip(members, adj, strict=True)
    ]


def _family_size(family: Sequence[Mapping[str, Any]]) -> int:
    return int(sum(np.isfinite(m["p"]) for m in family))


def _min_p(family: Sequence[Mapping[str, Any]]) -> float:
    ps = np.asarray([m["p_holm"] for m in family], dtype=float)
    ps = ps[np.isfinite(ps)]
    return float(ps.min()) if ps.size else NAN


def _member_label(m: Mapping[str, Any], k: int) -> str:
    where = f" ({m['experiment']})" if k > 1 else ""
    if m["test"] == MEAN_TEST:
        return f"the mean over fractions{where}"
    return f"{fraction_label(m['fraction'])}{where}"


def _member_text(m: Mapping[str, Any], k: int) -> str:
    return (
        f"{_member_label(m, k)} (KD − LS {fmt(m['estimate'])} points, {fmt_p(m['p'])}, Holm "
        f"{fmt_p(m['p_holm'])})"
    )


def _driver_labels(family: Sequence[Mapping[str, Any]], alpha: float) -> str:
    """Comma-separated members with Holm p ≤ alpha (``""`` when none), for effect rows."""
    k = len({m["experiment"] for m in family})
    return ", ".join(_member_label(m, k) for m in family if m["p_holm"] <= alpha)


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


def _decision_numbers(
    key: Any,
    trend: Any,
    family: Sequence[Mapping[str, Any]],
    all_equiv: bool,
    tost_rows: Sequence[Mapping[str, Any]],
    alpha: float,
) -> dict[str, Any]:
    """The numbers behind a decision, for an experiment's or the pooled row's ``extra``."""
    return {
        "mean_p": key.p_value,
        "trend_slope": trend.estimate,
        "trend_ci": (trend.ci_low, trend.ci_high),
        "trend_p": trend.p_value,
        "kd_beats_ls_at": _driver_labels(family, alpha),
        "equivalent_at_every_fraction": all_equiv,
        "max_holm_tost_p": _max_p(tost_rows),
    }


def _max_p(records: Sequence[Mapping[str, Any]]) -> float:
    ps = [r["tost_p_holm"] for r in records]
    return float(np.max(ps)) if ps and not np.any(np.isnan(ps)) else NAN


_TABLE_CAPTION = (
    "KD vs label smoothing per kappa: accuracies (mean over seeds), the seed-paired difference "
    "with its t-interval over seeds, and the Holm-adjusted TOST p-value of equivalence within "
    "the margin."
)

_FAMILY_CAPTION = (
    "The rejection family of label smoothing: per experiment, the one-sided paired t-test of "
    "KD − LS > 0 (across seeds) of the mean over fractions and at every kappa, with the "
    "Holm-adjusted p across the whole family (every experiment's tests together); KD > LS: "
    "significant at alpha."
)
