"""Calibration of the built-in hypotheses on synthetic stores with a planted truth.

For each hypothesis:

- under a null (the claim false, at its least favourable point where one exists) the rate of a
  wrong "supported" over many generated stores stays within alpha plus binomial slack (the upper
  99% binomial quantile of the count);
- under a clear planted effect the right verdict comes in >= 90% of stores;
- under the opposite effect the verdict is "rejected" in >= 90% of stores (label-smoothing: LS
  clearly *better* than KD neither rejects the claim, whose rejection is "KD beats LS", nor
  supports it, so "inconclusive");
- label-smoothing rejects when KD beats LS on average *or at any fraction* (one Holm family), so
  also the rate of a wrong "rejected" is checked, with KD and LS equal at every fraction.

Stores are small (one experiment, numpy-generated, only the methods the hypothesis needs) so
that every case runs in a few seconds.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import Counter

import pytest
from scipy.stats import binom

import kdtheory.hypotheses
from kdtheory.hypotheses import kdtheory_register_hypotheses
from kdtheory.synthetic import make_experiment

ALPHA = 0.05
N_NULL = 120
N_POWER = 20

HYPOTHESES = {h.name: h for h in kdtheory_register_hypotheses()}

# Accuracy-based hypotheses never look at the training logits: a small train set keeps the
# stores cheap (the planted accuracies depend on log(kappa / kappa_max) only).
_ACC = {"n_test": 300, "n_train": 100, "features": False}
DESIGNS = {
    "data-efficiency": {"methods": ("label", "kd-T4"), **_ACC},
    "label-smoothing": {"methods": ("kd-T4", "ls"), **_ACC},
    "dark-knowledge": {"methods": ("label", "kd-T4", "kd-shuffled-T4"), **_ACC, "n_test": 200},
    "neural-collapse": {
        "methods": ("label", "kd-T4"),
        "n_test": 50,
        "n_train": 200,
        "fractions": (0.15, 0.4, 1.0),
        "n_seeds": 4,
        "n_feature_sample": 100,
    },
    "fidelity-decay": {"methods": ("kd-T4",), "n_test": 300, "n_train": 300, "features": False},
}


@pytest.fixture(autouse=True)
def _no_model_summaries(monkeypatch):
    # decisions never depend on the statsmodels summary text; skipping it saves ~40% per store
    monkeypatch.setattr(kdtheory.hypotheses, "FIT_SUMMARIES", False)


def _decisions(args: tuple[str, list[int], dict]) -> Counter:
    name, seeds, truth = args
    kdtheory.hypotheses.FIT_SUMMARIES = False  # also in forked workers
    hyp = HYPOTHESES[name]
    out: Counter = Counter()
    for seed in seeds:
        ds = make_experiment(seed=seed, **DESIGNS[name], **truth)
        out[hyp.test({"sim": ds}, alpha=ALPHA).decision] += 1
    return out


def decisions(name: str, n: int, seed: int, **truth) -> Counter:
    """Decisions of hypothesis ``name`` on ``n`` independent one-experiment stores.

    The stores are split over two forked processes where the platform allows (the result does
    not depend on it: store ``i`` always has generator seed ``seed * 100003 + i``).
    """
    seeds = [seed * 100_003 + i for i in range(n)]
    workers = min(2, os.cpu_count() or 1)
    if workers < 2 or "fork" not in mp.get_all_start_methods():
        return _decisions((name, seeds, truth))
    chunks = [(name, seeds[k::workers], truth) for k in range(workers)]
    with mp.get_context("fork").Pool(workers) as pool:
        return sum(pool.map(_decisions, chunks), Counter())


def max_false_supported(n: int, alpha: float = ALPHA) -> int:
    """Upper 99% binomial quantile of the count of false 'supported' in n stores at rate alpha."""
    return int(binom.ppf(0.99, n, alpha))


# (hypothesis, planted truth) under which the claim is false at its least favourable point
NULLS = [
    # gain constant in kappa (positive everywhere): slope = 0
    ("data-efficiency", {"kd_gain": 2.0, "kd_gain_slope": 0.0}),
    # LS better than KD by exactly the margin at every fraction: TOST boundary, no rejection
    ("label-smoothing", {"ls_gap": -1.0, "ls_gap_slope": 0.0}),
    # KD's ranking follows the teacher, but shuffling costs nothing
    ("dark-knowledge", {"shuffled_gap": 0.0, "shuffled_gap_slope": 0.0}),
    # KD features align with the teacher, but collapse is the same
    ("neural-collapse", {"nc1_log_ratio": 0.0}),
    # exponent at the edge of the equivalence margin (-0.5 - 0.25)
    ("fidelity-decay", {"fidelity_b": -0.75}),
]


@pytest.mark.parametrize(("name", "truth"), NULLS, ids=[n for n, _ in NULLS])
def test_false_supported_rate_under_null(name, truth):
    counts = decisions(name, N_NULL, seed=1, **truth)
    assert counts["supported"] <= max_false_supported(N_NULL), counts


def test_dark_knowledge_second_null():
    # KD beats shuffled, but KD ranks the wrong classes no more like the teacher than label does
    counts = decisions("dark-knowledge", 40, seed=2, kd_rank_weight=0.3, label_rank_weight=0.3)
    assert counts["supported"] <= max_false_supported(40), counts


def test_label_smoothing_false_rejected_rate_under_null():
    # KD = LS at every fraction: the least favourable point for every test of the rejection
    # family (mean and per-fraction one-sided t-tests), whose Holm adjustment bounds the
    # family-wise rate of a wrong "rejected" by alpha
    counts = decisions("label-smoothing", N_NULL, seed=4, ls_gap=0.0, ls_gap_slope=0.0)
    assert counts["rejected"] <= max_false_supported(N_NULL), counts


# (hypothesis, planted truth, verdict that must come in >= 90% of stores)
EFFECTS = [
    ("data-efficiency", {}, "supported"),  # gain 7 points at the smallest fraction, slope -2
    ("data-efficiency", {"kd_gain": 2.0, "kd_gain_slope": 0.0}, "rejected"),  # TOST: flat
    ("data-efficiency", {"kd_gain_slope": 2.0, "kd_gain": 7.0}, "rejected"),  # opposite
    ("label-smoothing", {}, "rejected"),  # KD beats LS, most at small data
    # KD beats LS by 5 points at the smallest fraction, LS beats KD by 4 at the largest: the
    # mean over fractions is about 0, the per-fraction tests reject
    ("label-smoothing", {"ls_gap": -4.0, "ls_gap_slope": -3.0}, "rejected"),
    (
        "label-smoothing",
        {"ls_gap": 0.0, "ls_gap_slope": 0.0, "cell_sd": 0.15, "method_seed_sd": 0.1},
        "supported",
    ),
    # LS clearly better than KD: KD does not beat LS, nor do they match -> inconclusive
    ("label-smoothing", {"ls_gap": -3.0, "ls_gap_slope": 0.0}, "inconclusive"),
    ("dark-knowledge", {}, "supported"),
    ("dark-knowledge", {"shuffled_gap": 0.0, "shuffled_gap_slope": 0.0}, "rejected"),  # TOST
    ("dark-knowledge", {"shuffled_gap": -3.0, "shuffled_gap_slope": 0.0}, "rejected"),
    ("neural-collapse", {}, "supported"),
    ("neural-collapse", {"nc1_log_ratio": -0.7}, "rejected"),
    ("fidelity-decay", {}, "supported"),  # b = -0.5
    ("fidelity-decay", {"fidelity_b": -1.0}, "rejected"),
    ("fidelity-decay", {"fidelity_b": 0.0, "fidelity_gap_at_min": 0.08}, "rejected"),
]


@pytest.mark.parametrize(
    ("name", "truth", "expected"),
    EFFECTS,
    ids=[f"{n}-{e}-{i}" for i, (n, _, e) in enumerate(EFFECTS)],
)
def test_planted_effect_gives_the_right_verdict(name, truth, expected):
    counts = decisions(name, N_POWER, seed=3, **truth)
    assert counts[expected] >= 0.9 * N_POWER, counts
