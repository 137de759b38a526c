"""``fidelity-decay``: the train/unseen fidelity gap of a KD student decays like kappa^(-1/2)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import xarray as xr

from kdtheory.hypotheses import (
    NAN,
    Effect,
    Equivalence,
    ExperimentResult,
    Pooled,
    bare,
    build_verdict,
    cells,
    effect_row,
    fmt,
    fmt_ci,
    fmt_p,
    fraction_label,
    long_form,
    mean_ci,
    method_array,
    missing_method,
    pct,
    pick_method,
    pooled_tost,
    resolve_options,
    run_experiments,
    seed_slope_test,
    seed_slopes,
    sorted_experiment,
)
from kdtheory.hypothesis import Hypothesis
from kdtheory.metrics import fidelity, kl_divergence
from kdtheory.stats import one_sample_t, tost
from kdtheory.verdict import Verdict

#: The exponent the claim predicts.
B_CLAIMED = -0.5


def power_law_fit(kappa: np.ndarray, gap: np.ndarray, alpha: float, b0: float = B_CLAIMED) -> dict:
    """Nonlinear least squares ``gap = c * kappa**b`` on the raw scale (``scipy.optimize``).

    Every finite cell enters, including gaps <= 0. The fit treats cells as independent (no seed
    clustering), so its standard errors are descriptive; the decision uses the per-seed log fit.

    Returns
    -------
    dict
        ``c``, ``b``, ``se_c``, ``se_b``, ``b_ci_low``, ``b_ci_high`` (normal, ``1 - alpha``),
        ``residual_sd``, ``n_cells``, ``status`` (``"ok"`` or why it failed).
    """
    from scipy.optimize import curve_fit
    from scipy.stats import norm

    k = np.asarray(kappa, dtype=float)
    g = np.asarray(gap, dtype=float)
    ok = np.isfinite(k) & np.isfinite(g) & (k > 0)
    k, g = k[ok], g[ok]
    out = {
        "c": NAN,
        "b": NAN,
        "se_c": NAN,
        "se_b": NAN,
        "b_ci_low": NAN,
        "b_ci_high": NAN,
        "residual_sd": NAN,
        "n_cells": int(k.size),
        "status": "ok",
    }
    if k.size < 3 or np.unique(k).size < 2:
        out["status"] = "not fitted: needs at least 3 cells at 2 distinct kappa"
        return out
    k0 = float(np.exp(np.mean(np.log(k))))  # centre kappa for a well-conditioned fit

    def model(kk: np.ndarray, c: float, b: float) -> np.ndarray:
        return c * (kk / k0) ** b

    pos = g > 0
    c0 = float(np.exp(np.mean(np.log(g[pos])))) if pos.any() else float(np.mean(np.abs(g)) or 1.0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            popt, pcov = curve_fit(model, k, g, p0=(c0, b0), maxfev=5000)
    except (RuntimeError, ValueError) as exc:
        out["status"] = f"not fitted: {exc}"
        return out
    c_centre, b = float(popt[0]), float(popt[1])
    perr = np.sqrt(np.diag(pcov)) if np.all(np.isfinite(pcov)) else np.array([NAN, NAN])
    c = c_centre * k0 ** (-b)  # gap = c * kappa**b
    z = float(norm.ppf(1 - alpha / 2))
    resid = g - model(k, c_centre, b)
    out.update(
        {
            "c": c,
            "b": b,
            "se_c": float(perr[0] * k0 ** (-b)),
            "se_b": float(perr[1]),
            "b_ci_low": b - z * float(perr[1]),
            "b_ci_high": b + z * float(perr[1]),
            "residual_sd": float(np.sqrt(np.sum(resid**2) / max(1, k.size - 2))),
        }
    )
    return out


class FidelityDecay(Hypothesis):
    """The fidelity gap between trained-on and unseen samples decays as kappa^(-1/2).

    Fidelity is top-1 agreement of the KD student with the teacher: on the training samples the
    cell trained on (``in_train``), and on the test set (unseen samples; defined at every
    fraction, including 1.0). ``gap = fidelity_train − fidelity_test`` per (fraction, seed).
    KL(teacher ‖ student) on both sets is reported alongside.

    Fit ``log gap = a + b log kappa`` with seeds as replication (per-seed OLS slopes, t-test;
    :func:`kdtheory.stats.slope_test`), and ``gap = c * kappa**b`` by nonlinear least squares on
    the raw scale (reported). Cells with ``gap <= 0`` or a NaN gap cannot enter the log: they are
    excluded from the log fit, counted and named in the reason and in ``tables["excluded"]``;
    the raw-scale fit includes every finite gap.

    Decision (the same rule on random-effects pooled slopes with several experiments):

    - **supported**: ``b < 0`` and TOST shows ``b`` inside ``-0.5 ± margin`` (default 0.25);
      equivalence is checked first, so a precisely estimated ``b`` within the margin supports the
      claim even if its CI excludes exactly -0.5;
    - **rejected**: the two-sided ``1 - alpha`` CI of ``b`` excludes -0.5;
    - **inconclusive** otherwise, or when fewer than 2 seeds keep at least 2 fractions with a
      positive gap.

    Options: ``kd_method`` (default the kd method with T=4, else the first), ``margin`` (0.25).
    """

    name: ClassVar[str] = "fidelity-decay"
    claim: ClassVar[str] = (
        "The fidelity gap between the samples a KD student trained on and unseen samples decays "
        "as kappa^(-1/2)."
    )
    prediction: ClassVar[str] = (
        "In log gap = a + b log(kappa), fitted with seeds as replication, b is equivalent to "
        "-0.5 within the margin."
    )
    required_objectives: ClassVar[tuple[str, ...]] = ("kd",)
    required_variables: ClassVar[tuple[str, ...]] = (
        "train_logits",
        "test_logits",
        "in_train",
        "teacher_train_logits",
        "teacher_test_logits",
    )
    run_hint: ClassVar[str] = "kd:T=4"
    options: ClassVar[dict[str, Any]] = {"kd_method": None, "margin": 0.25}

    effect = "exponent b of the fidelity gap, gap ∝ kappa^b (log-log slope, unitless)"

    def _analyse(self, name: str, ds: xr.Dataset, alpha: float, opts: dict) -> Any:
        kd = pick_method(ds, "kd", opts["kd_method"], prefer_temperature=4.0)
        if kd is None:
            return missing_method(ds, "a kd method", opts)
        ds = sorted_experiment(ds)
        margin = float(opts["margin"])
        low, high = B_CLAIMED - margin, B_CLAIMED + margin
        train = method_array(ds, "train_logits", kd)
        test = method_array(ds, "test_logits", kd)
        t_train, t_test = bare(ds["teacher_train_logits"]), bare(ds["teacher_test_logits"])
        mask = bare(ds["in_train"])
        f_train = cells(fidelity(train, t_train, "train_sample", mask=mask))
        f_test = cells(fidelity(test, t_test, "test_sample"))
        kl_train = cells(kl_divergence(t_train, train, "train_sample", mask=mask))
        kl_test = cells(kl_divergence(t_test, test, "test_sample"))
        gap = f_train - f_test
        fractions = np.asarray(ds["fraction"].values, dtype=float)
        kappa = np.asarray(ds["n_train"].values, dtype=float)
        seeds = np.asarray(ds["seed"].values)
        x = np.log(kappa)

        usable = np.isfinite(gap) & (gap > 0)
        excluded = []
        cell_records = []
        for i in range(len(fractions)):
            for j in range(len(seeds)):
                why = ""
                if not np.isfinite(gap[i, j]):
                    why = "gap is NaN (cell not trained or no samples)"
                elif gap[i, j] <= 0:
                    why = "gap <= 0 cannot enter log(gap)"
                rec = {
                    "experiment": name,
                    "fraction": float(fractions[i]),
                    "n_train": int(kappa[i]),
                    "seed": int(seeds[j]),
                    "fidelity_train": float(f_train[i, j]),
                    "fidelity_test": float(f_test[i, j]),
                    "gap": float(gap[i, j]),
                    "kl_train": float(kl_train[i, j]),
                    "kl_test": float(kl_test[i, j]),
                    "in_log_fit": not why,
                }
                cell_records.append(rec)
                if why:
                    excluded.append(
                        {k: rec[k] for k in ("experiment", "fraction", "n_train", "seed", "gap")}
                        | {"reason": why}
                    )
        with np.errstate(divide="ignore", invalid="ignore"):
            log_gap = np.where(usable, np.log(np.where(usable, gap, 1.0)), np.nan)
        fit = seed_slope_test(*long_form(log_gap, x, seeds), "two-sided", alpha)
        slopes = seed_slopes(log_gap, x)
        vs_claim = one_sample_t(slopes, "two-sided", alpha, null=B_CLAIMED)
        eq = tost(slopes, low, high, alpha)
        intercept = _mean_intercept(log_gap, x)
        raw = power_law_fit(np.repeat(kappa, len(seeds)), gap.ravel(), alpha)
        raw.update({"experiment": name})

        enough = slopes.size >= 2
        key = Effect(
            vs_claim.estimate,
            vs_claim.se,
            vs_claim.ci_low,
            vs_claim.ci_high,
            eq.p_value,
            vs_claim.statistic,
            int(slopes.size),
        )
        comp = {"b": key, "tost": Equivalence.of(eq), "enough": enough}
        decision = self._decide(comp, alpha) if enough else "inconclusive"

        per_fraction = []
        for i, f in enumerate(fractions):
            rec = {"experiment": name, "fraction": float(f), "n_train": int(kappa[i])}
            for label_, arr in (
                ("fidelity_train", f_train),
                ("fidelity_test", f_test),
                ("gap", gap),
                ("kl_train", kl_train),
                ("kl_test", kl_test),
            ):
                mc = mean_ci(arr[i], alpha)
                rec[label_] = mc["mean"]
                if label_ == "gap":
                    rec.update({"gap_ci_low": mc["ci_low"], "gap_ci_high": mc["ci_high"]})
                    rec["n"] = mc["n"]
            rec["n_excluded"] = int((~usable[i]).sum())
            per_fraction.append(rec)

        extra = {
            "kd_method": kd,
            "margin": margin,
            "intercept_a": intercept,
            "p_vs_minus_half": vs_claim.p_value,
            "p_slope_vs_zero": fit.p_value,
            "tost_p": eq.p_value,
            "tost_equivalent": eq.equivalent,
            "tost_ci": (eq.ci_low, eq.ci_high),
            "n_cells_in_log_fit": int(usable.sum()),
            "n_cells_excluded": len(excluded),
            "raw_fit_b": raw["b"],
            "raw_fit_c": raw["c"],
        }
        lines = [
            f"Experiment {name}: KD method {kd!r}; gap = fidelity on trained-on samples − "
            "fidelity on test samples (top-1 agreement with the teacher).",
            f"Log fit, log gap = a + b log kappa, per-seed OLS slopes (n={slopes.size} seeds, "
            f"{int(usable.sum())} cells): b = {fmt(vs_claim.estimate, 4)}, {pct(1 - alpha)} CI "
            f"{fmt_ci(vs_claim.ci_low, vs_claim.ci_high, 4)}, a = {fmt(intercept, 4)}; "
            f"H0 b = -0.5: t={fmt(vs_claim.statistic)}, {fmt_p(vs_claim.p_value)}; "
            f"H0 b = 0: {fmt_p(fit.p_value)}; TOST b in [{fmt(low)}, {fmt(high)}]: "
            f"{fmt_p(eq.p_value)}, {pct(1 - 2 * alpha)} CI {fmt_ci(eq.ci_low, eq.ci_high, 4)}.",
            f"Raw-scale fit gap = c * kappa^b (nonlinear least squares, all {raw['n_cells']} "
            f"finite cells incl. gap <= 0, cells treated as independent): c = {fmt(raw['c'], 4)}, "
            f"b = {fmt(raw['b'], 4)} (se {fmt(raw['se_b'], 3)}), status: {raw['status']}.",
            f"Excluded from the log fit: {len(excluded)} cell(s)"
            + (
                ": " + ", ".join(fraction_label(e["fraction"], e["seed"]) for e in excluded)
                if excluded
                else "."
            ),
            "",
            fit.summary,
        ]
        return ExperimentResult(
            name=name,
            components=comp,
            row=effect_row(name, key, decision, extra),
            tables={
                "per_fraction": per_fraction,
                "cells": cell_records,
                "excluded": excluded,
                "power_law_fit": [raw],
            },
            summary="\n".join(lines),
        )

    @staticmethod
    def _decide(comp: Mapping[str, Any], alpha: float) -> str:
        b, eq = comp["b"], comp["tost"]
        if b.estimate < 0 and eq.equivalent:
            return "supported"
        if b.ci_high < B_CLAIMED or b.ci_low > B_CLAIMED:
            return "rejected"
        return "inconclusive"

    def test(self, store: Mapping[str, xr.Dataset], alpha: float = 0.05, **options: Any) -> Verdict:
        opts = resolve_options(self, options)
        margin = float(opts["margin"])
        low, high = B_CLAIMED - margin, B_CLAIMED + margin
        results, skipped = run_experiments(
            self, store, lambda n, ds: self._analyse(n, ds, alpha, opts)
        )
        usable = [r for r in results if r.components["enough"]]
        pooled_row = None
        pooled_summary = None
        if len(results) > 1 and usable:
            pooled = Pooled(usable, alpha)
            two = pooled.effect("b", "two-sided")
            eq = pooled_tost(pooled.effects("b"), low, high, alpha)
            t_vs_claim = (two.estimate - B_CLAIMED) / two.se if two.se > 0 else NAN
            top = Effect(
                two.estimate, two.se, two.ci_low, two.ci_high, eq.p_value, t_vs_claim, two.n
            )
            comp = {"b": top, "tost": eq, "enough": True}
            decision = self._decide(comp, alpha)
            pooled_row = effect_row(
                "pooled",
                top,
                decision,
                {
                    "k": two.n,
                    "tost_p": eq.p_value,
                    "tost_equivalent": eq.equivalent,
                    "tost_ci": (eq.ci_low, eq.ci_high),
                },
            )
            pooled_summary = pooled.summary(
                self.name, {"exponent b (two-sided, vs 0)": ("b", "two-sided")}
            )
        elif len(results) > 1:
            top = Effect(NAN, NAN, NAN, NAN, NAN)
            comp = {"b": top, "tost": None, "enough": False}
            decision = "inconclusive"
        else:
            comp = results[0].components
            top = comp["b"]
            decision = results[0].row.decision
        n_excluded = sum(len(r.tables["excluded"]) for r in results)
        names = [
            f"{fraction_label(e['fraction'], e['seed'])}"
            + (f" ({e['experiment']})" if len(results) > 1 else "")
            + (" NaN" if not np.isfinite(e["gap"]) else f" gap={fmt(e['gap'], 2)}")
            for r in results
            for e in r.tables["excluded"]
        ]
        reason = self._reason(decision, comp, alpha, margin, len(usable) if usable else 1)
        left_out = [r.name for r in results if not r.components["enough"]]
        if len(results) > 1 and left_out and usable:
            reason += f" Left out of the pooling for too few positive gaps: {', '.join(left_out)}."
        if n_excluded:
            reason += (
                f" {n_excluded} cell(s) with gap <= 0 or NaN were excluded from the log fit (kept "
                f"in the raw-scale fit): {', '.join(names[:6])}{' …' if n_excluded > 6 else ''}."
            )
        return build_verdict(
            self,
            alpha=alpha,
            effect=self.effect,
            model=(
                "log(gap) = a + b log(kappa) with per-seed OLS slopes and a t-test across seeds "
                f"({pct(1 - alpha)} CI of b vs -0.5); TOST of b within -0.5 ± {fmt(margin)}; "
                "raw-scale nonlinear least squares gap = c * kappa^b reported; DerSimonian-Laird "
                "random-effects pooling of b across experiments."
            ),
            alternative="two-sided",
            results=results,
            skipped=skipped,
            top=top,
            decision=decision,
            reason=reason,
            pooled=pooled_row,
            pooled_summary=pooled_summary,
        )

    @staticmethod
    def _reason(decision: str, comp: Mapping[str, Any], alpha: float, margin: float, k: int) -> str:
        if not comp["enough"]:
            return (
                "Too few cells with a positive fidelity gap to fit log(gap) on log(kappa): at "
                "least 2 seeds need a positive gap at 2 or more fractions."
            )
        b, eq = comp["b"], comp["tost"]
        where = f", pooled over {k} experiments" if k > 1 else ""
        s = (
            f"Exponent b = {fmt(b.estimate)}{where} ({pct(1 - alpha)} CI "
            f"{fmt_ci(b.ci_low, b.ci_high)}; "
            f"TOST within -0.5 ± {fmt(margin)} {fmt_p(eq.p_value)})"
        )
        if decision == "supported":
            return f"{s}: the gap decays like kappa^(-1/2) within the margin."
        if decision == "rejected":
            return f"{s}: the CI excludes -0.5, so the gap does not decay like kappa^(-1/2)."
        return (
            f"{s}: neither equivalence to -0.5 within ±{fmt(margin)} nor a CI excluding -0.5 "
            f"at alpha={alpha:g}."
        )


def _mean_intercept(y: np.ndarray, x: np.ndarray) -> float:
    """Mean over seeds of the per-seed OLS intercept of ``y[:, s]`` on ``x``."""
    out = []
    for s in range(y.shape[1]):
        ok = np.isfinite(y[:, s])
        if np.unique(x[ok]).size < 2:
            continue
        b, a = np.polyfit(x[ok], y[ok, s], 1)
        out.append(a)
    return float(np.mean(out)) if out else NAN
