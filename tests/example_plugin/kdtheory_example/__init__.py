"""kdtheory-example: a complete third-party hypothesis plugin for kdtheory.

Install it (``pip install -e tests/example_plugin``) and ``kdtheory list`` shows
``example-kd-gain``; ``kdtheory test example-kd-gain --runs data/`` tests it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

import kdtheory
from kdtheory.hypothesis import DecidingTest, EffectRow, Hypothesis, Verdict
from kdtheory.stats import ci_level, one_sample_t, pool_experiments


def accuracy(ds: xr.Dataset, method: str) -> np.ndarray:
    """Test accuracy of ``method`` per (fraction, seed); NaN for cells not trained yet."""
    logits = ds["test_logits"].sel(arm=method)
    logits = logits.transpose("fraction", "seed", "test_sample", "class").values
    labels = np.asarray(ds["test_labels"].values)
    trained = ~np.isnan(logits).any(axis=(-2, -1))
    predicted = np.nan_to_num(logits, nan=-np.inf).argmax(axis=-1)
    return np.where(trained, (predicted == labels).mean(axis=-1), np.nan)


def _first_method(ds: xr.Dataset, objective: str) -> str:
    objectives = [str(o) for o in ds["objective"].values]
    return [str(m) for m, o in zip(ds["arm"].values, objectives, strict=True) if o == objective][0]


def _decide(ci_low: float, ci_high: float, p: float, alpha: float) -> tuple[str, float, Any]:
    """The decision, the p it rests on and its test: the p and CI shown agree with it."""
    level = ci_level("greater", alpha)
    if p <= alpha and ci_low > 0:
        return "supported", p, DecidingTest("gain > 0", "supported", "greater", ci_level=level)
    if 1.0 - p <= alpha and ci_high < 0:  # the gain is significantly negative
        return "rejected", 1.0 - p, DecidingTest("gain < 0", "rejected", "less", ci_level=level)
    return "inconclusive", p, DecidingTest("gain > 0", "supported", "greater", ci_level=level)


class KDGain(Hypothesis):
    """Distilled students beat label-trained students on the test set."""

    name = "example-kd-gain"
    claim = "Students distilled from the teacher are more accurate than students trained on labels."
    prediction = (
        "Averaged over fractions, the per-seed test-accuracy gain of KD over label training is "
        "positive (one-sided paired t-test across seeds)."
    )
    required_objectives = ("label", "kd")
    required_variables = ("test_logits", "test_labels")
    run_hint = "label,kd:T=4"
    options = {"min_fraction": 0.0, "kd_method": ""}

    def test(
        self,
        store: Mapping[str, xr.Dataset],
        alpha: float = 0.05,
        min_fraction: float = 0.0,
        kd_method: str = "",
    ) -> Verdict:
        rows: list[EffectRow] = []
        ses: list[float] = []
        for exp_id, ds in store.items():
            ds = ds.isel(fraction=np.flatnonzero(ds["fraction"].values >= min_fraction))
            kd = kd_method or _first_method(ds, "kd")
            gain = accuracy(ds, kd) - accuracy(ds, _first_method(ds, "label"))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # seeds with no trained cell
                per_seed = np.nanmean(gain, axis=0)  # seeds are the unit of replication
            r = one_sample_t(per_seed, alternative="greater", alpha=alpha)
            decision, p, test = _decide(r.ci_low, r.ci_high, r.p_value, alpha)
            rows.append(
                EffectRow(
                    label=str(exp_id),
                    estimate=r.estimate,
                    ci_low=r.ci_low,
                    ci_high=r.ci_high,
                    p_value=p,
                    statistic=r.statistic,
                    n=r.n,
                    decision=decision,
                    extra={"kd_method": kd},
                    deciding=test,
                )
            )
            ses.append(r.se)
        pooled = None
        key: Any = rows[0]
        model = "one-sided paired t-test across seeds"
        pooling = ""
        if len(rows) > 1:
            # experiment as a random effect, t on k - 1 df: honest with a handful of experiments
            m = pool_experiments(
                [r.estimate for r in rows], ses, [r.n for r in rows], "greater", alpha
            )
            decision, p, test = _decide(m.ci_low, m.ci_high, m.p_value, alpha)
            pooled = EffectRow(
                "pooled",
                m.estimate,
                m.ci_low,
                m.ci_high,
                p,
                m.statistic,
                m.k,
                decision,
                {"tau2": m.tau2, "i2": m.i2},
                unit="experiments",
                deciding=test,
            )
            key = pooled
            model += f"; {m.method}"
            pooling = m.method
        return Verdict(
            hypothesis=self.name,
            claim=self.claim,
            prediction=self.prediction,
            decision=key.decision,
            alpha=alpha,
            effect="test-accuracy gain of KD over label training (fraction of test samples)",
            estimate=key.estimate,
            ci=(key.ci_low, key.ci_high),
            p_value=key.p_value,
            statistic=key.statistic,
            model=model,
            alternative="greater",
            reason=f"Mean gain {key.estimate:.4g} ({key.deciding.name}: p = {key.p_value:.3g}).",
            experiments=rows,
            pooled=pooled,
            deciding=key.deciding,
            pooling=pooling,
        )


@kdtheory.hookimpl
def kdtheory_register_hypotheses() -> list[Hypothesis]:
    return [KDGain()]
