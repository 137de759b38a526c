"""``fidelity-decay``: the train/unseen fidelity gap of a KD student decays like kappa^(-1/2)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
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
    NAN,
    Effect,
    Equivalence,
    ExperimentResult,
    Pooled,
    Ruling,
    bare,
    cell_records,
    cells,
    deciding,
    fmt,
    fmt_ci,
    fmt_p,
    fraction_label,
    fraction_means,
    fraction_records,
    mean_ci_columns,
    method_array,
    pick_kd,
    require,
    result_text,
    sorted_experiment,
)
from kdtheory.hypothesis.verdict import Verdict
from kdtheory.metrics import fidelity, kl_divergence
from kdtheory.report.format import ci_header
from kdtheory.stats import POOLING_METHODS, holm, one_sample_t, tost

if TYPE_CHECKING:
    import xarray as xr

#: The exponent the claim predicts.
B_CLAIMED = -0.5


def power_law_fit(kappa: np.ndarray, gap: np.ndarray, alpha: float, b0: float = B_CLAIMED) -> dict:
    """Nonlinear least squares ``gap = c * kappa**b`` on the raw scale (``scipy.optimize``).

    Every finite cell enters, including gaps <= 0. The fit treats cells as independent (no seed
    clustering), so its standard errors are descriptive; the decision uses the per-seed fits of
    :func:`seed_power_fits`.

    Returns
    -------
    dict
        ``c``, ``b``, ``se_c``, ``se_b``, ``b_ci_low``, ``b_ci_high`` (normal, ``1 - alpha``),
        ``residual_sd``, ``n_cells``, ``status`` (``"ok"`` or why it failed).
    """
    from scipy.optimize import curve_fit
    from scipy.special import ndtri

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
    z = float(ndtri(1 - alpha / 2))
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


def seed_power_fits(kappa: np.ndarray, gap: np.ndarray) -> dict[str, np.ndarray]:
    """Per seed, nonlinear least squares on the raw scale of the power law and of a curved one.

    With ``x = log(kappa) - mean(log(kappa))``, each seed's gaps (every finite cell, gaps <= 0
    included: dropping them would lose exactly the large-kappa cells where a steep law's gap
    falls into noise and flatten the slope) are fitted by

    - ``gap = a * exp(b * x)`` (the power law ``gap ∝ kappa**b``), and
    - ``gap = a * exp(b * x + q * x**2)`` (a power law whose exponent changes with kappa; ``q``
      measures the lack of fit: a plateau followed by a cliff is concave, ``q < 0``).

    Parameters
    ----------
    kappa : array (F,)
    gap : array (F, S)

    Returns
    -------
    dict
        ``a``, ``b``, ``q`` (per seed, NaN where a fit failed or had fewer than 3 finite cells at
        3 distinct kappa; ``q`` needs 4 cells) and ``n_cells`` per seed.
    """
    from scipy.optimize import curve_fit

    k = np.asarray(kappa, dtype=float)
    g = np.asarray(gap, dtype=float)
    n_seeds = g.shape[1]
    out = {
        "a": np.full(n_seeds, NAN),
        "b": np.full(n_seeds, NAN),
        "q": np.full(n_seeds, NAN),
        "n_cells": np.zeros(n_seeds, dtype=int),
    }
    x_all = np.log(k) - float(np.mean(np.log(k)))

    def power(x: np.ndarray, a: float, b: float) -> np.ndarray:
        return a * np.exp(b * x)

    def curved(x: np.ndarray, a: float, b: float, q: float) -> np.ndarray:
        return a * np.exp(b * x + q * x * x)

    for j in range(n_seeds):
        ok = np.isfinite(g[:, j]) & np.isfinite(x_all)
        x, y = x_all[ok], g[ok, j]
        out["n_cells"][j] = int(ok.sum())
        if np.unique(x).size < 3:
            continue
        a0 = float(np.mean(y[y > 0])) if (y > 0).any() else float(np.mean(np.abs(y)) or 1e-3)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                (a, b), _ = curve_fit(power, x, y, p0=(a0, B_CLAIMED), maxfev=4000)
            except (RuntimeError, ValueError):
                continue
            if not (np.isfinite(a) and np.isfinite(b)) or a <= 0:
                continue
            out["a"][j], out["b"][j] = float(a), float(b)
            if np.unique(x).size < 4:
                continue
            try:
                (_, _, q), _ = curve_fit(curved, x, y, p0=(a, b, 0.0), maxfev=4000)
            except (RuntimeError, ValueError):
                continue
            if np.isfinite(q):
                out["q"][j] = float(q)
    return out


class FidelityDecay(PooledHypothesis):
    """The fidelity gap between trained-on and unseen samples decays as kappa^(-1/2).

    Fidelity is top-1 agreement of the KD student with the teacher: on the training samples the
    cell trained on (``in_train``), and on the test set (unseen samples; defined at every
    fraction, including 1.0). ``gap = fidelity_train − fidelity_test`` per (fraction, seed).
    KL(teacher ‖ student) on both sets is reported alongside.

    The model is fitted per seed on the raw scale (:func:`seed_power_fits`: nonlinear least
    squares of ``gap = a * kappa**b`` on every finite cell, gaps <= 0 included), seeds as the
    unit of replication: one-sample t-tests across seeds of the exponents ``b`` and of the
    curvature ``q`` of ``gap = a * exp(b x + q x**2)``, ``x = log kappa`` centred.

    Decision (the same rule on the pooled exponents and curvatures with several experiments):

    - **rejected**: the power law with exponent -0.5 is contradicted — the ``1 - 2*alpha`` CI of
      ``b`` lies outside the band ``-0.5 ± margin`` (default 0.25; p: the smaller of the two
      one-sided tests against the band edges), or the gap is not a power law (lack of fit:
      curvature ``q`` ≠ 0, two-sided). The two are Holm-adjusted as a pair; the deciding test is
      the one with the smaller adjusted p, its CI at the matching level;
    - **supported**: not rejected, and TOST shows ``b`` inside the band (its ``1 - 2*alpha`` CI
      lies inside ``-0.5 ± margin``); deciding test: the TOST;
    - **inconclusive** otherwise (shown: the TOST), or when fewer than 2 seeds have a fit with
      a positive gap.

    Options: ``kd_method`` (default the kd method with T=4, else the first), ``margin`` (0.25),
    ``pooling`` (``"mixed"`` or ``"hksj"``).
    """

    name: ClassVar[str] = "fidelity-decay"
    claim: ClassVar[str] = (
        "The fidelity gap between the samples a KD student trained on and unseen samples decays "
        "as kappa^(-1/2)."
    )
    prediction: ClassVar[str] = (
        "gap = a * kappa^b fits (no curvature in log kappa) with b equivalent to -0.5 within the "
        "margin, fitted on the raw scale with seeds as replication."
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
    options: ClassVar[dict[str, Any]] = {"kd_method": None, "margin": 0.25, "pooling": "mixed"}

    effect = "exponent b of the fidelity gap, gap = a * kappa^b (raw-scale fit, unitless)"

    alternative = "two-sided"
    pooled_lines = {
        "exponent b (two-sided, vs 0)": ("b", "two-sided"),
        "curvature q (two-sided, vs 0)": ("curvature", "two-sided"),
    }

    def analyse(self, name: str, ds: xr.Dataset, opts: Options) -> ExperimentResult:
        alpha = opts.alpha
        kd = require(pick_kd(ds, opts), ds, "a kd method", opts)
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
        kappa = np.asarray(ds["n_train"].values, dtype=float)
        seeds = np.asarray(ds["seed"].values)

        cell_table = cell_records(
            name,
            ds,
            {
                "fidelity_train": f_train,
                "fidelity_test": f_test,
                "gap": gap,
                "kl_train": kl_train,
                "kl_test": kl_test,
            },
        )
        excluded = [
            {k: rec[k] for k in ("experiment", "fraction", "n_train", "seed", "gap")}
            | {"reason": "gap is NaN (cell not trained or no samples)"}
            for rec in cell_table
            if not np.isfinite(rec["gap"])
        ]
        fits = seed_power_fits(kappa, gap)
        b_s, q_s = fits["b"], fits["q"]
        vs_claim = one_sample_t(b_s, "two-sided", alpha, null=B_CLAIMED)
        below = one_sample_t(b_s, "less", alpha, null=low)
        above = one_sample_t(b_s, "greater", alpha, null=high)
        eq = tost(b_s, low, high, alpha)
        curv = one_sample_t(q_s, "two-sided", alpha)
        raw = power_law_fit(np.repeat(kappa, len(seeds)), gap.ravel(), alpha)
        raw.update({"experiment": name})
        enough = int(np.isfinite(b_s).sum()) >= 2
        comp = {
            "b": Effect.of(below) if enough else Effect(NAN, NAN, NAN, NAN, NAN),
            "below": Effect.of(below),
            "above": Effect.of(above),
            "tost": Equivalence.of(eq),
            "curvature": Effect.of(curv),
            "enough": enough,
        }

        per_fraction = fraction_records(
            name,
            ds,
            fraction_means(fidelity_train=f_train, fidelity_test=f_test),
            mean_ci_columns(gap, alpha, "gap", prefix_ci=True),
            fraction_means(kl_train=kl_train, kl_test=kl_test),
            {"n_gap_le_0": [int(n) for n in (np.isfinite(gap) & (gap <= 0)).sum(axis=1)]},
        )
        seed_fits = [
            {
                "experiment": name,
                "seed": int(seeds[j]),
                "a": float(fits["a"][j]),
                "b": float(b_s[j]),
                "curvature_q": float(q_s[j]),
                "n_cells": int(fits["n_cells"][j]),
            }
            for j in range(len(seeds))
        ]
        n_le0 = int((np.isfinite(gap) & (gap <= 0)).sum())
        numbers = {
            "p_vs_minus_half": vs_claim.p_value,
            "n_seeds_fitted": int(np.isfinite(b_s).sum()),
            "n_cells_gap_le_0": n_le0,
            "raw_fit_b": raw["b"],
            "raw_fit_c": raw["c"],
        }
        lines = [
            f"Experiment {name}: KD method {kd!r}; gap = fidelity on trained-on samples − "
            "fidelity on test samples (top-1 agreement with the teacher).",
            f"Per-seed raw-scale fits gap = a * kappa^b (all finite cells, {n_le0} with gap <= 0 "
            f"included; {int(np.isfinite(b_s).sum())} of {len(seeds)} seeds fitted): b = "
            f"{fmt(vs_claim.estimate, 4)}, {ci_words(alpha)} {fmt_ci(eq.ci_low, eq.ci_high, 4)}; "
            f"TOST b in [{fmt(low)}, {fmt(high)}] {fmt_p(eq.p_value)}; b below the band "
            f"{fmt_p(below.p_value)}, above {fmt_p(above.p_value)}; H0 b = -0.5 "
            f"{fmt_p(vs_claim.p_value)}.",
            f"Lack of fit: curvature q of gap = a * exp(b x + q x^2), x = centred log kappa: "
            f"{result_text(curv, ci='CI')} (two-sided).",
            f"Pooled-cell fit (cells treated as independent, descriptive): c = {fmt(raw['c'], 4)}, "
            f"b = {fmt(raw['b'], 4)} (se {fmt(raw['se_b'], 3)}), status: {raw['status']}.",
        ]

        def summary(ruling: Ruling) -> str:
            return "\n".join(
                [
                    *lines,
                    f"Decision: {ruling.decision} (deciding test: {ruling.deciding.describe()}, "
                    f"{fmt_p(ruling.shown.p_value)}).",
                ]
            )

        return ExperimentResult(
            name=name,
            components=comp,
            settings={"kd_method": kd, "margin": margin},
            numbers=numbers,
            tables={
                "per_fraction": per_fraction,
                "cells": cell_table,
                "seed_fits": seed_fits,
                "excluded": excluded,
                "power_law_fit": [raw],
            },
            summary=summary,
        )

    def rule(self, tests: Mapping[str, Any], opts: Options) -> Ruling:
        alpha = opts.alpha
        if not tests["enough"]:
            decision = "inconclusive"
        elif _rejection(tests)[0] <= alpha:
            decision = "rejected"
        elif tests["tost"].equivalent:
            decision = "supported"
        else:
            decision = "inconclusive"
        shown = _shown(tests, decision, alpha, opts["margin"])
        return Ruling(decision, *shown, _decision_numbers(tests, alpha))

    def poolable(self, result: ExperimentResult) -> bool:
        """Only experiments where at least 2 seeds have a fit enter the pool."""
        return bool(result.components["enough"])

    def pool(self, pooled: Pooled, opts: Options) -> dict[str, Any]:
        """The exponent pooled against the claim's band and its edges, and the curvature."""
        low, high = B_CLAIMED - opts["margin"], B_CLAIMED + opts["margin"]
        return {
            "b": pooled.effect("b", "two-sided"),
            "below": pooled.effect("b", "less", low),
            "above": pooled.effect("b", "greater", high),
            "tost": pooled.tost("b", low, high),
            "curvature": pooled.effect("curvature", "two-sided"),
            "enough": True,
        }

    def describe_model(self, opts: Options) -> str:
        return (
            "Per-seed nonlinear least squares on the raw scale, gap = a * kappa^b and "
            "gap = a * exp(b x + q x^2) (x = centred log kappa), every finite cell; "
            f"t-tests across seeds: TOST of b within -0.5 ± {fmt(opts['margin'])}, b outside "
            "that band (one-sided against each edge), curvature q ≠ 0 (lack of fit); the two "
            "rejection tests Holm-adjusted as a pair; pooled across experiments: "
            f"{POOLING_METHODS[opts.pooling]}."
        )

    def reason(self, outcome: Outcome, opts: Options) -> str:
        results = outcome.results
        reason = self._reason(
            outcome.ruling.decision, outcome.tests, opts.alpha, opts["margin"], outcome.k
        )
        left_out = [r.name for r in results if not self.poolable(r)]
        if outcome.decided_on and left_out:
            reason += f" Left out for fewer than 2 fitted seeds: {', '.join(left_out)}."
        n_nan = sum(len(r.tables["excluded"]) for r in results)
        if n_nan:
            names = [
                f"{fraction_label(e['fraction'], e['seed'])}"
                + (f" ({e['experiment']})" if len(results) > 1 else "")
                + " NaN"
                for r in results
                for e in r.tables["excluded"]
            ]
            reason += (
                f" {n_nan} cell(s) without a gap (NaN) could not enter the fits: "
                f"{', '.join(names[:6])}{' …' if n_nan > 6 else ''}."
            )
        n_le0 = sum(int(r.numbers.get("n_cells_gap_le_0", 0)) for r in results)
        if n_le0:
            reason += f" {n_le0} cell(s) with gap <= 0 were kept in the raw-scale fits."
        return reason

    @staticmethod
    def _reason(decision: str, comp: Mapping[str, Any], alpha: float, margin: float, k: int) -> str:
        if not comp["enough"]:
            return (
                "Too few cells with a positive fidelity gap to fit the power law: at least 2 seeds "
                "need a fit with a positive gap at 3 or more fractions."
            )
        b, eq, curv = comp["b"], comp["tost"], comp["curvature"]
        where = f", pooled over {k} experiments" if k > 1 else ""
        p_reject, which = _rejection(comp)
        s = (
            f"Exponent b = {fmt(b.estimate)}{where} ({ci_words(alpha)} "
            f"{fmt_ci(eq.ci_low, eq.ci_high)}; TOST within -0.5 ± {fmt(margin)} "
            f"{fmt_p(eq.p_value)}); lack of fit (curvature in log kappa) {fmt(curv.estimate)} "
            f"({fmt_p(curv.p_value)})"
        )
        if decision == "supported":
            return (
                f"{s}: the gap decays like kappa^(-1/2) within the margin and shows no lack of "
                f"fit (Holm-adjusted rejection {fmt_p(p_reject)})."
            )
        if decision == "rejected":
            why = (
                "the gap is not a power law in kappa"
                if which == "curvature"
                else "the CI of b lies outside the band, so the gap does not decay like "
                "kappa^(-1/2)"
            )
            return f"{s}: {why} (Holm-adjusted over the pair, {fmt_p(p_reject)})."
        return (
            f"{s}: neither equivalence to -0.5 within ±{fmt(margin)} nor a CI outside the band "
            f"or a lack of fit at alpha={alpha:g} (Holm-adjusted rejection {fmt_p(p_reject)})."
        )

    def report_sections(self, verdict: Verdict, store: Any, out_dir: Path) -> list[Any]:
        """Fidelity on trained-on and unseen samples per kappa: a figure and a table."""
        from kdtheory.report import figures as plot
        from kdtheory.report.document import Column

        keys = ["fidelity_train", "fidelity_test", "gap", "gap_ci_low", "gap_ci_high"]
        records = _scaled(verdict.tables.get("per_fraction", []), keys, 100.0)
        columns = [
            Column("Fidelity trained-on (%)", "fidelity_train", ".1f"),
            Column("Fidelity unseen (%)", "fidelity_test", ".1f"),
            *estimate_columns("Gap (points)", "gap", prefix_ci=True, level=table_level(verdict)),
            Column("Cells excluded", "n_excluded", "int"),
        ]
        tables = kappa_table(out_dir, verdict, columns, _TABLE_CAPTION, records)
        figure = Figure(
            "fidelity",
            lambda: plot.fidelity(store, verdict),
            "One column per experiment. Top: agreement with the teacher (%) on the samples each "
            "student trained on (solid) and on unseen test samples (dashed), vs κ. Bottom: "
            "their gap (percentage points) on log–log axes: single seeds (dots), geometric "
            "means over seeds, the fitted power law (the verdict's exponent b) and a reference "
            f"line of slope −1/2. {CI_NOTE}",
        )
        title = "Fidelity on trained-on vs unseen samples"
        return [report_section(out_dir, title, [figure], tables=tables)]


def ci_words(alpha: float) -> str:
    """``"90% CI"``: the level of the exponent's CI (that of its TOST)."""
    return ci_header(1 - 2 * alpha)


def _p_outside(comp: Mapping[str, Any]) -> tuple[float, str]:
    """p of "b lies outside the band": the smaller one-sided p against an edge, and which."""
    below, above = comp["below"].p_value, comp["above"].p_value
    if not (np.isfinite(below) or np.isfinite(above)):
        return NAN, "below"
    if not np.isfinite(above) or (np.isfinite(below) and below <= above):
        return float(below), "below"
    return float(above), "above"


def _rejection(comp: Mapping[str, Any]) -> tuple[float, str]:
    """Holm-adjusted p of the rejection pair (b outside the band, curvature) and the member
    with the smaller adjusted p (``"below"``, ``"above"`` or ``"curvature"``)."""
    p_out, side = _p_outside(comp)
    p_curv = comp["curvature"].p_value if comp.get("curvature") is not None else NAN
    adj = holm([p_out, p_curv])
    if not np.any(np.isfinite(adj)):
        return NAN, side
    if np.isfinite(adj[1]) and (not np.isfinite(adj[0]) or adj[1] < adj[0]):
        return float(adj[1]), "curvature"
    return float(adj[0]), side


def _shown(comp: Mapping[str, Any], decision: str, alpha: float, margin: float) -> tuple:
    """The deciding test of ``decision`` and the numbers a row shows for it."""
    low, high = B_CLAIMED - margin, B_CLAIMED + margin
    if decision == "rejected":
        p_adj, which = _rejection(comp)
        if which == "curvature":
            return deciding(
                comp["curvature"],
                "lack of fit: curvature of log gap in log kappa, Holm over the rejection pair",
                "rejected",
                "two-sided",
                alpha,
                p=p_adj,
                p_raw=comp["curvature"].p_value,
            )
        e = comp[which]
        return deciding(
            e,
            "b outside -0.5 ± margin, Holm over the rejection pair",
            "rejected",
            "outside",
            alpha,
            p=p_adj,
            p_raw=e.p_value,
            low=low,
            high=high,
        )
    eq = comp["tost"]
    if eq is None:
        eq = Equivalence(NAN, False, NAN, NAN, low, high)
    return eq.deciding(f"TOST b within -0.5 ± {fmt(margin)}", "supported", alpha)


def _decision_numbers(comp: Mapping[str, Any], alpha: float) -> dict[str, Any]:
    """The decision's numbers in an effect row, the same for an experiment and the pool."""
    eq, curv = comp["tost"], comp["curvature"]
    p_out, _ = _p_outside(comp)
    p_reject, which = _rejection(comp)
    return {
        "b": comp["b"].estimate,
        "tost_p": eq.p_value,
        "tost_equivalent": eq.equivalent,
        "tost_ci": (eq.ci_low, eq.ci_high),
        "p_outside_band": p_out,
        "curvature_q": curv.estimate,
        "curvature_ci": (curv.ci_low, curv.ci_high),
        "curvature_p": curv.p_value,
        "p_rejection_holm": p_reject,
        "rejection_by": which,
    }


def _scaled(records: Sequence[Mapping[str, Any]], keys: Sequence[str], factor: float) -> list[dict]:
    """Copies of ``records`` with the numbers under ``keys`` multiplied by ``factor``."""
    out = []
    for rec in records:
        new = dict(rec)
        for k in keys:
            v = new.get(k)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                new[k] = float(v) * factor
        out.append(new)
    return out


_TABLE_CAPTION = (
    "Top-1 agreement of the KD student with the teacher on the samples it trained on and on "
    "unseen (test) samples per kappa (mean over seeds), their gap with its t-interval over seeds, "
    "and the "
    "cells left out of the log fit (gap <= 0)."
)
