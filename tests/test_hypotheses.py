"""Functional tests of the built-in hypotheses: registration, options, pooling across
experiments, NaN cells and missing fractions, the data multiplier and fidelity-decay's handling
of gaps <= 0. (Calibration against planted truths: ``test_hyp_calibration.py``.)"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from kdtheory.errors import MissingRequirementError, SpecError
from kdtheory.hypotheses import kdtheory_register_hypotheses
from kdtheory.hypotheses.data_efficiency import DataEfficiency, data_multiplier
from kdtheory.hypotheses.fidelity_decay import FidelityDecay
from kdtheory.hypotheses.label_smoothing import LabelSmoothing
from kdtheory.hypothesis.family import run_test
from kdtheory.hypothesis.verdict import Verdict
from kdtheory.metrics import fidelity
from kdtheory.testing.synthetic import make_experiment, make_store

NAMES = (
    "data-efficiency",
    "label-smoothing",
    "dark-knowledge",
    "neural-collapse",
    "fidelity-decay",
)
HYP = {h.name: h for h in kdtheory_register_hypotheses()}

# small stores with what each hypothesis needs
_NC = {"n_test": 60, "n_train": 200, "fractions": (0.15, 0.4, 1.0), "n_seeds": 4}
NEEDS = {
    "data-efficiency": {"methods": ("label", "kd-T4"), "features": False, "n_train": 100},
    "label-smoothing": {"methods": ("kd-T4", "ls"), "features": False, "n_train": 100},
    "dark-knowledge": {
        "methods": ("label", "kd-T4", "kd-shuffled-T4"),
        "features": False,
        "n_train": 100,
    },
    "neural-collapse": {"methods": ("label", "kd-T4"), "n_feature_sample": 100, **_NC},
    "fidelity-decay": {"methods": ("kd-T4",), "features": False, "n_train": 300},
}


# ---------------------------------------------------------------------------- registration
def test_all_five_registered_through_the_plugin_manager():
    from kdtheory.plugin import manager as plugin_manager

    plugin_manager.reset()
    names = plugin_manager.get_registries().hypotheses.names()
    assert set(NAMES) <= set(names)
    for name in NAMES:
        source = plugin_manager.get_registries().hypotheses.source(name)
        assert source.startswith("hypotheses")


@pytest.mark.parametrize("name", NAMES)
def test_declarations(name):
    h = HYP[name]
    assert h.claim.endswith(".") and h.prediction and h.run_hint
    assert h.required_objectives and h.required_variables
    assert isinstance(h.options, dict)
    json.dumps(h.describe())


def test_unknown_option_is_refused():
    store = make_store(seed=0, **NEEDS["data-efficiency"])
    with pytest.raises(SpecError, match="slope_margin"):
        DataEfficiency().test(store, slope_marginn=1.0)
    with pytest.raises(SpecError, match="slope_margin"):
        run_test("data-efficiency", store, slope_marginn="1")
    # strings from the CLI are converted
    v = run_test("data-efficiency", store, slope_margin="0.25")
    assert v.experiments[0].extra["slope_margin"] == 0.25


def test_missing_requirements_name_the_run_hint():
    store = make_store(seed=0, **NEEDS["data-efficiency"])  # no ls
    with pytest.raises(MissingRequirementError, match="ls"):
        run_test("label-smoothing", store)
    # called directly (no framework check), test() still refuses a store it cannot use
    with pytest.raises(MissingRequirementError, match="kdtheory run --methods"):
        LabelSmoothing().test(store)
    with pytest.raises(MissingRequirementError, match="features"):
        run_test("neural-collapse", make_store(seed=0, **NEEDS["data-efficiency"]))


# ---------------------------------------------------------------------------- pooling
_METHODS = {"kd_method", "label_method", "ls_method", "shuffled_method"}
EXPERIMENT_ONLY = {
    "data-efficiency": _METHODS | {"slope_margin", "smallest_fraction"},
    "label-smoothing": _METHODS | {"margin"},
    "dark-knowledge": _METHODS | {"margin"},
    "neural-collapse": _METHODS
    | {
        "log_nc1_diff_unseen",
        "log_nc1_diff_unseen_p",
        "cka_diff_unseen",
        "cka_diff_unseen_p",
        "excluded_cells",
    },
    "fidelity-decay": _METHODS
    | {
        "margin",
        "raw_fit_b",
        "raw_fit_c",
        "p_vs_minus_half",
        "n_seeds_fitted",
        "n_cells_gap_le_0",
    },
}


@pytest.mark.parametrize("name", NAMES)
def test_pooling_across_experiments(name):
    store = make_store(n_experiments=3, seed=11, **NEEDS[name])
    v = HYP[name].test(store)
    assert isinstance(v, Verdict)
    assert [r.label for r in v.experiments] == list(store)
    assert v.pooled is not None and v.pooled.label == "pooled"
    assert v.pooled.extra["k"] == 3 and v.pooled.n == 3
    assert v.estimate == v.pooled.estimate and v.ci == (v.pooled.ci_low, v.pooled.ci_high)
    assert v.p_value == v.pooled.p_value
    assert v.pooled.decision == v.decision
    if len({r.deciding.name for r in [*v.experiments, v.pooled]}) == 1:
        # every row shows the same test: the pooled estimate lies among the experiments'
        assert min(r.estimate for r in v.experiments) <= v.estimate
        assert v.estimate <= max(r.estimate for r in v.experiments)
    assert set(store) | {"pooled"} == set(v.summaries)
    assert "pooled over 3 experiments" in v.reason
    per_fraction = v.tables["per_fraction"]
    assert {r["experiment"] for r in per_fraction} == set(store)
    assert v.decision in ("supported", "rejected", "inconclusive") and v.model and v.effect
    # the pooled row reports every number an experiment's row does, except what describes the
    # one experiment (its methods, options and fits of its own cells)
    pooled_only = {"k", "pooling", "tau2", "i2"}  # how the pool was made, and its spread
    pooled_keys = set(v.pooled.extra) - pooled_only
    experiment_keys = set(v.experiments[0].extra)
    assert pooled_keys <= experiment_keys
    assert experiment_keys - pooled_keys <= EXPERIMENT_ONLY[name]
    # JSON round trip keeps everything
    assert Verdict.from_json(v.as_json()) == v


@pytest.mark.parametrize("name", NAMES)
def test_single_experiment_has_no_pooled_row(name):
    v = HYP[name].test(make_store(seed=5, **NEEDS[name]))
    assert v.pooled is None and len(v.experiments) == 1
    row = v.experiments[0]
    assert (v.estimate, v.p_value, v.decision) == (row.estimate, row.p_value, row.decision)
    assert row.n == (4 if name == "neural-collapse" else 5)
    assert v.reason and all(math.isfinite(c) for c in v.ci)


@pytest.mark.parametrize("name", NAMES)
def test_nan_cells_and_missing_fractions(name):
    method = "kd-T4"
    store = make_store(
        n_experiments=2,
        seed=2,
        **NEEDS[name],
        per_experiment=[
            {"untrained": [(method, 0.4, 0), (method, 1.0, 2)]},
            {"fractions": (0.15, 0.4, 1.0) if name == "neural-collapse" else (0.1, 0.4, 1.0)},
        ],
    )
    v = HYP[name].test(store)
    assert v.pooled is not None and v.pooled.n == 2
    assert all(math.isfinite(r.estimate) for r in v.experiments)
    fr = {r["fraction"] for r in v.tables["per_fraction"] if r["experiment"] == "synthetic-1"}
    assert fr == set(store["synthetic-1"]["fraction"].values.tolist())
    rec = next(
        r
        for r in v.tables["per_fraction"]
        if r["experiment"] == "synthetic-0" and r["fraction"] == 0.4
    )
    n_keys = [k for k in rec if k == "n" or k.endswith("_n")]
    assert n_keys and all(rec[k] == store["synthetic-0"].sizes["seed"] - 1 for k in n_keys)


def test_experiment_lacking_a_method_is_skipped_and_named():
    store = make_store(
        n_experiments=2,
        seed=3,
        **NEEDS["data-efficiency"],
        per_experiment=[{}, {"methods": ("label", "ls")}],
    )
    v = DataEfficiency().test(store)
    assert [r.label for r in v.experiments] == ["synthetic-0"]
    assert v.tables["skipped_experiments"][0]["experiment"] == "synthetic-1"
    assert "synthetic-1" in v.reason


# ---------------------------------------------------------------------------- data efficiency
def test_data_multiplier_function():
    n = np.array([10, 20, 40, 80])
    label = np.array([50.0, 60.0, 70.0, 80.0])  # +10 points per doubling
    kd = np.array([65.0, 60.0, 85.0, np.nan])
    recs = data_multiplier(n, label, kd)
    # 65 lies halfway between 60 (n=20) and 70 (n=40) in log n: n* = 20*sqrt(2)
    assert recs[0]["status"] == "interpolated"
    assert recs[0]["matching_n_train"] == pytest.approx(20 * math.sqrt(2))
    assert recs[0]["multiplier"] == pytest.approx(2 * math.sqrt(2))
    assert recs[1]["multiplier"] == pytest.approx(1.0)
    assert recs[2]["status"] == "above label curve max" and math.isnan(recs[2]["multiplier"])
    assert recs[2]["multiplier_bound"] == pytest.approx(2.0)  # > 80 / 40
    assert recs[3]["status"] == "no data"
    below = data_multiplier(n, label, np.array([40.0, 40.0, 40.0, 40.0]))
    assert below[2]["status"] == "below label curve min"
    assert below[2]["multiplier_bound"] == pytest.approx(0.25)
    # a non-monotone curve: the first kappa that reaches the accuracy
    bumpy = data_multiplier(n, np.array([50.0, 70.0, 60.0, 80.0]), np.array([65.0] * 4))
    assert bumpy[0]["matching_n_train"] == pytest.approx(10 * 2**0.75)


def test_data_multiplier_on_a_store_with_a_known_label_curve():
    # label accuracy = 85 + 10 log(kappa / kappa_max) exactly (no noise), KD = label + 5 points:
    # label training needs kappa * exp(5 / 10) samples to match KD at kappa.
    ds = make_experiment(
        seed=1,
        methods=("label", "kd-T4"),
        features=False,
        n_test=2000,
        n_train=400,
        label_acc_max=85.0,
        label_acc_slope=10.0,
        kd_gain=5.0,
        kd_gain_slope=0.0,
        seed_sd=0.0,
        method_seed_sd=0.0,
        cell_sd=0.0,
    )
    v = DataEfficiency().test({"known": ds})
    recs = {r["fraction"]: r for r in v.tables["data_multiplier"]}
    kmax = ds["n_train"].values.max()
    for f, kappa in zip(ds["fraction"].values, ds["n_train"].values, strict=True):
        r = recs[float(f)]
        if kappa * math.exp(0.5) <= kmax * 0.999:
            assert r["status"] == "interpolated"
            assert r["multiplier"] == pytest.approx(math.exp(0.5), rel=0.01)
        else:
            assert r["status"] == "above label curve max"
            assert math.isnan(r["multiplier"]) and r["multiplier_bound"] == pytest.approx(
                kmax / kappa
            )
    # a constant gain: the slope is 0 and shown so (equivalence), hence rejected
    assert v.decision == "rejected" and abs(v.estimate) < 0.05


# ---------------------------------------------------------------------------- label smoothing
def test_label_smoothing_needs_equivalence_at_every_fraction():
    quiet = {"ls_gap": 0.0, "ls_gap_slope": 0.0, "cell_sd": 0.1, "method_seed_sd": 0.05}
    ds = make_experiment(seed=5, **NEEDS["label-smoothing"], **quiet)
    assert LabelSmoothing().test({"e": ds}).decision == "supported"
    # only one seed left at fraction 0.4: equivalence cannot be shown there
    lone = [("kd-T4", 0.4, s) for s in range(1, 5)]
    ds = make_experiment(seed=5, **NEEDS["label-smoothing"], **quiet, untrained=lone)
    v = LabelSmoothing().test({"e": ds})
    assert v.decision == "inconclusive"
    assert "f=0.4" in v.reason
    rec = next(r for r in v.tables["per_fraction"] if r["fraction"] == 0.4)
    assert rec["n"] == 1 and math.isnan(rec["tost_p"]) and rec["equivalent"] is False


def test_label_smoothing_rejection_yields_to_family_correction():
    v = LabelSmoothing().test(make_store(seed=1, **NEEDS["label-smoothing"]))
    assert v.decision == "rejected"
    fam = replace(v, family=["a", "b"])
    assert LabelSmoothing().decide(fam, 0.5)[0] == "inconclusive"
    assert LabelSmoothing().decide(fam, 0.01)[0] == "rejected"


# KD beats LS by ~9 points at 1% of the data (3 seeds) while LS beats KD by ~2-4 points from 40%
# on: the mean over fractions is about 0, yet "LS matches KD at every data size" is refuted.
_LOW_DATA_GAP = {
    "n_train": 1000,
    "n_seeds": 3,
    "fractions": (0.01, 0.2, 0.4, 0.6, 0.8, 1.0),
    "ls_gap": -4.0,
    "ls_gap_slope": -2.8,
}


def test_label_smoothing_rejects_on_a_low_data_gap_alone():
    ds = make_experiment(seed=0, **{**NEEDS["label-smoothing"], **_LOW_DATA_GAP})
    v = LabelSmoothing().test({"cnn": ds})
    row = v.experiments[0]
    assert v.decision == "rejected"
    # the mean alone (the former rule) does not reject: it is the 1% fraction that does
    assert row.extra["mean_difference"] < 0 and row.extra["mean_p"] > 0.5
    assert row.extra["kd_beats_ls_at"] == "f=0.01"
    assert "f=0.01" in v.reason and "KD − LS 8.78 points" in v.reason
    per_fraction = v.tables["per_fraction"]
    assert [r["kd_beats_ls"] for r in per_fraction] == [True] + [False] * 5
    assert all(r["p_holm"] >= r["p"] for r in per_fraction)
    family = v.tables["rejection_family"]
    assert len(family) == 7 and family[0]["test"] == "mean over fractions"
    # the reported p is the smallest Holm-adjusted p of the family: the 1% fraction's
    assert v.p_value == per_fraction[0]["p_holm"] == min(m["p_holm"] for m in family)
    assert v.p_value <= v.alpha < family[0]["p_holm"]
    assert "smallest Holm-adjusted" in v.effect and "Holm-adjusted p" in v.model
    # the shown estimate and CI are the 1% fraction's, the CI at the Holm-adjusted level
    assert v.estimate == pytest.approx(per_fraction[0]["difference"])
    assert v.deciding.outcome == "rejected" and "f=0.01" in v.deciding.name
    assert v.ci_level > 1 - 2 * v.alpha and v.ci[0] > 0
    # Holm across hypotheses acts on this p: "rejected" stands only while it stays <= alpha
    fam = replace(v, family=["a", "b", "c"])
    assert LabelSmoothing().decide(fam, v.p_value) == ("rejected", v.reason)
    assert LabelSmoothing().decide(fam, 3 * v.p_value)[0] == "inconclusive"


def test_label_smoothing_reported_p_agrees_with_the_decision():
    quiet = {"ls_gap": 0.0, "ls_gap_slope": 0.0, "cell_sd": 0.1, "method_seed_sd": 0.05}
    for truth in ({}, quiet, {"ls_gap": -3.0, "ls_gap_slope": 0.0}):
        ds = make_experiment(seed=7, **NEEDS["label-smoothing"], **truth)
        v = LabelSmoothing().test({"e": ds})
        family = v.tables["rejection_family"]
        assert v.p_value == min(m["p_holm"] for m in family)
        assert (v.decision == "rejected") == (v.p_value <= v.alpha)
        assert v.estimate == v.experiments[0].estimate  # the deciding member's
        assert v.implied_decision() == v.decision
    assert v.decision == "inconclusive"  # LS clearly better: no rejection, no equivalence


def test_label_smoothing_pooled_family_names_the_experiment_and_fraction():
    store = make_store(
        n_experiments=2,
        seed=3,
        **NEEDS["label-smoothing"],
        per_experiment=[{"ls_gap": 0.0, "ls_gap_slope": 0.0}, _LOW_DATA_GAP],
    )
    v = LabelSmoothing().test(store)
    assert v.decision == "rejected"
    assert v.pooled.extra["kd_beats_ls_at"] == "f=0.01 (synthetic-1)"
    assert "f=0.01 (synthetic-1)" in v.reason
    pooled = [m for m in v.tables["rejection_family"] if m["family"] == "pooled"]
    # each experiment's mean test and per-fraction tests, Holm-adjusted together
    assert len(pooled) == (1 + 6) + (1 + 6)
    assert sum(m["test"] == "mean over fractions" for m in pooled) == 2
    assert v.p_value == v.pooled.p_value == min(m["p_holm"] for m in pooled)
    per_experiment = {
        m["experiment"]: m["p_holm"]
        for m in v.tables["rejection_family"]
        if m["family"] != "pooled" and m["fraction"] == 0.01
    }
    assert v.p_value >= per_experiment["synthetic-1"]  # a larger family adjusts more


# ---------------------------------------------------------------------------- fidelity decay
def _gaps(ds):
    kd = {"arm": "kd-T4"}
    f_tr = fidelity(
        ds["train_logits"].sel(kd), ds["teacher_train_logits"], "train_sample", ds["in_train"]
    )
    f_te = fidelity(ds["test_logits"].sel(kd), ds["teacher_test_logits"], "test_sample")
    return (f_tr - f_te).transpose("fraction", "seed")


def test_fidelity_gap_nonpositive_cells_stay_in_the_fit():
    ds = make_experiment(seed=3, **NEEDS["fidelity-decay"], fidelity_abs_sd=0.03)
    gaps = _gaps(ds)
    n_bad = int((gaps <= 0).sum())
    assert 0 < n_bad < 15  # the generator made some, not all, gaps <= 0
    v = FidelityDecay().test({"noisy": ds})
    assert v.tables["excluded"] == []  # nothing is dropped: only NaN cells would be
    assert v.experiments[0].extra["n_cells_gap_le_0"] == n_bad
    assert f"{n_bad} cell(s) with gap <= 0 were kept" in v.reason
    assert all(f["n_cells"] == 6 for f in v.tables["seed_fits"])
    assert v.tables["power_law_fit"][0]["n_cells"] == 30
    assert "included" in v.summaries["noisy"]


def test_fidelity_untrained_cells_are_named_as_nan():
    ds = make_experiment(seed=6, **NEEDS["fidelity-decay"], untrained=[("kd-T4", 0.2, 3)])
    v = FidelityDecay().test({"e": ds})
    (e,) = v.tables["excluded"]
    assert (e["fraction"], e["seed"]) == (0.2, 3) and "NaN" in e["reason"]
    assert v.tables["power_law_fit"][0]["n_cells"] == 29
    assert "f=0.2 seed 3 NaN" in v.reason


def test_fidelity_too_few_positive_gaps_is_inconclusive():
    # every gap negative: nothing can enter the log fit
    ds = make_experiment(
        seed=2, **NEEDS["fidelity-decay"], fidelity_gap_at_min=-0.05, fidelity_b=0.0
    )
    assert bool((_gaps(ds) < 0).all())
    v = FidelityDecay().test({"e": ds})
    assert v.decision == "inconclusive"
    assert "Too few cells with a positive fidelity gap" in v.reason
    assert math.isnan(v.estimate)


def test_fidelity_reports_kl_and_raw_fit():
    v = FidelityDecay().test(make_store(seed=8, **NEEDS["fidelity-decay"]))
    rec = v.tables["per_fraction"][0]
    for key in ("fidelity_train", "fidelity_test", "gap", "kl_train", "kl_test"):
        assert math.isfinite(rec[key])
    assert rec["fidelity_train"] > rec["fidelity_test"]
    fit = v.tables["power_law_fit"][0]
    assert fit["status"] == "ok" and fit["b"] == pytest.approx(-0.5, abs=0.2)
    assert v.experiments[0].extra["raw_fit_b"] == fit["b"]


def test_fidelity_plateau_then_cliff_is_rejected_for_lack_of_fit():
    ds = make_experiment(seed=4, **NEEDS["fidelity-decay"], fidelity_cliff=2.0)
    v = FidelityDecay().test({"cliff": ds})
    assert v.decision == "rejected"
    assert v.deciding.name.startswith("lack of fit") and v.deciding.kind == "two-sided"
    row = v.experiments[0]
    assert row.extra["rejection_by"] == "curvature" and row.extra["curvature_q"] < 0
    assert v.implied_decision() == "rejected" and "not a power law" in v.reason


def test_fidelity_exponent_is_not_flattened_by_gaps_lost_in_noise():
    # true exponent -1 with additive noise: at large kappa the gap falls into noise (some cells
    # <= 0). A log-log fit would drop those cells and flatten the slope towards -0.5; the
    # raw-scale fit keeps them and recovers -1 on average.
    bs, n_le0 = [], 0
    for seed in range(12):
        ds = make_experiment(
            seed=seed, **NEEDS["fidelity-decay"], fidelity_b=-1.0, fidelity_abs_sd=0.01
        )
        v = FidelityDecay().test({"e": ds})
        bs.append(v.experiments[0].extra["b"])
        n_le0 += v.experiments[0].extra["n_cells_gap_le_0"]
        assert v.decision != "supported"
    assert n_le0 > 0
    assert np.mean(bs) == pytest.approx(-1.0, abs=0.1)
