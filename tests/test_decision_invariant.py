"""The decision is a function of the shown p-value, alpha and the shown CI.

For every built-in hypothesis, on many synthetic stores (one experiment and three, nulls and
planted effects both ways): every row (each experiment's and the pooled one) and the verdict
itself name their deciding test, and

- supported ⇒ p ≤ alpha and the CI clears the null on the claimed side (or lies inside the
  equivalence band);
- rejected ⇒ p ≤ alpha and the CI clears it on the other side (or lies outside the band, or
  inside it for an equivalence that rejects the claim);
- inconclusive otherwise,

also after the Holm correction across the family (with the Holm-adjusted p).
"""

from __future__ import annotations

import math
from collections import Counter

import pytest

import kdtheory.hypothesis.toolkit
from kdtheory.hypotheses import kdtheory_register_hypotheses
from kdtheory.hypothesis.family import adjust_family
from kdtheory.testing.calibration import DESIGNS, EFFECTS, NULLS
from kdtheory.testing.synthetic import make_store

HYPS = {h.name: h for h in kdtheory_register_hypotheses()}
STORES_PER_TRUTH = 3


@pytest.fixture(autouse=True)
def _no_model_summaries(monkeypatch):
    monkeypatch.setattr(kdtheory.hypothesis.toolkit, "FIT_SUMMARIES", False)


def _verdicts(name: str, design: str):
    knobs = dict(DESIGNS[design][name])
    n_exp = knobs.pop("n_experiments")
    cases = [c for c in [*NULLS, *EFFECTS] if c.hypothesis == name and c.fits(design)]
    for i, case in enumerate(cases):
        per = [dict(p) for p in case.per_experiment] if case.per_experiment else None
        for j in range(STORES_PER_TRUTH):
            store = make_store(n_exp, seed=1000 * i + j, per_experiment=per, **knobs, **case.truth)
            yield HYPS[name].test(store)


def _row_ok(row, alpha: float) -> bool:
    assert row.deciding is not None, row.label
    return row.deciding.implied_decision(row.p_value, alpha, row.ci_low, row.ci_high) == (
        row.decision
    )


@pytest.mark.parametrize("design", ["single", "multi"])
@pytest.mark.parametrize("name", sorted(HYPS))
def test_decision_is_a_function_of_the_shown_p_and_ci(name, design):
    seen: Counter = Counter()
    for v in _verdicts(name, design):
        seen[v.decision] += 1
        assert v.deciding is not None
        assert v.implied_decision() == v.decision, (v.decision, v.p_value, v.ci, v.deciding)
        for row in [*v.experiments, *([v.pooled] if v.pooled is not None else [])]:
            assert _row_ok(row, v.alpha), (row.label, row.decision, row.p_value, row.ci_low)
        # the verdict shows its last row's numbers: the pooled one with several experiments
        last = v.pooled if v.pooled is not None else v.experiments[0]
        assert (v.decision, v.deciding) == (last.decision, last.deciding)
        assert v.p_value == last.p_value or (math.isnan(v.p_value) and math.isnan(last.p_value))
        assert v.ci == (last.ci_low, last.ci_high) or math.isnan(v.ci[0])
        # with several experiments the pooled row counts experiments, never seeds
        if v.pooled is not None:
            assert v.pooled.unit == "experiments" and v.pooled.n == len(v.experiments)
            assert v.pooling and {"tau2", "i2"} <= set(v.pooled.extra)
    # the truths drive the hypothesis to different decisions, so more than one branch of the
    # rule is exercised (label-smoothing's "supported" needs equivalence at all 18 fractions of
    # 3 three-seed experiments, which the multi design never reaches)
    assert len(seen) >= 2 and seen["rejected"] > 0, seen
    if design == "single":
        assert seen["supported"] > 0, seen


def test_the_invariant_holds_after_holm_across_the_family():
    knobs = {"n_train": 300, "n_test": 100, "n_seeds": 3, "features": True}
    for seed in range(4):
        store = make_store(3, seed=seed, fractions=(0.05, 0.15, 0.4, 1.0), **knobs)
        hyps = [HYPS[n] for n in sorted(HYPS)]
        family = adjust_family([h.test(store) for h in hyps], hyps)
        for v in family:
            assert v.p_adjusted is not None and len(v.family) == 5
            assert v.implied_decision() == v.decision, (v.hypothesis, v.p_adjusted, v.ci)
